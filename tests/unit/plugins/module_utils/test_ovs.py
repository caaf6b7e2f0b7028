"""Unit tests for module_utils/_ovs.py: OVSDB decoding, the bridge plan, input checks,
the text parsers (fed with output captured from Open vSwitch 3.1 on this machine) and
the verify judgement."""
import json

import pytest

from ansible_collections.kbypass.xdp.plugins.module_utils import _ovs
from ovs_samples import probe  # tests/unit/ovs_samples.py

# ovs-vsctl --format=json --data=json list Interface (trimmed), OVS 3.1
IFACE_JSON = {
    'headings': ['_uuid', 'name', 'type', 'options', 'other_config', 'ofport',
                 'ofport_request', 'error'],
    'data': [
        [['uuid', 'i1'], 'kbovsv0', 'afxdp', ['map', [['xdp-mode', 'native']]],
         ['map', [['pmd-rxq-affinity', '0:1']]], 1, 1, ['set', []]],
        [['uuid', 'i2'], 'kbovsv2', 'afxdp', ['map', []], ['map', []], -1, ['set', []],
         'could not add network device kbovsv2 to ofproto (Invalid argument)'],
        [['uuid', 'i3'], 'kbovsbr0', 'internal', ['map', []], ['map', []], 65534, ['set', []],
         ['set', []]],
    ]}
PORT_JSON = {'headings': ['_uuid', 'name', 'interfaces'], 'data': [
    [['uuid', 'p1'], 'kbovsv0', ['uuid', 'i1']],
    [['uuid', 'p2'], 'kbovsv2', ['uuid', 'i2']],
    [['uuid', 'p3'], 'kbovsbr0', ['uuid', 'i3']]]}
BRIDGE_JSON = {'headings': ['_uuid', 'name', 'datapath_type', 'ports'], 'data': [
    [['uuid', 'b1'], 'kbovsbr0', 'netdev',
     ['set', [['uuid', 'p1'], ['uuid', 'p2'], ['uuid', 'p3']]]]]}

DPCTL_SHOW = """netdev@ovs-netdev:
  lookups: hit:3 missed:6 lost:0
  flows: 6
  port 0: ovs-netdev (tap)
  port 1: kbovsbr0 (tap)
  port 2: kbovsv0 (afxdp: n_rxq=1, use-need-wakeup=true, xdp-mode=best-effort, xdp-mode-in-use=native)
  port 3: kbovsv2 (afxdp: n_rxq=1, use-need-wakeup=true, xdp-mode=generic, xdp-mode-in-use=generic)
"""

DUMP_PORTS = """OFPST_PORT reply (xid=0x2): 3 ports
  port LOCAL: rx pkts=0, bytes=0, drop=0, errs=0, frame=0, over=0, crc=0
           tx pkts=0, bytes=0, drop=12, errs=0, coll=0
  port  1: rx pkts=11, bytes=782, drop=?, errs=?, frame=?, over=?, crc=?
           tx pkts=17, bytes=1418, drop=?, errs=?, coll=?
  port  2: rx pkts=11, bytes=796, drop=?, errs=?, frame=?, over=?, crc=?
           tx pkts=18, bytes=1512, drop=?, errs=?, coll=?
"""

PMD_STATS = """pmd thread numa_id 0 core_id 1:
  packets received: 19
  packet recirculations: 0
  avg. datapath passes per packet: 1.00
  megaflow hits: 9
  miss with success upcall: 10
  idle cycles: 16629543639 (99.96%)
main thread:
  packets received: 4
  megaflow hits: 0
"""


def rows(doc):
    return _ovs.ovsdb_rows(json.loads(json.dumps(doc)))


def current():
    return _ovs.bridge_state(rows(BRIDGE_JSON), rows(PORT_JSON), rows(IFACE_JSON), 'kbovsbr0')


def want(**kw):
    spec = {'type': 'afxdp', 'options': {}, 'other_config': {}, 'ofport_request': None}
    spec.update(kw)
    return _ovs.desired_port(spec)


# --- OVSDB decoding and state ------------------------------------------------------------
def test_ovsdb_values_decode_maps_sets_and_uuids():
    assert _ovs.ovsdb_value(['map', [['a', '1']]]) == {'a': '1'}
    assert _ovs.ovsdb_value(['set', []]) == []
    assert _ovs.ovsdb_value(['uuid', 'x']) == 'x'
    assert _ovs.ovsdb_value(7) == 7


