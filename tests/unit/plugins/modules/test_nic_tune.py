"""nic_tune: request normalisation, the pure plan/restore functions, and main()'s input checks.

Device states are recorded from a real veth (ethtool 6.1) or written after mlx5's ethtool
output (no such NIC here); the integration test exercises the real kernel.
"""
from __future__ import annotations

import os

import pytest

from ansible_collections.kbypass.xdp.plugins.module_utils import _ethtool
from ansible_collections.kbypass.xdp.plugins.modules import nic_tune as m
from module_main import run_main  # tests/unit/module_main.py

FIX = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures')


@pytest.fixture(autouse=True)
def many_cpus(monkeypatch):
    """The recorded devices come from hosts with more CPUs than this one."""
    monkeypatch.setattr(m, 'online_cpus', lambda: list(range(64)))


def _read(*p):
    with open(os.path.join(FIX, *p)) as f:
        return f.read()


def params(**kw):
    base = {'features': {}, 'channels': None, 'rings': None, 'ntuple_rules': [], 'sysfs': {},
            'irq_cpus': None, 'irq_mode': 'spread'}
    base.update(kw)
    return base


def veth_current(**over):
    cur = {
        'features': _ethtool.parse_features_json(_read('ethtool', 'veth_features.json')),
        'channels': _ethtool.parse_channels(_read('ethtool', 'veth_channels.txt')),
        'channels_error': None,
        'rings': None, 'rings_error': 'netlink error: Operation not supported',
        'rules': None, 'rules_error': 'Cannot get RX rings: Operation not supported',
        'sysfs': {'gro_flush_timeout': '0', 'napi_defer_hard_irqs': '0'},
        'irqs': [], 'irq_affinity': {},
    }
    cur.update(over)
    return cur


def mlx5_current():
    feats = {'ntuple-filters': {'active': False, 'fixed': False, 'requested': False},
             'generic-receive-offload': {'active': True, 'fixed': False, 'requested': True}}
    return {
        'features': feats,
        'channels': {'max': {'rx': None, 'tx': None, 'other': None, 'combined': 8},
                     'current': {'rx': None, 'tx': None, 'other': None, 'combined': 4}},
        'rings': {'max': {'rx': 8192, 'tx': 8192, 'rx-mini': None, 'rx-jumbo': None},
                  'current': {'rx': 1024, 'tx': 1024, 'rx-mini': None, 'rx-jumbo': None}},
        'rules': _ethtool.parse_ntuple_rules(_read('ethtool', 'mlx5_ntuple.txt')),
        'sysfs': {},
        'irqs': [{'irq': 99, 'name': 'mlx5_comp0@pci:0000:3b:00.0', 'kind': 'txrx', 'queue': 0},
                 {'irq': 100, 'name': 'mlx5_comp1@pci:0000:3b:00.0', 'kind': 'txrx', 'queue': 1},
                 {'irq': 98, 'name': 'mlx5_async0@pci:0000:3b:00.0', 'kind': 'other', 'queue': None}],
        'irq_affinity': {99: [0, 1, 2, 3], 100: [1], 98: [0]},
    }


def test_normalize_aliases_and_types():
    req = m.normalize_request(params(features={'gro': 'off', 'rx-udp-gro-forwarding': True},
                                     rings={'rx': 512, 'tx': None, 'rx_mini': None,
                                            'rx_jumbo': None},
                                     sysfs={'gro_flush_timeout': 200000, 'threaded': True},
                                     irq_cpus='2-3'))
    assert req['features'] == {'generic-receive-offload': False, 'rx-udp-gro-forwarding': True}
    assert req['rings'] == {'rx': 512}
    assert req['sysfs'] == {'gro_flush_timeout': '200000', 'threaded': '1'}
    assert req['irq_cpus'] == [2, 3]


@pytest.mark.parametrize('bad,fragment', [
    (dict(features={'gro': 'maybe'}), 'not a boolean'),
    (dict(sysfs={'../../etc/passwd': 1}), 'relative path'),
    (dict(sysfs={'/abs': 1}), 'relative path'),
    (dict(irq_cpus='x-y'), 'invalid CPU'),
    (dict(channels={'rx': -1}), '>= 0'),
    (dict(ntuple_rules=[{'flow_type': 'udp4', 'queue': 1, 'dst_port': 70000}]), 'not a port'),
    (dict(features={'ntuple': False},
          ntuple_rules=[{'flow_type': 'udp4', 'queue': 1, 'dst_port': 1}]), 'ntuple feature'),
])
def test_normalize_rejects(bad, fragment):
    with pytest.raises(ValueError) as exc:
        m.normalize_request(params(**bad))
    assert fragment in str(exc.value)


