"""nic_tune / host_tune / the tuning role on a real veth pair in namespaces kbtt1/kbtt2.

Everything here is real: ethtool on a veth, sysfs of a netns device, per-netns sysctls,
a global busy-poll sysctl (restored in a finalizer). irqbalance is not installed here, so
its defaults file is a temporary file (the module takes its path); veth has no IRQs, so
IRQ affinity is only checked to be reported as not applicable (unit tests cover the logic).
"""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, BIN, _env, make_veth_pair, remove_netns, run_module, sh

NS1, NS2, IF0, IF1 = 'kbtt1', 'kbtt2', 'kbttv0', 'kbttv1'


def _cleanup():
    remove_netns(NS1, NS2)


@pytest.fixture
def bed(tmp_path):
    _cleanup()
    try:
        make_veth_pair(NS1, IF0, NS2, IF1)
        yield {'state_dir': str(tmp_path / 'state'), 'tmp': tmp_path}
    finally:
        _cleanup()


def features(ns=NS1, ifname=IF0):
    out = sh(['ethtool', '--json', '-k', ifname], netns=ns).stdout
    return dict((k, v['active']) for k, v in json.loads(out)[0].items() if isinstance(v, dict))


def channels(ns=NS1, ifname=IF0):
    return sh(['ethtool', '-l', ifname], netns=ns).stdout


def sysfs(attr, ns=NS1, ifname=IF0):
    return sh(['cat', '/sys/class/net/%s/%s' % (ifname, attr)], netns=ns).stdout.strip()


def snapshot():
    return {'features': features(), 'channels': channels(),
            'sysfs': [sysfs('gro_flush_timeout'), sysfs('napi_defer_hard_irqs')]}


def tune_args(bed, **kw):
    args = {'name': IF0, 'netns': NS1, 'state_dir': bed['state_dir'],
            'features': {'gro': True, 'rx-udp-gro-forwarding': True, 'tso': False},
            'channels': {'rx': 2, 'tx': 2},
            'sysfs': {'gro_flush_timeout': 200000, 'napi_defer_hard_irqs': 2}}
    args.update(kw)
    return args


def test_toggles_channels_sysfs_applied_then_restored_exactly(bed):
    before = snapshot()
    assert before['features']['generic-receive-offload'] is False  # veth default
    state_file = os.path.join(bed['state_dir'], '%s-%s.json' % (NS1, IF0))

    res = run_module('nic_tune', tune_args(bed), check=True, diff=True)
    assert res.get('failed') is not True, res
    assert res['changed'] is True
    assert res['diff']['before']['features']['generic-receive-offload'] is False
    assert snapshot() == before and not os.path.exists(state_file)  # check mode: untouched

    res = run_module('nic_tune', tune_args(bed), diff=True)
    assert res['changed'] is True, res
    f = features()
    assert f['generic-receive-offload'] is True and f['rx-udp-gro-forwarding'] is True
    assert f['tcp-segmentation-offload'] is False
    assert 'RX:\t\t2' in channels().split('Current hardware settings:')[1]
    assert sysfs('gro_flush_timeout') == '200000' and sysfs('napi_defer_hard_irqs') == '2'
    saved = json.load(open(state_file))['original']
    assert saved['features']['generic-receive-offload'] is False
    assert saved['channels'] == {'rx': 1, 'tx': 1}

    res = run_module('nic_tune', tune_args(bed))
    assert res['changed'] is False and res['changes'] == {}, res

    # a second tuning of the same knob keeps the first original
    res = run_module('nic_tune', tune_args(bed, features={'gro': False}, channels={'rx': 1}))
    assert res['changed'] is True
    assert json.load(open(state_file))['original']['features']['generic-receive-offload'] is False

    res = run_module('nic_tune', {'name': IF0, 'netns': NS1, 'state': 'restored',
                                  'state_dir': bed['state_dir']}, check=True)
    assert res['changed'] is True and os.path.exists(state_file)
    res = run_module('nic_tune', {'name': IF0, 'netns': NS1, 'state': 'restored',
                                  'state_dir': bed['state_dir']})
    assert res['changed'] is True, res
    assert snapshot() == before
    assert not os.path.exists(state_file)
    res = run_module('nic_tune', {'name': IF0, 'netns': NS1, 'state': 'restored',
                                  'state_dir': bed['state_dir']})
    assert res['changed'] is False


def test_unsupported_keys_warn_and_strict_fails_without_changes(bed):
    before = snapshot()
    args = tune_args(bed, features={'gro': True, 'lro': True}, rings={'rx': 512},
                     channels={'rx': 3}, irq_cpus='0', sysfs={})
    res = run_module('nic_tune', dict(args, strict=True))
    assert res.get('failed') is True and 'nothing was changed' in res['msg'], res
    assert snapshot() == before
    assert not os.path.exists(bed['state_dir'])

    res = run_module('nic_tune', args)
    assert res.get('failed') is not True, res
    keys = sorted(u['key'] for u in res['unsupported'])
    assert keys == ['channels.rx', 'features.large-receive-offload', 'irq_cpus', 'rings.rx']
    assert res['irqs'] == [] and res['changes'] == {'features': {'generic-receive-offload': True}}
    assert any('large-receive-offload' in w for w in res['warnings'])
    run_module('nic_tune', {'name': IF0, 'netns': NS1, 'state': 'restored',
                            'state_dir': bed['state_dir']})
    assert snapshot() == before