def test_bridge_state_describes_ports_without_the_internal_one():
    state = current()
    assert state['exists'] and state['datapath_type'] == 'netdev'
    assert sorted(state['ports']) == ['kbovsv0', 'kbovsv2']
    assert state['ports']['kbovsv0'] == {
        'type': 'afxdp', 'options': {'xdp-mode': 'native'},
        'other_config': {'pmd-rxq-affinity': '0:1'}, 'ofport_request': 1, 'ofport': 1,
        'error': None}
    assert state['ports']['kbovsv2']['error'].startswith('could not add')
    missing = {'exists': False, 'datapath_type': None, 'ports': {}}
    assert _ovs.bridge_state([], [], [], 'nope') == missing


# --- the plan ----------------------------------------------------------------------------
def test_nothing_differs_nothing_planned():
    state = current()
    ports = {'kbovsv0': want(options={'xdp-mode': 'native'},
                             other_config={'pmd-rxq-affinity': '0:1'}, ofport_request=1),
             'kbovsv2': want(options={}, other_config={})}
    assert _ovs.plan_bridge(state, 'kbovsbr0', 'present', 'netdev', ports) == []


def test_new_bridge_is_one_transaction_with_quoted_values():
    empty = {'exists': False, 'datapath_type': None, 'ports': {}}
    ports = {'v0': want(options={'xdp-mode': 'native', 'use-need-wakeup': True, 'n_rxq': 1},
                        other_config={'pmd-rxq-affinity': '0:1'}, ofport_request=1)}
    cmds = _ovs.plan_bridge(empty, 'br', 'present', 'netdev', ports)
    assert cmds == [['add-br', 'br'], ['set', 'Bridge', 'br', 'datapath_type=netdev'],
                    ['add-port', 'br', 'v0'],
                    ['set', 'Interface', 'v0', 'type=afxdp', 'options:n_rxq="1"',
                     'options:use-need-wakeup="true"', 'options:xdp-mode="native"',
                     'other_config:pmd-rxq-affinity="0:1"', 'ofport_request=1']]
    argv = _ovs.vsctl_argv(cmds[:2])
    assert argv == ['ovs-vsctl', '--timeout=10', 'add-br', 'br', '--', 'set', 'Bridge', 'br',
                    'datapath_type=netdev']


def test_changed_afxdp_options_recreate_the_port_and_extra_ports_go():
    state = current()
    ports = {'kbovsv0': want(options={'xdp-mode': 'generic'},
                             other_config={'pmd-rxq-affinity': '0:1'}, ofport_request=1)}
    cmds = _ovs.plan_bridge(state, 'kbovsbr0', 'present', 'netdev', ports)
    assert cmds[0] == ['del-port', 'kbovsbr0', 'kbovsv2']  # purged
    assert cmds[1:3] == [['del-port', 'kbovsbr0', 'kbovsv0'], ['add-port', 'kbovsbr0', 'kbovsv0']]
    assert 'options:xdp-mode="generic"' in cmds[3]
    kept = _ovs.plan_bridge(state, 'kbovsbr0', 'present', 'netdev', ports, purge=False)
    assert ['del-port', 'kbovsbr0', 'kbovsv2'] not in kept


def test_other_config_change_of_an_afxdp_port_is_set_in_place():
    state = current()
    ports = {'kbovsv0': want(options={'xdp-mode': 'native'}, ofport_request=1),
             'kbovsv2': want()}
    assert _ovs.plan_bridge(state, 'kbovsbr0', 'present', 'netdev', ports) == [
        ['remove', 'Interface', 'kbovsv0', 'other_config', 'pmd-rxq-affinity']]


