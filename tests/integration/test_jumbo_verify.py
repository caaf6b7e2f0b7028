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
import subprocess
import sys

import pytest

from ansible_collections.kbypass.xdp.plugins.modules import traffic_probe, verify_report

from conftest import BIN, ROOT, _env, copy_builds, kill_state_processes, remove_bed, run_in_process, run_module, sh  # pylint: disable=import-error

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
    bpf, fwd = copy_builds(tmp_path_factory.mktemp('kbja_build'))
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
        yield {'fwd': os.path.join(fwd, 'kbypass-fwd'), 'gen': os.path.join(fwd, 'kbypass-gen'),
               'reports': str(tmp_path_factory.mktemp('kbja_reports'))}
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


def _verify(bed, capsys, mode, size=JUMBO, probes=('matching',)):
    """What the verify role runs: traffic_probe, then verify_report's verdict."""
    data = run_in_process(traffic_probe, {
        'dut_netns': NS1, 'dut_ifname': V0, 'dut_addresses': [A1], 'peer_netns': NS2,
        'peer_ifname': V1, 'port': PORT, 'count': N, 'rate': 2000, 'size': size,
        'generator': bed['gen'], 'forwarder_stats_file': '%s/kbja-%s.stats.json' % (STATE, mode),
        'stats_wait': 0.6, 'tcpdump_count': 0, 'nonmatching_count': 5, 'ping_count': 2,
        'probes': list(probes)}, capsys)
    assert not data.get('failed'), data.get('msg')
    rep = run_in_process(verify_report, {'host': 'kbja-' + mode, 'data': data, 'mode': mode,
                                         'report_dir': bed['reports'], 'plot': False}, capsys)
    assert rep.get('ok') is True, (rep.get('msg'), rep.get('summary'))
    [burst] = data['matching']
    return data, burst


def _delta(burst):
    """The forwarder's counters over one burst, from the stats snapshots the probe took."""
    before, after = burst['forwarder_before'] or {}, burst['forwarder_after']
    assert after['multi_buffer'] is True, after
    return dict((k, after[k] - before.get(k, 0))
                for k in ('rx_packets', 'tx_packets', 'rx_descs', 'tx_descs'))