def test_bad_input_changes_nothing(bed):
    before = snapshot()
    for args, frag in (({'features': {'gro': True}, 'sysfs': {'../../x': 1}}, 'relative'),
                       ({'features': {'gro': 'sometimes'}}, 'boolean'),
                       ({'name': 'kbttnope'}, 'does not exist')):
        res = run_module('nic_tune', tune_args(bed, **args))
        assert res.get('failed') is True and frag in res['msg'], res
    assert snapshot() == before and not os.path.exists(bed['state_dir'])


def test_host_tune_netns_sysctl_and_irqbalance_file(bed):
    cfg = bed['tmp'] / 'irqbalance'
    cfg.write_text('OPTIONS=""\n')

    def fwd():
        return sh(['sysctl', '-n', 'net.ipv4.ip_forward'], netns=NS1).stdout.strip()
    assert fwd() == '0'
    args = {'netns': NS1, 'sysctls': {'net.ipv4.ip_forward': 1, 'net.core.busy_poll': 50},
            'irqbalance_banned_cpus': [1], 'irqbalance_config': str(cfg),
            'state_dir': bed['state_dir']}
    res = run_module('host_tune', args, check=True, diff=True)
    assert res['changed'] is True and fwd() == '0' and cfg.read_text() == 'OPTIONS=""\n'
    res = run_module('host_tune', args)
    assert res['changed'] is True, res
    assert fwd() == '1'
    assert 'IRQBALANCE_BANNED_CPULIST="1"' in cfg.read_text()
    # busy_poll is global: reported as unsupported inside a namespace
    assert [u['key'] for u in res['unsupported']] == ['sysctls.net.core.busy_poll']
    assert run_module('host_tune', args)['changed'] is False
    assert sh(['sysctl', '-n', 'net.ipv4.ip_forward']).stdout.strip() in ('0', '1')  # root ns untouched by ns write
    res = run_module('host_tune', {'netns': NS1, 'state': 'restored', 'irqbalance_config': str(cfg),
                                   'state_dir': bed['state_dir']})
    assert res['changed'] is True and fwd() == '0' and cfg.read_text() == 'OPTIONS=""\n'


def test_global_busy_poll_set_and_restored(tmp_path):
    path = '/proc/sys/net/core/busy_poll'
    orig = open(path).read().strip()
    want = '37' if orig != '37' else '38'
    state_dir = str(tmp_path / 'state')
    try:
        res = run_module('host_tune', {'sysctls': {'net.core.busy_poll': int(want)},
                                       'state_dir': state_dir})
        assert res['changed'] is True and open(path).read().strip() == want
        res = run_module('host_tune', {'state': 'restored', 'state_dir': state_dir})
        assert res['changed'] is True and open(path).read().strip() == orig
    finally:
        with open(path, 'w') as f:
            f.write(orig)


def _playbook(extra, tmp_path):
    varfile = tmp_path / 'vars.json'
    varfile.write_text(json.dumps(extra))
    env = _env()
    env['ANSIBLE_STDOUT_CALLBACK'] = 'json'
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', 'inventory/local',
                           'playbooks/tune.yml', '-e', '@%s' % varfile,
                           '-e', 'ansible_python_interpreter=%s' % sys.executable],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    out = json.loads(proc.stdout)
    return proc.returncode, out['stats']['localhost'], out


def test_tune_playbook_applies_is_idempotent_and_restores(bed, tmp_path):
    before = snapshot()
    cfg = tmp_path / 'irqbalance'
    cfg.write_text('')
    extra = {
        'tuning_interfaces': [
            {'name': IF0, 'netns': NS1, 'features': {'gro': True}, 'channels': {'rx': 2},
             'rings': {'rx': 256}, 'sysfs': {'gro_flush_timeout': 100000}},
            {'name': IF1, 'netns': NS2, 'features': {'gso': False}},
        ],
        'tuning_irq_cpus': '1', 'tuning_sysctls': {},
        'tuning_netns_sysctls': [{'netns': NS1, 'sysctls': {'net.ipv4.ip_forward': 1}}],
        'tuning_irqbalance_config': str(cfg), 'tuning_state_dir': bed['state_dir'],
        'tuning_forwarder_cpus': [1], 'tune_serial': 1,
    }
    rc, stats, out = _playbook(extra, tmp_path)
    assert rc == 0 and stats['changed'] >= 3, stats
    assert features()['generic-receive-offload'] is True
    assert features(NS2, IF1)['generic-segmentation-offload'] is False
    rc, stats, dummy = _playbook(extra, tmp_path)
    assert rc == 0 and stats['changed'] == 0, stats
    rc, stats, dummy = _playbook(dict(extra, tuning_state='restored'), tmp_path)
    assert rc == 0 and stats['changed'] >= 3, stats
    assert snapshot() == before
    assert features(NS2, IF1)['generic-segmentation-offload'] is True
    assert os.listdir(bed['state_dir']) == []
