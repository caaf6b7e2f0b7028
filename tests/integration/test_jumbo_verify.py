"""Jumbo frames through user space, end to end (issue 16): on a bed with MTU 9000, a burst of
9000-byte UDP frames goes XDP (xdp.frags) -> AF_XDP (XDP_USE_SG) -> kbypass-fwd in each of
its four modes, and verify's judge (traffic_probe + verify_report, what the verify role runs)
passes with the counters equal; ping, ARP and a 1500-byte burst still work on the same bed.

Everything is real: namespaces and veths from kbypass.xdp.netns_veth (link mtu 9000), the
steering program built from files/bpf, the forwarder and generator built from files/forwarder
(both copied and built in a temporary directory), real AF_XDP sockets in copy mode.

Bed (prefix ``kbja``): kbjav2@kbja3 198.18.64.10/24 <-> kbjav3@kbja4 198.18.64.20/24, and
kbjav4@kbja3 <-> kbjav5@kbja3 for l2fwd, all MTU 9000. Runtime files under
/run/kbypass/kbja-forwarder. Each burst: 200 frames at 2000/s.
"""
import json
import os
import shutil

import pytest

from conftest import ROOT, copy_build, kill_state_processes, remove_bed, run_module, sh  # pylint: disable=import-error

NS1, NS2 = 'kbja3', 'kbja4'
V0, V1, V2, V3 = 'kbjav2', 'kbjav3', 'kbjav4', 'kbjav5'
A1, A2 = '198.18.64.10', '198.18.64.20'
PIN = '/sys/fs/bpf/kbypass/%s/%s' % (NS1, V0)
STATE = '/run/kbypass/kbja-forwarder'
PORT = 4242
N = 200
JUMBO = 9000

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (netns, XDP, AF_XDP)')


@pytest.fixture(scope='module')
def bed(tmp_path_factory):
    build = tmp_path_factory.mktemp('kbja_build')
    bpf = copy_build(os.path.join(ROOT, 'files', 'bpf'), str(build / 'bpf'))
    fwd = copy_build(os.path.join(ROOT, 'files', 'forwarder'), str(build / 'forwarder'))
    remove_bed(NS1, NS2)
    kill_state_processes(STATE, remove=True)
    try:
        res = run_module('netns_veth', {'namespaces': [NS1, NS2], 'links': [
            {'name': V0, 'netns': NS1, 'mtu': JUMBO, 'addresses': [A1 + '/24'],
             'peer': {'name': V1, 'netns': NS2, 'addresses': [A2 + '/24']}},
            {'name': V2, 'netns': NS1, 'mtu': JUMBO, 'peer': {'name': V3, 'netns': NS1}}]})
        assert not res.get('failed'), res
        # V3's rx counter must count only what l2fwd sends: no IPv6 chatter on that pair
        for dev in (V2, V3):
            sh(['sysctl', '-qw', 'net.ipv6.conf.%s.disable_ipv6=1' % dev], netns=NS1)
        res = run_module('xdp_attach', {'interface': V0, 'netns': NS1, 'ports': [PORT],
                                        'object': os.path.join(bpf, 'xdp_steer.o')})
        assert not res.get('failed'), res
        yield {'fwd': os.path.join(fwd, 'kbypass-fwd'), 'gen': os.path.join(fwd, 'kbypass-gen')}
    finally:
        kill_state_processes(STATE, remove=True)
        run_module('xdp_attach', {'interface': V0, 'netns': NS1, 'state': 'absent'})
        remove_bed(NS1, NS2)
        shutil.rmtree(STATE, ignore_errors=True)


def _forwarder(bed, mode, **kw):
    args = dict({'name': 'kbja-' + mode, 'mode': mode, 'interface': V0, 'netns': NS1,
                 'queues': [0], 'cpus': [1], 'binary': bed['fwd'], 'state_dir': STATE,
                 'supervisor': 'process', 'stats_interval': 0.2, 'multi_buffer': True}, **kw)
    res = run_module('afxdp_forwarder', args)
    assert res.get('running') is True, res
    return args


def _stop(args):
    run_module('afxdp_forwarder', {'name': args['name'], 'state': 'stopped', 'state_dir': STATE})


