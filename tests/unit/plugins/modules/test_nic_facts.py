"""nic_facts: input normalisation, statistics selection, IRQ fact shape; bad input fails."""
from __future__ import annotations


import pytest

from ansible_collections.kbypass.xdp.plugins.module_utils import _common
from ansible_collections.kbypass.xdp.plugins.modules import nic_facts as m
from module_main import run_main  # tests/unit/module_main.py


def test_normalize_interfaces_mixed():
    got = _common.normalize_interfaces(['eth0', {'name': 'veth0', 'netns': 'ns1'}, {'name': 'v'}],
                                       default_netns='nsd')
    assert got == [{'name': 'eth0', 'netns': 'nsd'}, {'name': 'veth0', 'netns': 'ns1'},
                   {'name': 'v', 'netns': 'nsd'}]


@pytest.mark.parametrize('items,fragment', [
    ([], 'empty'), ([{'netns': 'ns1'}], 'must be a name'), ([{'name': 'a', 'x': 1}], 'keys'),
    (['y' * 20], 'at most 15'), ([{'name': 'a', 'netns': 'a/b'}], 'invalid'), ([3], 'got 3'),
])
def test_normalize_interfaces_rejects(items, fragment):
    with pytest.raises(ValueError) as exc:
        _common.normalize_interfaces(items)
    assert fragment in str(exc.value)


def test_select_stats():
    stats = {'rx_packets': 1, 'rx_queue_0_xdp_drops': 2, 'tx_bytes': 3, 'rx_missed_errors': 4}
    pats = ['drop', 'err', '^rx_packets$']
    want = {'rx_packets': 1, 'rx_queue_0_xdp_drops': 2, 'rx_missed_errors': 4}
    assert m.select_stats(stats, 'selected', pats) == want
    assert m.select_stats(stats, 'all', pats) == stats
    assert m.select_stats(stats, 'none', pats) == {}
    assert m.select_stats(None, 'selected', pats) is None


def test_irq_facts_formats_cpulists():
    irqs = [{'irq': 38, 'name': 'virtio2-input.0', 'kind': 'rx', 'queue': 0, 'total': 5}]
    aff = {38: {'smp_affinity_list': [0, 1], 'effective_affinity_list': [1]}}
    assert m.irq_facts(irqs, aff) == [{'irq': 38, 'name': 'virtio2-input.0', 'kind': 'rx',
                                       'queue': 0, 'count': 5, 'smp_affinity_list': '0-1',
                                       'effective_affinity_list': '1'}]


class _Exit(Exception):
    pass


class _Module(object):
    params = {'ignore_missing': True}

    def exit_json(self, **kw):
        raise _Exit(kw)

    fail_json = exit_json


def test_interface_facts_keys_and_missing():
    """Facts are keyed netns/name (name in the root namespace); a missing interface is
    reported with ignore_missing, fails the module without it."""
    items = [{'name': 'veth0', 'netns': 'ns1'}, {'name': 'eth0', 'netns': None}]

    def gather(it):
        return dict(it, exists=it['netns'] is None, error='gone')
    with pytest.raises(_Exit) as exc:
        _common.exit_interface_facts(_Module(), items, gather, 'kb')
    got = exc.value.args[0]
    assert sorted(got['ansible_facts']['kb']) == ['eth0', 'ns1/veth0'] and not got['changed']
    module = _Module()
    module.params = {'ignore_missing': False}
    with pytest.raises(_Exit) as exc:
        _common.exit_interface_facts(module, items, gather, 'kb')
    assert exc.value.args[0] == {'msg': 'gone (set ignore_missing: true to report it instead)'}
    assert _common.missing_error('v', 'n', False) == 'network namespace n does not exist'
    assert _common.missing_error('v', 'n', True) == 'interface v does not exist in netns n'


def test_main_bad_input(monkeypatch):
    monkeypatch.setattr(m, 'gather', lambda *a, **k: pytest.fail('gathered on bad input'))
    res = run_main(m, {'interfaces': [{'name': 'a', 'bogus': 1}]})
    assert res['failed'] and 'bad input' in res['msg']


def test_main_bad_regex(monkeypatch):
    monkeypatch.setattr(m, 'gather', lambda *a, **k: pytest.fail('gathered on bad input'))
    assert run_main(m, {'interfaces': ['eth0'], 'statistics_filter': ['(']})['failed']