def test_plan_veth_changes_and_skips():
    req = m.normalize_request(params(
        features={'gro': False, 'lro': True, 'tx-checksum-ipv4': True, 'no-such': True,
                  'tso': True},
        channels={'rx': 2, 'tx': 3, 'combined': 1, 'other': None},
        rings={'rx': 512, 'tx': None, 'rx_mini': None, 'rx_jumbo': None},
        sysfs={'gro_flush_timeout': 200000, 'napi_defer_hard_irqs': 0, 'nope': 1},
        irq_cpus='1'))
    plan = m.compute_plan(veth_current(), req)
    assert plan['changes'] == {'features': {'generic-receive-offload': False},
                               'channels': {'rx': 2},
                               'sysfs': {'gro_flush_timeout': '200000'}}
    assert plan['before'] == {'features': {'generic-receive-offload': True},
                              'channels': {'rx': 1}, 'sysfs': {'gro_flush_timeout': '0'}}
    skipped = dict((s['key'], s['reason']) for s in plan['skipped'])
    assert 'fixed off' in skipped['features.large-receive-offload']
    assert 'fixed off' in skipped['features.tx-checksum-ipv4']
    assert 'no feature' in skipped['features.no-such']
    assert 'exceeds the maximum 2' in skipped['channels.tx']
    assert 'n/a' in skipped['channels.combined']
    assert 'Operation not supported' in skipped['rings.rx']
    assert 'no such attribute' in skipped['sysfs.nope']
    assert 'no queue interrupts' in skipped['irq_cpus']
    assert 'features.tcp-segmentation-offload' not in skipped  # already on: no-op


def test_plan_converged_is_empty():
    # the recorded veth had GRO switched on
    req = m.normalize_request(params(features={'gro': True}, channels={'rx': 1},
                                     sysfs={'gro_flush_timeout': 0}))
    plan = m.compute_plan(veth_current(), req)
    assert plan['changes'] == {} and plan['skipped'] == []


def test_plan_mlx5_ordering_inputs_rules_and_irqs():
    req = m.normalize_request(params(
        channels={'combined': 8, 'rx': None, 'tx': None, 'other': None},
        rings={'rx': 4096, 'tx': 4096, 'rx_mini': None, 'rx_jumbo': None},
        ntuple_rules=[
            {'flow_type': 'udp4', 'dst_ip': '198.18.0.10', 'dst_port': 4242, 'queue': 3,
             'src_ip': None, 'src_port': None, 'loc': None},   # exists at 1022
            {'flow_type': 'udp4', 'dst_port': 4243, 'queue': 6, 'src_ip': None,
             'dst_ip': None, 'src_port': None, 'loc': None},   # new, queue ok after 8 ch
            {'flow_type': 'udp4', 'dst_port': 4244, 'queue': 9, 'src_ip': None,
             'dst_ip': None, 'src_port': None, 'loc': None},   # queue 9 does not exist
            {'flow_type': 'tcp4', 'dst_port': 80, 'queue': 1, 'src_ip': None,
             'dst_ip': None, 'src_port': None, 'loc': 1023},   # loc taken by another rule
        ],
        irq_cpus=[2, 3]))
    plan = m.compute_plan(mlx5_current(), req)
    ch = plan['changes']
    assert ch['features'] == {'ntuple-filters': True}  # switched on automatically
    assert ch['channels'] == {'combined': 8}
    assert ch['rings'] == {'rx': 4096, 'tx': 4096}
    assert [r['dst_port'] for r in ch['rules']] == [4243]
    assert ch['irq_affinity'] == {'99': '2', '100': '3'}
    assert plan['before']['irq_affinity'] == {'99': '0-3', '100': '1'}
    keys = [s['key'] for s in plan['skipped']]
    assert keys == ['ntuple_rules[2]', 'ntuple_rules[3]']
    diff = m.diff_view(plan)  # the added rule shows in the diff, from nothing
    assert diff['before']['rules'] == [] and diff['after']['rules'] == ch['rules']
    assert diff['after']['irq_affinity'] == {'99': '2', '100': '3'}


