"""Unit tests for module_utils/_report.py: deltas, the agreement chain, rendering."""
import copy
import json

import pytest

from ansible_collections.kbypass.xdp.plugins.module_utils import _report as r
from report_samples import fwd, gen, good_data, kernel_view, steer  # tests/unit/report_samples.py


def test_steer_delta_and_missing():
    d = r.steer_delta(steer(matched=1), steer(matched=5, passed=2))
    assert d['matched'] == 4 and d['passed'] == 2 and d['redirected'] == 0
    assert r.steer_delta(None, steer()) is None
    assert r.steer_delta(steer(), None) is None
    # bare integers are accepted too
    assert r.steer_delta({'matched': 1}, {'matched': 3})['matched'] == 2


def test_forwarder_delta_restart_counts_from_zero():
    expected = {'rx': 20, 'tx': 15, 'rx_bytes': 1280, 'tx_bytes': 960}
    assert r.forwarder_delta(fwd(10, 10), fwd(30, 25)) == expected
    # a new pid: the new process counted from zero
    assert r.forwarder_delta(fwd(1000, 1000, pid=1), fwd(30, 30, pid=2))['rx'] == 30
    assert r.forwarder_delta(None, fwd(5, 5))['rx'] == 5
    assert r.forwarder_delta(fwd(5, 5), None) is None


def test_healthy_path_passes():
    verdict = r.evaluate(good_data())
    assert verdict['ok'], verdict['failures']
    assert verdict['mode'] == 'echo'
    assert [b['steer']['redirected'] for b in verdict['matching']] == [2000, 2000]
    assert verdict['nonmatching']['steer']['passed'] == 100


def test_forwarder_down_names_the_fallback():
    """The forwarder is stopped: no socket in xsks_map, XDP passes matching traffic on."""
    data = good_data()
    b = data['matching'][0]
    b['steer_after'] = steer(seen=2015, matched=2000, redirected=0, missed=2000, passed=15)
    b['forwarder_after'] = fwd(0, 0)
    b['generator'] = gen(sent=2000, received=0)
    verdict = r.evaluate(data)
    assert not verdict['ok']
    first = verdict['failures'][0]
    assert first.startswith('IPv4 198.19.0.10:4242: XDP redirected 0 != XDP matched 2000')
    assert 'not echoed by user space' in first
    assert 'fell back to the kernel (redirect_missed grew by 2000)' in first
    assert 'is the forwarder running?' in first


def test_forwarder_stats_missing():
    data = good_data()
    for b in data['matching']:
        b['forwarder_before'] = b['forwarder_after'] = None
    verdict = r.evaluate(data)
    assert 'forwarder stats unavailable' in verdict['failures'][0]


def test_forwarder_rx_short_is_first_disagreement():
    data = good_data()
    data['matching'][1]['forwarder_after'] = fwd(3990, 3990)
    verdict = r.evaluate(data)
    assert verdict['failures'][0] == (
        'IPv6 [2001:2:0:1::10]:4242: forwarder RX 1990 != XDP redirected 2000: matching traffic '
        'was not echoed by user space (redirected frames did not reach the socket: RX ring full '
        'or wrong queue?)')


@pytest.mark.parametrize('mutate, needle', [
    (lambda d: d['matching'][0].update(generator=gen(sent=1500, received=1500)),
     'generator sent 1500 of 2000 requested'),
    (lambda d: d['matching'][0].update(steer_after=steer(seen=15, passed=15)),
     'XDP matched 0 != generator sent 2000'),
    (lambda d: d['matching'][0].update(forwarder_after=fwd(2000, 1999)),
     'forwarder TX 1999 != forwarder RX 2000'),
    (lambda d: d['matching'][0].update(generator=gen(sent=2000, received=1998)),
     'replies received 1998 != forwarder TX 2000'),
    (lambda d: d['matching'][0].update(steer_after=None),
     'XDP counters unavailable'),
])
def test_each_link_of_the_chain_can_fail(mutate, needle):
    data = good_data()
    mutate(data)
    verdict = r.evaluate(data)
    assert not verdict['ok']
    assert needle in verdict['failures'][0]