def _verify(bed, mode, size=JUMBO, probes=('matching',)):
    """What the verify role runs: traffic_probe, then verify_report's verdict."""
    data = run_module('traffic_probe', {
        'dut_netns': NS1, 'dut_ifname': V0, 'dut_addresses': [A1], 'peer_netns': NS2,
        'peer_ifname': V1, 'port': PORT, 'count': N, 'rate': 2000, 'size': size,
        'generator': bed['gen'], 'forwarder_stats_file': '%s/kbja-%s.stats.json' % (STATE, mode),
        'stats_wait': 0.6, 'tcpdump_count': 0, 'nonmatching_count': 5, 'ping_count': 2,
        'probes': list(probes)})
    assert not data.get('failed'), data.get('msg')
    rep = run_module('verify_report', {'host': 'kbja-' + mode, 'data': data, 'mode': mode,
                                       'report_dir': '/tmp/kbja-reports', 'plot': False})
    assert rep.get('ok') is True, (rep.get('msg'), rep.get('summary'))
    [burst] = data['matching']
    return data, burst


def _stats(args):
    res = run_module('afxdp_forwarder', args)
    assert res['changed'] is False
    return res['stats']


def _descs_per_frame(size=JUMBO, frame=4096):
    return -(-size // (frame - 256))  # the kernel fills frame - XDP headroom per descriptor


def test_echo_9000_byte_frames_and_the_kernel_path_still_works(bed):
    args = _forwarder(bed, 'echo')
    try:
        data, burst = _verify(bed, 'echo', probes=('matching', 'nonmatching'))
        stats = _stats(args)
        assert stats['multi_buffer'] is True
        assert stats['rx_packets'] == stats['tx_packets'] == N, stats
        assert stats['rx_descs'] == stats['tx_descs'] == N * _descs_per_frame(), stats
        gen = burst['generator']
        assert gen['sent'] == gen['received'] == N, gen
        nm = data['nonmatching']
        assert all(i['received'] == 2 for i in nm['icmp']), nm['icmp']  # ping
        assert all(n['resolved'] for n in nm['neighbour']), nm['neighbour']  # ARP after a flush
        # a standard 1500-byte burst through the same multi-buffer forwarder
        _data, burst = _verify(bed, 'echo', size=1500)
        assert burst['generator']['received'] == N
        after = _stats(args)
        assert after['rx_descs'] - stats['rx_descs'] == N  # one descriptor each
    finally:
        _stop(args)


def test_rxdrop_9000_byte_frames(bed):
    args = _forwarder(bed, 'rxdrop')
    try:
        _data, burst = _verify(bed, 'rxdrop')
        stats = _stats(args)
        assert stats['rx_packets'] == N and stats['tx_packets'] == 0, stats
        assert stats['rx_descs'] == N * _descs_per_frame(), stats
        assert burst['generator']['sent'] == N and burst['generator']['received'] == 0
    finally:
        _stop(args)


def _rx(ns, dev):
    out = sh(['ip', '-s', '-j', 'link', 'show', dev], netns=ns).stdout
    return json.loads(out)[0]['stats64']['rx']


def test_l2fwd_9000_byte_frames_out_of_the_second_interface(bed):
    args = _forwarder(bed, 'l2fwd', interface2=V2)
    try:
        before = _rx(NS1, V3)
        _verify(bed, 'l2fwd')
        stats = _stats(args)
        assert stats['rx_packets'] == stats['tx_packets'] == N, stats
        assert stats['rx_descs'] == stats['tx_descs'] == N * _descs_per_frame(), stats
        after = _rx(NS1, V3)
        assert after['packets'] - before['packets'] == N
        assert after['bytes'] - before['bytes'] == N * JUMBO  # whole frames arrived
    finally:
        _stop(args)


def _udp_snmp(ns):
    lines = [l.split() for l in sh(['cat', '/proc/net/snmp'], netns=ns).stdout.splitlines()
             if l.startswith('Udp:')]
    return dict(zip(lines[0][1:], (int(v) for v in lines[1][1:])))


def test_kernel_mode_reinjects_9000_byte_frames(bed):
    args = _forwarder(bed, 'kernel', tap='kbjatap0')
    try:
        before = _udp_snmp(NS1)
        _verify(bed, 'kernel')
        stats = _stats(args)
        assert stats['rx_packets'] == stats['tx_packets'] == N, stats
        assert stats['rx_descs'] == N * _descs_per_frame(), stats
        # the kernel behind the TAP got every datagram whole (no listener on the port)
        after = _udp_snmp(NS1)
        assert after['NoPorts'] - before['NoPorts'] == N, (before, after)
    finally:
        _stop(args)