def test_refused_irq_affinity_is_not_planned_again():
    """The kernel kept IRQ 100 on CPU 1 last run: the same request is no change now."""
    req = m.normalize_request(params(irq_cpus=[2, 3]))
    cur = mlx5_current()
    cur['irq_refused'] = {'100': '3'}
    plan = m.compute_plan(cur, req)
    assert plan['changes'] == {'irq_affinity': {'99': '2'}}
    assert [s['key'] for s in plan['skipped']] == ['irq_cpus']
    assert 'IRQ 100 refused CPUs 3 before; kept 1' in plan['skipped'][0]['reason']
    cur['irq_refused'] = {'100': '2'}  # another request for that IRQ is tried again
    assert m.compute_plan(cur, m.normalize_request(params(irq_cpus=[3, 2])))['changes'] == {
        'irq_affinity': {'99': '2', '100': '3'}}


def test_rules_on_device_without_ntuple_do_not_flip_the_feature():
    req = m.normalize_request(params(ntuple_rules=[
        {'flow_type': 'udp4', 'dst_port': 4242, 'queue': 0, 'src_ip': None, 'dst_ip': None,
         'src_port': None, 'loc': None}]))
    plan = m.compute_plan(veth_current(), req)
    assert plan['changes'] == {}
    assert [x['key'] for x in plan['skipped']] == ['ntuple_rules[0]']


def test_restore_plan_puts_back_only_what_differs():
    cur = veth_current()
    cur['features']['generic-receive-offload']['active'] = True  # as recorded
    cur['channels']['current']['rx'] = 2
    cur['sysfs'] = {'gro_flush_timeout': '200000', 'napi_defer_hard_irqs': '0'}
    saved = {'original': {'features': {'generic-receive-offload': False,
                                       'rx-udp-gro-forwarding': False},
                          'channels': {'rx': 1},
                          'sysfs': {'gro_flush_timeout': '0', 'napi_defer_hard_irqs': '0'}}}
    plan = m.compute_restore(cur, saved)
    assert plan['changes'] == {'features': {'generic-receive-offload': False},
                               'channels': {'rx': 1}, 'sysfs': {'gro_flush_timeout': '0'}}


def test_restore_deletes_only_rules_we_added_that_still_exist():
    cur = mlx5_current()
    plan = m.compute_restore(cur, {'original': {}, 'rules_added': [1022, 5]})
    assert plan['changes'] == {'rules_delete': [1022]}


def _run_main(args, monkeypatch):
    for name in ('read_current', 'apply_changes'):
        monkeypatch.setattr(m, name, lambda *a, **k: pytest.fail('the device was touched'))
    return run_main(m, args)


@pytest.mark.parametrize('args,fragment', [
    ({'name': 'x' * 16}, 'at most 15'),
    ({'name': 'veth0', 'netns': 'bad/ns'}, 'invalid'),
    ({'name': 'veth0', 'features': {'gro': 'perhaps'}}, 'not a boolean'),
    ({'name': 'veth0', 'sysfs': {'../x': 1}}, 'relative path'),
    ({'name': 'veth0', 'netns': 'kbtt-does-not-exist'}, 'does not exist'),
    ({'name': 'veth0', 'channels': {'bogus': 1}}, 'bogus'),
])
def test_main_rejects_bad_input_before_touching_anything(args, fragment, monkeypatch):
    res = _run_main(args, monkeypatch)
    assert res['failed'] and fragment in res['msg']


@pytest.mark.parametrize('kw,fragment', [
    ({'irq_cpus': [70]}, 'irq_cpus: CPU 70 does not exist or is offline'),
    ({'irq_cpus': [-1]}, 'is not a CPU list'),
    ({'sysfs': {'gro_flush_timeout': 'abc'}}, "'abc' is not a non-negative integer"),
    ({'sysfs': {'ifalias': 'a\nb'}}, 'is not a value for a sysfs attribute'),
])
def test_normalize_rejects_values_before_anything(kw, fragment):
    with pytest.raises(ValueError, match=fragment):
        m.normalize_request(params(**kw))