def test_rxdrop_mode_expects_no_replies():
    data = good_data()
    for b in data['matching']:
        b['generator'] = gen(received=0)
        for key in ('forwarder_before', 'forwarder_after'):
            b[key]['tx_packets'] = 0  # the snapshots are shared between bursts
    data['nonmatching']['forwarder_after']['tx_packets'] = 0
    data['observation']['tcpdump'][0]['captured'] = 0  # nothing is echoed in rxdrop mode
    assert r.evaluate(data, mode='rxdrop')['ok']
    # the same numbers in echo mode fail
    assert not r.evaluate(data, mode='echo')['ok']


@pytest.mark.parametrize('mutate, needle', [
    (lambda nm: nm.update(forwarder_after=fwd(4005, 4005)),
     'non-matching traffic reached the AF_XDP socket: forwarder RX grew by 5'),
    (lambda nm: nm.update(steer_after=steer(seen=4120, matched=4000, redirected=4003,
                                            passed=120)),
     'non-matching traffic was redirected by XDP'),
    (lambda nm: nm.update(steer_after=steer(seen=4030, matched=4000, redirected=4000,
                                            passed=30)),
     'XDP passed grew by 10, expected at least 23'),
    (lambda nm: nm['udp'][0].update(received=0), 'a kernel socket received 0 of 20'),
    (lambda nm: nm['tcp'][0].update(outcome='timeout'), 'the kernel did not answer'),
    (lambda nm: nm['icmp'][0].update(received=0), 'ICMP echo to 198.19.0.10: 0 of 3 replies'),
    (lambda nm: nm['neighbour'][0].update(resolved=False, state='FAILED'),
     'did not resolve after a flush (state FAILED)'),
])
def test_nonmatching_failures(mutate, needle):
    data = good_data()
    mutate(data['nonmatching'])
    failures = r.evaluate(data)['failures']
    assert failures and needle in failures[0], failures


def test_tcp_connected_is_a_kernel_answer_too():
    data = good_data()
    data['nonmatching']['tcp'][0]['outcome'] = 'connected'
    assert r.evaluate(data)['ok']


def test_observation_failures():
    data = good_data()
    data['observation']['tcpdump'][0]['captured'] = 7
    data['observation']['program']['name'] = 'xsk_def_prog'
    data['observation']['xsks_map']['type'] = 'array'
    failures = r.evaluate(data)['failures']
    assert failures == [
        'tcpdump on the peer saw 7 of 100 echoed datagrams (ip and udp src port 4242)',
        "bpftool net shows program 'xsk_def_prog' on kbmolv0, expected 'xdp_steer'",
        'pinned xsks_map is a array map, expected xskmap']
    data['observation']['program'] = None
    assert 'no XDP program on kbmolv0' in r.evaluate(data)['failures'][1]


def test_series_rates_interval_and_cumulative():
    ts, tx, rx = r.series_rates([{'t': 0.1, 'tx': 1000, 'rx': 990},
                                 {'t': 0.2, 'tx': 1000, 'rx': 1010}], total=2000)
    assert ts == [0.1, 0.2]
    assert tx == pytest.approx([10000, 10000]) and rx == pytest.approx([9900, 10100])
    # cumulative samples (last == total) are differenced
    ts, tx, rx = r.series_rates([{'t': 0.1, 'tx': 1000, 'rx': 1000},
                                 {'t': 0.2, 'tx': 2000, 'rx': 2000}], total=2000)
    assert tx == pytest.approx([10000, 10000])
    assert r.series_rates([]) == ([], [], [])
    # what kbypass-gen prints: cumulative, a start sample at t=0 and a repeated final one
    ts, tx, rx = r.series_rates([{'t': 0.0, 'tx': 0, 'rx': 0}, {'t': 0.1, 'tx': 1000, 'rx': 986},
                                 {'t': 0.2, 'tx': 2000, 'rx': 2000},
                                 {'t': 0.2, 'tx': 2000, 'rx': 2000}], total=2000)
    assert ts == [0.0, 0.1, 0.2]
    assert tx == pytest.approx([0, 10000, 10000]) and rx == pytest.approx([0, 9860, 10140])