def _descs_per_frame(size=JUMBO, frame=4096):
    return -(-size // (frame - 256))  # the kernel fills frame - XDP headroom per descriptor


def test_echo_9000_byte_frames_and_the_kernel_path_still_works(bed, capsys):
    args = _forwarder(bed, 'echo')
    try:
        data, burst = _verify(bed, capsys, 'echo', probes=('matching', 'nonmatching'))
        d = _delta(burst)
        assert d['rx_packets'] == d['tx_packets'] == N, d
        assert d['rx_descs'] == d['tx_descs'] == N * _descs_per_frame(), d
        gen = burst['generator']
        assert gen['sent'] == gen['received'] == N, gen
        nm = data['nonmatching']
        assert all(i['received'] == 2 for i in nm['icmp']), nm['icmp']  # ping
        assert all(n['resolved'] for n in nm['neighbour']), nm['neighbour']  # ARP after a flush
        # a standard 1500-byte burst through the same multi-buffer forwarder: one descriptor each
        _data, burst = _verify(bed, capsys, 'echo', size=1500)
        assert burst['generator']['received'] == N
        d = _delta(burst)
        assert d['rx_packets'] == d['rx_descs'] == d['tx_descs'] == N, d
    finally:
        _stop(args)


def test_rxdrop_9000_byte_frames(bed, capsys):
    args = _forwarder(bed, 'rxdrop')
    try:
        _data, burst = _verify(bed, capsys, 'rxdrop')
        d = _delta(burst)
        assert d['rx_packets'] == N and d['tx_packets'] == 0, d
        assert d['rx_descs'] == N * _descs_per_frame(), d
        assert burst['generator']['sent'] == N and burst['generator']['received'] == 0
    finally:
        _stop(args)


def _rx(ns, dev):
    out = sh(['ip', '-s', '-j', 'link', 'show', dev], netns=ns).stdout
    return json.loads(out)[0]['stats64']['rx']


def test_l2fwd_9000_byte_frames_out_of_the_second_interface(bed, capsys):
    args = _forwarder(bed, 'l2fwd', interface2=V2)
    try:
        before = _rx(NS1, V3)
        _data, burst = _verify(bed, capsys, 'l2fwd')
        d = _delta(burst)
        assert d['rx_packets'] == d['tx_packets'] == N, d
        assert d['rx_descs'] == d['tx_descs'] == N * _descs_per_frame(), d
        after = _rx(NS1, V3)
        assert after['packets'] - before['packets'] == N
        assert after['bytes'] - before['bytes'] == N * JUMBO  # whole frames arrived
    finally:
        _stop(args)


def _udp_snmp(ns):
    lines = [l.split() for l in sh(['cat', '/proc/net/snmp'], netns=ns).stdout.splitlines()
             if l.startswith('Udp:')]
    return dict(zip(lines[0][1:], (int(v) for v in lines[1][1:])))


def test_kernel_mode_reinjects_9000_byte_frames(bed, capsys):
    args = _forwarder(bed, 'kernel', tap='kbjatap0')
    try:
        before = _udp_snmp(NS1)
        _data, burst = _verify(bed, capsys, 'kernel')
        d = _delta(burst)
        assert d['rx_packets'] == d['tx_packets'] == N, d
        assert d['rx_descs'] == N * _descs_per_frame(), d
        # the kernel behind the TAP got every datagram whole (no listener on the port)
        after = _udp_snmp(NS1)
        assert after['NoPorts'] - before['NoPorts'] == N, (before, after)
    finally:
        _stop(args)


def _role(bed, tmp_path, instances, **extra):
    """The forwarder role on this bed (its own build and state dirs); returns (stats, msgs)."""
    pb = tmp_path / 'pb.yml'
    pb.write_text(json.dumps([{
        'name': 'forwarder role', 'hosts': 'localhost', 'gather_facts': False,
        'roles': [{'role': 'kbypass.xdp.forwarder', 'vars': {
            'forwarder_source_dir': os.path.join(ROOT, 'files', 'forwarder'),
            'forwarder_src_dir': str(tmp_path / 'role-src'),
            'forwarder_bin_dir': os.path.dirname(bed['fwd']),
            'forwarder_binaries': [], 'forwarder_state_dir': STATE,
            'forwarder_supervisor': 'process', 'forwarder_instances': instances}}]}]))
    (tmp_path / 'extra.json').write_text(json.dumps(extra))
    p = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
                        '-e', 'ansible_python_interpreter=%s' % sys.executable,
                        '-e', '@%s' % (tmp_path / 'extra.json'), str(pb)],
                       cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600,
                       check=False)
    out = json.loads(p.stdout)
    msgs = [h.get('msg') for play in out['plays'] for t in play['tasks']
            for h in t['hosts'].values() for h in (h.get('results') or [h]) if h.get('msg')]
    return out['stats']['localhost'], msgs


def test_role_turns_multi_buffer_on_for_a_jumbo_mtu_and_falls_back_when_unsupported(
        bed, tmp_path, capsys):
    inst = [{'name': 'kbja-echo', 'mode': 'echo', 'interface': V0, 'netns': NS1,
             'queues': [0], 'cpus': [1], 'stats_interval': 0.2}]
    try:
        stats, msgs = _role(bed, tmp_path, inst)
        assert stats['failures'] == 0, msgs
        assert ('kbja-echo: multi-buffer on (MTU 9000 exceeds one 4096-byte frame (at most '
                '3818))') in msgs, msgs
        _data, burst = _verify(bed, capsys, 'echo')
        assert burst['forwarder_after']['multi_buffer'] is True

        # the probe says the kernel cannot (its registered result forced by an extra var):
        # the interface falls back to the standard MTU, the summary names it
        forced = {'multi_buffer': {'xdp': True, 'af_xdp': False, 'reasons': {
            'af_xdp': 'binding an AF_XDP socket with XDP_USE_SG (copy mode) failed with EINVAL'}}}
        stats, msgs = _role(bed, tmp_path, inst, forwarder_multi_buffer_probe=forced)
        assert stats['failures'] == 0, msgs
        assert ('kbja-echo: multi-buffer off (multi-buffer unsupported here (binding an AF_XDP '
                'socket with XDP_USE_SG (copy mode) failed with EINVAL): MTU lowered to 1500)'
                in msgs), msgs
        assert json.loads(sh(['ip', '-j', 'link', 'show', V0], netns=NS1).stdout)[0]['mtu'] == 1500
        _data, burst = _verify(bed, capsys, 'echo', size=1500)
        assert burst['forwarder_after']['multi_buffer'] is False
    finally:
        _stop({'name': 'kbja-echo'})
        sh(['ip', 'link', 'set', V0, 'mtu', str(JUMBO)], netns=NS1)
