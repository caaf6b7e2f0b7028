"""Integration tests for kbypass.xdp.traffic_probe / verify_report on real namespaces.

A plain veth pair (no XDP program, no forwarder): the non-matching probes must see the
kernel answer (ICMP, ARP/ND after a flush, UDP to a listening socket, TCP RST), and the
verdict must name the missing steering counters rather than pass.
Prefix ``kbmolt`` (namespaces kbmolt1/kbmolt2, links kbmoltv0/kbmoltv1).
"""
import json
import os

import pytest

from conftest import run_module, sh, veth_bed  # pylint: disable=import-error

NS_DUT, NS_PEER = 'kbmolt1', 'kbmolt2'
IF_DUT, IF_PEER = 'kbmoltv0', 'kbmoltv1'
V4_DUT, V4_PEER = '198.19.1.10', '198.19.1.20'
V6_DUT, V6_PEER = '2001:2:0:2::10', '2001:2:0:2::20'


@pytest.fixture
def plain_pair():
    with veth_bed(NS_DUT, IF_DUT, NS_PEER, IF_PEER, (V4_DUT + '/24', V6_DUT + '/64'),
                  (V4_PEER + '/24', V6_PEER + '/64')):
        yield


def _args(**kw):
    args = {'dut_netns': NS_DUT, 'dut_ifname': IF_DUT, 'dut_addresses': [V4_DUT, V6_DUT],
            'peer_netns': NS_PEER, 'peer_ifname': IF_PEER, 'nonmatching_count': 10,
            'ping_count': 2, 'stats_wait': 0.5,
            'probes': ['nonmatching', 'observation']}
    args.update(kw)
    return args


def test_nonmatching_probes_see_the_kernel_answer(plain_pair, tmp_path):
    res = run_module('traffic_probe', _args())
    assert not res.get('failed'), res
    assert res['changed'] is False
    nm = res['nonmatching']
    assert [i['received'] for i in nm['icmp']] == [2, 2]
    assert all(n['resolved'] for n in nm['neighbour']), nm['neighbour']
    assert [u['received'] for u in nm['udp']] == [10, 10]
    assert [t['outcome'] for t in nm['tcp']] == ['refused', 'refused']
    # nothing is attached: no program, no pins, the report says so instead of passing
    assert res['observation']['program'] is None
    assert nm['steer_before'] is None
    assert res['topology']['dut_link']['addresses'] == [V4_DUT + '/24', V6_DUT + '/64']
    assert not any(n['flushed'] for n in nm['neighbour'])  # a fresh pair: nothing cached

    # now the peer has entries: check mode predicts the flush and leaves them alone
    pred = run_module('traffic_probe', _args(), check=True)
    assert pred['changed'] is True and 'nonmatching' not in pred, pred
    cached = sh(['ip', '-j', 'neigh', 'show', 'dev', IF_PEER], netns=NS_PEER).stdout
    assert V4_DUT in cached and V6_DUT in cached
    again = run_module('traffic_probe', _args())
    assert again['changed'] is True
    assert [n['flushed'] for n in again['nonmatching']['neighbour']] == [True, True]
    assert all(n['resolved'] for n in again['nonmatching']['neighbour'])

    rep = run_module('verify_report', {'host': 'kbmolt', 'data': res,
                                       'report_dir': str(tmp_path), 'plot': False})
    assert rep['ok'] is False
    assert rep['msg'] == 'bpftool net shows no XDP program on %s' % IF_DUT
    doc = json.loads((tmp_path / 'verify-kbmolt.json').read_text())
    assert doc['ok'] is False


def test_probe_detects_a_dead_kernel_path(plain_pair):
    """Drop everything to the DUT: every non-matching probe must report the silence."""
    sh(['ip', '-n', NS_DUT, 'link', 'set', IF_DUT, 'down'])
    res = run_module('traffic_probe', _args(dut_addresses=[V4_DUT]))
    assert not res.get('failed'), res
    nm = res['nonmatching']
    assert nm['icmp'][0]['received'] == 0
    assert nm['neighbour'][0]['resolved'] is False
    assert nm['udp'][0]['received'] == 0
    assert nm['tcp'][0]['outcome'] != 'refused'


def test_matching_without_generator_is_actionable(plain_pair):
    res = run_module('traffic_probe', _args(probes=['matching'],
                                            generator='/nonexistent/kbypass-gen'))
    assert res['failed'] is True
    assert 'kbypass-gen is missing' in res['msg'] or 'missing or not executable' in res['msg']
    assert not os.path.exists('/sys/fs/bpf/kbypass/%s' % NS_DUT)


def test_address_not_on_the_dut_is_refused_before_any_traffic(plain_pair):
    """198.18.210.99 is not on the DUT: a clear message (not "[Errno 99]" from a bind),
    and nothing sent or flushed — the peer still knows the DUT's neighbour entry."""
    sh(['ping', '-c', '1', '-W', '2', V4_DUT], netns=NS_PEER)
    res = run_module('traffic_probe', _args(dut_addresses=[V4_DUT, '198.18.210.99']))
    assert res.get('failed') is True and res.get('changed') is False, res
    assert 'dut_addresses 198.18.210.99 are not configured on %s' % IF_DUT in res['msg'], res
    assert 'Errno' not in res['msg']
    neigh = sh(['ip', 'neigh', 'show', V4_DUT, 'dev', IF_PEER], netns=NS_PEER).stdout
    assert 'lladdr' in neigh, neigh