def test_render_markdown_and_json():
    data = good_data()
    verdict = r.evaluate(data)
    md = r.render_markdown('bench1', data, verdict, plot_name='verify-bench1.png')
    assert md.startswith('# kbypass.xdp verify — bench1')
    assert '**Verdict: PASS**' in md
    assert '| IPv4 198.19.0.10:4242 | 2000 | 2000 | 2000 | 0 | 2000 | 2000 | 2000 | 0 |' in md
    assert 'xdp_steer (id 42, tag abcd)' in md
    assert '![pps over time](verify-bench1.png)' in md
    assert 'TCP to 198.19.0.10 port 4242 | refused' in md
    doc = json.loads(r.render_json('bench1', data, verdict))
    assert doc['ok'] is True and doc['host'] == 'bench1'
    assert doc['data']['matching'][0]['generator']['sent'] == 2000


def test_render_failure_and_summary():
    data = copy.deepcopy(good_data())
    data['matching'][0]['forwarder_after'] = fwd(0, 0)
    data['matching'][1]['forwarder_before'] = fwd(0, 0)
    data['matching'][1]['forwarder_after'] = fwd(2000, 2000)
    verdict = r.evaluate(data)
    md = r.render_markdown('h', data, verdict)
    assert '**Verdict: FAIL** — IPv4 198.19.0.10:4242: forwarder RX 0 != XDP redirected 2000' in md
    assert '## Disagreements' in md
    lines = r.summary_lines('h', data, verdict)
    assert lines[0].startswith('h: FAIL — program xdp_steer id 42 (driver), forwarder echo/copy')
    assert lines[-1].startswith('first disagreement: IPv4 198.19.0.10:4242: forwarder RX 0')


def test_render_kernel_section():
    md = r.render_kernel_markdown(kernel_view())
    assert md.startswith('## What the kernel sees\n')
    # the note: why tcpdump on the DUT is empty, and what shows the packets
    assert 'tcpdump' in md and 'make observe' in md and 'tcpdump -i <tap>' in md
    assert '| ns1 | veth0 | UP | 1500 | driver id 42 | 4031 | 0 | 4012 | 1 |' in md
    assert '| ns1 | lo |' not in md  # loopback is noise
    assert '| 42 | xdp_steer | abcd | xdp | 2026-12-03 12:13:20 UTC | 1120 / 700 | 7,8,9 |' in md
    assert '| 7 | xsks_map | xskmap | 4 / 4 | 64 |' in md
    assert '| echo-ns1-veth0 | ns1 | veth0 | 0,1 | copy | True |' in md
    assert '| echo-ns1-veth0 | 1234 | echo | 4000 | 4000 | 0 | 3 | — | — | 0 | — |' in md
    assert '- ns1/veth0: peer_ifindex 3, rx_queue_0_xdp_packets 4031' in md  # zeros left out
    assert '- bpftool net show in ns2: No such file' in md


def test_render_kernel_section_names_the_capture_build():
    view = kernel_view()
    view['maps'].append({'id': 9, 'type': 'ringbuf', 'name': 'kb_capture_ring'})
    md = r.render_kernel_markdown(view)
    assert '| 42 | xdp_steer (capture build: a capture was running) | abcd |' in md


def test_render_kernel_section_of_nothing_has_the_headings_and_the_note():
    for view in ({}, None, {'namespaces': {'ns1': None}, 'forwarders': {'x': 'garbage'}}):
        md = r.render_kernel_markdown(view)
        assert '### XDP programs' in md and 'make observe' in md
        assert 'What could not be read' not in md