def test_absent_deletes_the_bridge_and_only_our_keys():
    assert _ovs.plan_bridge(current(), 'kbovsbr0', 'absent') == [['del-br', 'kbovsbr0']]
    assert _ovs.plan_bridge({'exists': False, 'ports': {}}, 'x', 'absent') == []
    have = {'pmd-cpu-mask': '0x2', 'other': 'x'}
    assert _ovs.plan_other_config(have, {'pmd-cpu-mask': '', 'pmd-rxq-assign': ''}, 'absent') \
        == [['remove', 'Open_vSwitch', '.', 'other_config', 'pmd-cpu-mask']]
    assert _ovs.plan_other_config(have, {'pmd-cpu-mask': '0x2'}, 'present') == []
    assert _ovs.plan_other_config(have, {'pmd-rxq-isolate': False}, 'present') == [
        ['set', 'Open_vSwitch', '.', 'other_config:pmd-rxq-isolate="false"']]


# --- input checks ------------------------------------------------------------------------
def test_cpu_mask_and_affinity_parse():
    assert _ovs.mask_cpus('0x6') == [1, 2]
    assert _ovs.mask_cpus('2') == [1]
    with pytest.raises(ValueError):
        _ovs.mask_cpus('0xz')
    assert _ovs.affinity_cores('0:1, 1:0') == {0: 1, 1: 0}
    with pytest.raises(ValueError):
        _ovs.affinity_cores('1')


@pytest.mark.parametrize('other, ports, fragment', [
    ({'pmd-cpu-mask': '0x100'}, {}, 'names CPU 8, which this host does not have (online CPUs: 0-1)'),
    ({'pmd-cpu-mask': '0'}, {}, 'selects no CPU'),
    ({'pmd-cpu-mask': 'zz'}, {}, 'not a hexadecimal CPU mask'),
    ({}, {'p': want(other_config={'pmd-rxq-affinity': '0:7'})}, 'names CPU 7'),
    ({'pmd-cpu-mask': '0x1'}, {'p': want(other_config={'pmd-rxq-affinity': '0:1'})},
     'outside pmd-cpu-mask'),
    ({'pmd-cpu-mask': '0x2'}, {'p': want(other_config={'pmd-rxq-affinity': '0:1'}), 'q': want()},
     'q would not be polled'),
    ({}, {'p': want(options={'n_rxq': 1}, other_config={'pmd-rxq-affinity': '1:1'})},
     'beyond n_rxq 1'),
])
def test_cpu_checks_name_the_problem(other, ports, fragment):
    errors = _ovs.check_cpus(other, ports, [0, 1])
    assert any(fragment in e for e in errors), errors


def test_shared_pinned_core_is_fine_with_group_assignment():
    ports = {'p': want(other_config={'pmd-rxq-affinity': '0:1'}), 'q': want()}
    other = {'pmd-cpu-mask': '0x2', 'pmd-rxq-isolate': 'false', 'pmd-rxq-assign': 'group'}
    assert _ovs.check_cpus(other, ports, [0, 1]) == []


def test_port_checks():
    types = {'afxdp', 'system', 'internal'}
    assert _ovs.check_ports({'v0': want(options={'xdp-mode': 'native'})}, types, {'v0'}) == []
    errs = _ovs.check_ports({'v0': want()}, {'system'}, {'v0'})
    assert 'without AF_XDP support' in errs[0]
    errs = _ovs.check_ports({'gone': want()}, types, set())
    assert 'interface gone does not exist' in errs[0]
    errs = _ovs.check_ports({'v0': want(options={'xdp-mode': 'turbo'})}, types, {'v0'})
    assert "xdp-mode 'turbo' is not one of" in errs[0]
    # an internal port is created by OVS: no Linux interface needed
    assert _ovs.check_ports({'br-int': want(type='internal')}, types, set()) == []


def test_coexistence_refuses_our_program_another_program_and_a_forwarder():
    errs = _ovs.xdp_owner_errors('v0', {'id': 5, 'name': 'xdp_steer'}, False, [])
    assert 'kbypass steering program' in errs[0]
    assert 'kbypass steering program' in _ovs.xdp_owner_errors('v0', None, True, [])[0]
    assert 'already has XDP program xdp_other (id 9)' in _ovs.xdp_owner_errors(
        'v0', {'id': 9, 'name': 'xdp_other'}, False, [])[0]
    fwd_errors = _ovs.xdp_owner_errors('v0', None, False, ['echo-1'])
    assert 'forwarder instance(s) echo-1' in fwd_errors[0]
    assert _ovs.xdp_owner_errors('v0', None, False, []) == []
    argvs = {'a': ['kbypass-fwd', '--iface', 'v0'], 'b': ['kbypass-fwd', '--iface', 'v0',
                                                          '--netns', 'ns1'],
             'c': ['kbypass-fwd', '--iface', 'x', '--iface2', 'v0']}
    assert _ovs.forwarders_on(argvs, 'v0') == ['a', 'c']


