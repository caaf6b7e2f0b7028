"""Unit tests for kbypass.xdp.traffic_probe: input validation and counter parsing."""
import json

import pytest

from ansible_collections.kbypass.xdp.plugins.module_utils import _probe
from ansible_collections.kbypass.xdp.plugins.modules import traffic_probe as tp
from module_main import run_main  # tests/unit/module_main.py


def params(**kw):
    p = dict(dut_netns='kbmol1', dut_ifname='kbmolv0', dut_addresses=['198.19.0.10'],
             peer_netns='kbmol2', peer_ifname='kbmolv1', port=4242, other_port=4243,
             count=2000, rate=10000, tcpdump_count=100)
    p.update(kw)
    return p


def test_validate_accepts_the_molecule_topology():
    assert tp.validate(params(dut_addresses=['198.19.0.10', '2001:2:0:1::10'])) == []


@pytest.mark.parametrize('kw, needle', [
    (dict(dut_ifname='a-very-long-ifname0'), 'dut_ifname: interface name'),
    (dict(peer_ifname='a/b'), 'peer_ifname: interface name'),
    (dict(dut_netns='bad name'), 'dut_netns: network namespace name'),
    (dict(dut_addresses=['198.19.0.10/24']), "'198.19.0.10/24' is not an IP address"),
    (dict(dut_addresses=[]), 'give at least one address'),
    (dict(port=0), 'port: 0 is not a UDP port'),
    (dict(other_port=4242), 'other_port must differ from port'),
    (dict(rate=0), 'rate must be positive'),
    (dict(tcpdump_count=5000), 'tcpdump_count (5000) cannot exceed count (2000)'),
    (dict(tcpdump_timeout=-1), 'tcpdump_timeout must not be negative'),
    (dict(stats_wait=-0.5), 'stats_wait must not be negative'),
    (dict(ping_count=-3), 'ping_count must not be negative'),
])
def test_validate_rejects(kw, needle):
    errors = tp.validate(params(**kw))
    assert any(needle in e for e in errors), errors


def test_read_forwarder_missing_and_dead(tmp_path):
    assert _probe.read_forwarder(str(tmp_path / 'none.json')) is None
    path = tmp_path / 'x.stats.json'
    path.write_text(json.dumps({'pid': 999999999, 'running': True, 'rx_packets': 3}))
    # a dead pid does not make us wait for a rewrite that will never come
    data = _probe.read_forwarder(str(path), since=path.stat().st_mtime + 100, wait=30)
    assert data['rx_packets'] == 3 and data['_alive'] is False and data['_fresh'] is False


def test_module_rejects_bad_input_before_touching_anything():
    args = params(dut_addresses=['not-an-ip'], dut_netns='kbmol-does-not-exist')
    out = run_main(tp, args)
    assert out['failed'] is True
    assert "'not-an-ip' is not an IP address" in out['msg']


def test_module_missing_namespace_is_actionable():
    out = run_main(tp, params(dut_netns='kbmolnone1', peer_netns='kbmolnone2'))
    assert out['failed'] is True
    assert "network namespace 'kbmolnone1' does not exist: run the testbed role first" in out['msg']


def test_address_error_names_what_is_wrong():
    p = params(dut_addresses=['198.19.0.10', '2001:2:0:1:0::10', '198.19.0.99'])
    dut = {'addresses': ['198.19.0.10/24', '2001:2:0:1::10/64']}
    assert '198.19.0.99 are not configured on kbmolv0' in tp.address_error(p, dut, {'mac': 'x'})
    assert tp.address_error(params(), {'addresses': ['198.19.0.10/24']}, {'mac': 'x'}) is None
    assert 'peer_ifname kbmolv1 does not exist in network namespace kbmol2' in tp.address_error(
        params(), {'addresses': ['198.19.0.10/24']}, {})


def test_a_frame_larger_than_the_mtu_is_refused_with_the_mtu_it_needs():
    dut = {'addresses': ['198.19.0.10/24'], 'mtu': 9000}
    assert tp.address_error(params(size=9000), dut, {'mac': 'x', 'mtu': 9000}) is None
    assert tp.address_error(params(size=9014), dut, {'mac': 'x', 'mtu': 9000}) is None
    msg = tp.address_error(params(size=9000), dut, {'mac': 'x', 'mtu': 1500})
    assert msg.startswith('size 9000 needs an MTU of at least 8986 on peer_ifname kbmolv1, '
                          'which has 1500') and 'testbed_mtu: 9000' in msg
    # only the matching burst sends frames of that size
    assert tp.address_error(params(size=9000, probes=['nonmatching']), dut,
                            {'mac': 'x', 'mtu': 1500}) is None
