"""nic_tune / host_tune / the tuning role on a real veth pair in namespaces kbtt1/kbtt2.

Everything here is real: ethtool on a veth, sysfs of a netns device, per-netns sysctls,
a global busy-poll sysctl (restored in a finalizer). irqbalance is not installed here, so
its defaults file is a temporary file (the module takes its path); veth has no IRQs, so
IRQ affinity is only checked to be reported as not applicable (unit tests cover the logic).
"""
import json
import os

import pytest

from conftest import run_module, run_playbook, sh, veth_bed

NS1, NS2, IF0, IF1 = 'kbtt1', 'kbtt2', 'kbttv0', 'kbttv1'


@pytest.fixture
def bed(tmp_path):
    with veth_bed(NS1, IF0, NS2, IF1):
        yield {'state_dir': str(tmp_path / 'state'), 'tmp': tmp_path}


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
    state_file = os.path.join(bed['state_dir'], 'nic:%s:%s.json' % (NS1, IF0))

    res = run_module('nic_tune', tune_args(bed), check=True, diff=True)
    assert res.get('failed') is not True, res
    assert res['changed'] is True
    assert res['diff']['before']['features']['generic-receive-offload'] is False
    assert snapshot() == before and not os.path.exists(state_file)  # check mode: untouched

    res = run_module('nic_tune', tune_args(bed), diff=True)
    assert res['changed'] is True and res['state_file'] == state_file, res
    assert res['key'] == '%s:%s' % (NS1, IF0)
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
    root_fwd = sh(['sysctl', '-n', 'net.ipv4.ip_forward']).stdout.strip()
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
    # the write went to the namespace only: the root namespace kept its value
    assert sh(['sysctl', '-n', 'net.ipv4.ip_forward']).stdout.strip() == root_fwd
    assert os.listdir(bed['state_dir']) == ['host:%s.json' % NS1]
    res = run_module('host_tune', {'netns': NS1, 'state': 'restored', 'irqbalance_config': str(cfg),
                                   'state_dir': bed['state_dir']})
    assert res['changed'] is True and fwd() == '0' and cfg.read_text() == 'OPTIONS=""\n'


def test_names_of_state_files_cannot_collide(bed):
    """netns a-b + interface c and netns a + interface b-c, and an interface called
    "host" next to host_tune's own file, each get a file of their own."""
    sh(['ip', 'link', 'add', 'host', 'type', 'dummy'], netns=NS1, check=False)
    sh(['ip', 'link', 'add', 'host', 'type', 'bridge'], netns=NS1)
    nic = run_module('nic_tune', {'name': 'host', 'netns': NS1, 'features': {'gso': False},
                                  'state_dir': bed['state_dir']})
    host = run_module('host_tune', {'netns': NS1, 'sysctls': {'net.ipv4.ip_forward': 1},
                                    'state_dir': bed['state_dir']})
    assert nic['changed'] and host['changed'], (nic, host)
    assert nic['state_file'] != host['state_file']
    assert sorted(os.listdir(bed['state_dir'])) == ['host:%s.json' % NS1, 'nic:%s:host.json' % NS1]
    for args in ({'name': 'host', 'netns': NS1}, {'netns': NS1}):
        mod = 'nic_tune' if 'name' in args else 'host_tune'
        res = run_module(mod, dict(args, state='restored', state_dir=bed['state_dir']))
        assert res['changed'] is True, res
    assert not os.path.exists(bed['state_dir'])  # the last saved state gone: its dir too


def test_refused_sysctl_rolls_back_the_others(bed):
    """somaxconn -5 is refused by the kernel after ip_forward was written: ip_forward goes
    back, nothing is saved, and the task says nothing changed."""
    def fwd():
        return sh(['sysctl', '-n', 'net.ipv4.ip_forward'], netns=NS1).stdout.strip()
    assert fwd() == '0'
    res = run_module('host_tune', {'netns': NS1, 'state_dir': bed['state_dir'],
                                   'sysctls': {'net.ipv4.ip_forward': 1,
                                               'net.core.somaxconn': -5}})
    assert res.get('failed') is True and res['changed'] is False, res
    assert 'nothing was changed' in res['msg'] and res['rolled_back'] == ['net.ipv4.ip_forward']
    assert fwd() == '0'
    assert not os.listdir(bed['state_dir']) if os.path.isdir(bed['state_dir']) else True


def test_refused_nic_change_after_others_reports_them(bed):
    """GRO goes on, then the kernel refuses an out-of-range gro_flush_timeout: changed=true,
    the applied feature is listed, and restored puts it back."""
    res = run_module('nic_tune', tune_args(bed, features={'gro': True}, channels={},
                                           sysfs={'gro_flush_timeout': 2 ** 70}))
    assert res.get('failed') is True and res['changed'] is True, res
    assert res['applied'] == {'features': {'generic-receive-offload': True}}
    assert 'state=restored puts it back' in res['msg']
    assert features()['generic-receive-offload'] is True
    res = run_module('nic_tune', {'name': IF0, 'netns': NS1, 'state': 'restored',
                                  'state_dir': bed['state_dir']})
    assert res['changed'] is True and features()['generic-receive-offload'] is False


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
    rc, out, proc = run_playbook('tune.yml', extra, tmp_path)
    assert out is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
    return rc, out['stats']['localhost'], out


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
    # the summary is keyed by what each nic_tune call says it tuned
    summary = [t['hosts']['localhost']['tuning_summary'] for play in out['plays']
               for t in play['tasks'] if 'tuning_summary' in t['hosts'].get('localhost', {})]
    assert sorted(summary[0]['interfaces']) == ['%s:%s' % (NS1, IF0), '%s:%s' % (NS2, IF1)]
    assert summary[0]['interfaces']['%s:%s' % (NS1, IF0)]['features'] == {
        'generic-receive-offload': True}
    assert features()['generic-receive-offload'] is True
    assert features(NS2, IF1)['generic-segmentation-offload'] is False
    rc, stats, dummy = _playbook(extra, tmp_path)
    assert rc == 0 and stats['changed'] == 0, stats
    rc, stats, dummy = _playbook(dict(extra, tuning_state='restored'), tmp_path)
    assert rc == 0 and stats['changed'] >= 3, stats
    assert snapshot() == before
    assert features(NS2, IF1)['generic-segmentation-offload'] is True
    assert not os.path.exists(bed['state_dir'])  # the last saved state gone: its dir too