# --- parsers -----------------------------------------------------------------------------
def test_parse_dpctl_show():
    ports = _ovs.parse_dpctl_show(DPCTL_SHOW)
    assert ports['kbovsv0']['type'] == 'afxdp' and ports['kbovsv0']['port_no'] == 2
    assert ports['kbovsv0']['config']['xdp-mode-in-use'] == 'native'
    assert ports['kbovsv2']['config']['xdp-mode'] == 'generic'
    assert ports['kbovsbr0'] == {'port_no': 1, 'type': 'tap', 'config': {}}


def test_parse_dump_ports_and_pmd_stats():
    ports = _ovs.parse_dump_ports(DUMP_PORTS)
    assert ports['1'] == {'rx_packets': 11, 'rx_bytes': 782, 'rx_dropped': None,
                          'tx_packets': 17, 'tx_bytes': 1418, 'tx_dropped': None}
    assert ports['LOCAL']['tx_dropped'] == 12
    threads = _ovs.parse_pmd_stats(PMD_STATS)
    assert threads['pmd thread numa_id 0 core_id 1']['packets_received'] == 19
    assert threads['pmd thread numa_id 0 core_id 1']['megaflow_hits'] == 9
    assert _ovs.pmd_received(threads) == 19  # the main thread is not a PMD


# --- verify judgement --------------------------------------------------------------------
def test_agreeing_counters_pass():
    verdict = _ovs.judge_ovs(probe())
    assert verdict['ok'], verdict['failures']
    assert verdict['deltas'] == {'afxdp_rx': 101, 'afxdp_tx': 100, 'far_rx': 100,
                                 'far_tx': 101, 'pmd_rx': 201}


@pytest.mark.parametrize('change, fragment', [
    ({'echo': {'packets': 0, 'echoed': 0}}, 'far namespace received 0 of 100'),
    ({'generator': {'sent': 100, 'received': 90, 'lost': 10}}, '90 of 100 echoes came back'),
    ({'ports_after': {'1': {'rx_packets': 50, 'tx_packets': 105},
                      '2': {'rx_packets': 105, 'tx_packets': 106}}},
     'afxdp port v0 RX moved by 45, expected 100'),
    ({'pmd_after': {'pmd thread 1': {'packets_received': 20}}}, 'PMD threads received 10'),
    ({'pmd_after': None}, 'no PMD statistics'),
    ({'dpctl': {'v0': {'type': 'afxdp', 'config': {'xdp-mode-in-use': 'generic'}}}},
     'runs xdp mode generic, native was asked for'),
    ({'dpctl': {'v0': {'type': 'system', 'config': {}}}}, 'not an afxdp port'),
    ({'neighbour': {'address': '1.2.3.4', 'state': 'FAILED', 'resolved': False}},
     'ARP for 1.2.3.4'),
    ({'ping': {'sent': 3, 'received': 0}}, 'ping through the bridge: 0 of 3'),
])
def test_each_broken_link_is_named(change, fragment):
    verdict = _ovs.judge_ovs(probe(**change))
    assert not verdict['ok']
    assert any(fragment in f for f in verdict['failures']), verdict['failures']


def test_best_effort_accepts_any_mode_in_use_and_merge_and_render():
    data = probe(xdp_mode='best-effort',
                 dpctl={'v0': {'type': 'afxdp', 'config': {'xdp-mode-in-use': 'generic'}}})
    ovs = _ovs.judge_ovs(data)
    assert ovs['ok']
    merged = _ovs.merge_verdict({'ok': True, 'failures': []}, _ovs.judge_ovs(probe(ping={})))
    assert not merged['ok'] and merged['ovs']['failures'] == merged['failures']
    text = _ovs.render_ovs_markdown(data, ovs)
    assert '**OVS: PASS**' in text and '| xdp mode asked / in use | best-effort / generic |' in text
    assert 'OVS PASS' in _ovs.summary_line('h', data, ovs)
