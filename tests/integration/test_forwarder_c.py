# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real-packet tests for the C programs in files/forwarder (kbypass-fwd, -gen, -udpecho).

Everything is real: namespaces ``kbtf1``/``kbtf2``/``kbtf3`` with veths ``kbtfv*``, the
project's steering program (files/bpf/xdp_steer.c, built here with clang) attached in
native mode with its maps pinned under /sys/fs/bpf/kbypass/kbtf*/, AF_XDP sockets, UDP
datagrams in 198.18.40.0/24, 198.18.41.0/24 and 2001:2:40::/64.  Every fixture tears down
what it created (processes, namespaces, pins), also when a test fails.  Needs root.
"""
import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time

import pytest

from frames import (  # noqa: E402
    PEER_SCRIPT as VLAN_PEER,
    csum as _csum,
    malformed_frames as _malformed_frames,
    udp_frame as _udp_frame,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FWD_SRC = os.path.join(ROOT, 'files', 'forwarder')
BPF_SRC = os.path.join(ROOT, 'files', 'bpf', 'xdp_steer.c')
PIN_ROOT = '/sys/fs/bpf/kbypass'
PORT = 4242
SPORT = 40000

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root (namespaces, XDP, AF_XDP)'),
    pytest.mark.skipif(shutil.which('clang') is None or shutil.which('bpftool') is None,
                       reason='needs clang and bpftool'),
]


def run(cmd, check=True, timeout=60, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check, **kw)


def nsrun(ns, cmd, **kw):
    return run(['ip', 'netns', 'exec', ns] + cmd, **kw)


# --------------------------------------------------------------------------- builds
@pytest.fixture(scope='module')
def bins():
    """Build the three binaries from a private copy of the sources (no races with others)."""
    tmp = tempfile.mkdtemp(prefix='kbtf-build-')
    try:
        for name in os.listdir(FWD_SRC):
            if name.endswith(('.c', '.h')) or name == 'Makefile':
                shutil.copy(os.path.join(FWD_SRC, name), tmp)
        proc = run(['make', '-C', tmp], check=False, timeout=300)
        assert proc.returncode == 0, 'build failed (-Werror):\n%s%s' % (proc.stdout, proc.stderr)
        shutil.copy(BPF_SRC, tmp)
        shutil.copy(os.path.join(os.path.dirname(BPF_SRC), 'steer_maps.h'), tmp)
        arch = run(['cc', '-print-multiarch']).stdout.strip()
        run(['clang', '-O2', '-g', '-target', 'bpf', '-Wall', '-I/usr/include/%s' % arch,
             '-c', os.path.join(tmp, 'xdp_steer.c'), '-o', os.path.join(tmp, 'xdp_steer.o')])
        yield {n: os.path.join(tmp, n) for n in
               ('kbypass-fwd', 'kbypass-gen', 'kbypass-udpecho', 'xdp_steer.o')}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- test bed
class Bed:
    def __init__(self, bins):
        self.bins = bins
        self.namespaces = []
        self.pins = []
        self.procs = []

    # topology -----------------------------------------------------------------------
    def netns(self, name):
        run(['ip', 'netns', 'add', name])
        self.namespaces.append(name)
        nsrun(name, ['ip', 'link', 'set', 'lo', 'up'])

    def veth(self, a, ns_a, b, ns_b, queues=1):
        q = ['numtxqueues', str(queues), 'numrxqueues', str(queues)]
        run(['ip', 'link', 'add', a, 'netns', ns_a] + q
            + ['type', 'veth', 'peer', 'name', b, 'netns', ns_b] + q)
        nsrun(ns_a, ['ip', 'link', 'set', a, 'up'])
        nsrun(ns_b, ['ip', 'link', 'set', b, 'up'])

    def addr(self, ns, dev, *addrs):
        for a in addrs:
            extra = ['nodad'] if ':' in a else []
            nsrun(ns, ['ip', 'addr', 'add', a, 'dev', dev] + extra)

    def mac(self, ns, dev):
        out = json.loads(nsrun(ns, ['ip', '-j', 'link', 'show', dev]).stdout)
        return out[0]['address']

    def steer(self, ns, dev, ports):
        """Load the steering program, pin its maps, attach it native, steer ``ports``."""
        pin = '%s/%s/%s' % (PIN_ROOT, ns, dev)
        os.makedirs(pin)
        self.pins.append(pin)
        run(['bpftool', 'prog', 'load', self.bins['xdp_steer.o'], pin + '/prog', 'type', 'xdp',
             'pinmaps', pin])
        # nsenter switches only the network namespace: bpffs stays visible
        run(['nsenter', '--net=/run/netns/%s' % ns, 'bpftool', 'net', 'attach', 'xdpdrv',
             'pinned', pin + '/prog', 'dev', dev])
        for p in ports:
            key = [str(b) for b in struct.pack('<I', p)]
            run(['bpftool', 'map', 'update', 'pinned', pin + '/steer_ports', 'key'] + key +
                ['value', '1'])
        return pin

    def steer_counter(self, pin, index):
        out = json.loads(run(['bpftool', '-j', 'map', 'lookup', 'pinned', pin + '/steer_stats',
                              'key'] + [str(b) for b in struct.pack('<I', index)]).stdout)
        return sum(v['value']['packets'] for v in out['formatted']['values'])

    # processes --------------------------------------------------------------------------
    def start(self, cmd):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    def start_fwd(self, args, stats):
        proc = self.start([self.bins['kbypass-fwd'], '--stats-file', stats, '--interval', '0.2']
                          + args)
        deadline = time.time() + 10
        while time.time() < deadline:  # running once the first stats file exists
            if os.path.exists(stats):
                return proc
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        out, err = proc.communicate(timeout=5) if proc.poll() is not None else ('', '')
        raise AssertionError('forwarder did not start: rc=%s\n%s%s' % (proc.poll(), out, err))

    def stop(self, proc, timeout=10):
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err

    def gen(self, *args, timeout=60):
        proc = run([self.bins['kbypass-gen'], '--json'] + list(args), timeout=timeout)
        return json.loads(proc.stdout)

    def cleanup(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
        for ns in self.namespaces:
            run(['ip', 'netns', 'del', ns], check=False)
        for pin in self.pins:
            shutil.rmtree(pin, ignore_errors=True)
            parent = os.path.dirname(pin)
            if os.path.isdir(parent) and not os.listdir(parent):
                os.rmdir(parent)


@pytest.fixture
def bed(bins):
    b = Bed(bins)
    try:
        yield b
    finally:
        b.cleanup()


@pytest.fixture
def pair(bed):
    """kbtf1 (device under test, kbtfv1) <-> kbtf2 (traffic, kbtfv2), steering on kbtfv1."""
    for ns in ('kbtf1', 'kbtf2'):
        assert not os.path.exists('/run/netns/' + ns), 'stale namespace %s' % ns
        bed.netns(ns)
    bed.veth('kbtfv1', 'kbtf1', 'kbtfv2', 'kbtf2')
    bed.addr('kbtf1', 'kbtfv1', '198.18.40.1/24', '2001:2:40::1/64')
    bed.addr('kbtf2', 'kbtfv2', '198.18.40.2/24', '2001:2:40::2/64')
    bed.pin = bed.steer('kbtf1', 'kbtfv1', [PORT])
    bed.stats = os.path.join(tempfile.mkdtemp(prefix='kbtf-'), 'fwd.stats.json')
    try:
        yield bed
    finally:
        shutil.rmtree(os.path.dirname(bed.stats), ignore_errors=True)


def read_stats(path):
    with open(path) as f:
        return json.load(f)


def udp_listeners(ns, port):
    out = nsrun(ns, ['ss', '-Hulnp', 'sport = :%d' % port]).stdout
    return [line for line in out.splitlines() if line.strip()]


# --------------------------------------------------------------------------- tests
def test_echo_ipv4_ipv6_counters_agree_and_sigterm(pair):
    assert udp_listeners('kbtf1', PORT) == [], 'nothing may listen on 4242 in the DUT ns'
    fwd = pair.start_fwd(['--iface', 'kbtfv1', '--netns', 'kbtf1', '--mode', 'echo',
                          '--pin-dir', pair.pin, '--duration', '60'], pair.stats)
    v4 = pair.gen('--netns', 'kbtf2', '--dst', '198.18.40.1', '--count', '300', '--rate', '3000',
                  '--replies')
    v6 = pair.gen('--netns', 'kbtf2', '--dst', '2001:2:40::1', '--count', '200', '--rate',
                  '3000', '--replies')
    assert udp_listeners('kbtf1', PORT) == []
    rc, out, err = pair.stop(fwd)
    assert rc == 0, err
    assert '(final)' in out and 'AF_XDP RX: 500 pkts' in out, out
    st = read_stats(pair.stats)
    assert st['running'] is False and st['mode'] == 'echo' and st['bind_mode'] == 'copy'
    assert (v4['sent'], v4['received'], v4['lost']) == (300, 300, 0), v4
    assert (v6['sent'], v6['received'], v6['lost']) == (200, 200, 0), v6
    assert v4['rtt_us']['p50'] > 0 and v4['rtt_us']['p99'] >= v4['rtt_us']['p50']
    redirected = pair.steer_counter(pair.pin, 2)
    # XDP redirected == forwarder RX == forwarder TX == replies received
    assert redirected == st['rx_packets'] == st['tx_packets'] == 500, (redirected, st)
    assert st['xdp_stats']['rx_dropped'] == 0 and st['dropped'] == 0
    assert st['kernel_dropped'] == 0 and st['steered'] == 500
    assert st['coalesce_usec'] == 100 and st['spin_usec'] == 0  # the defaults
    # syscalls by kind; copy mode transmits only when kicked, so TX kicks happened
    calls = st['syscalls']
    assert calls['tx_kick'] > 0 and st['wakeups'] == sum(calls.values()), st
    assert st['syscalls_per_packet'] == pytest.approx(st['wakeups'] / 500.0, abs=1e-3)


def test_rxdrop_counts_exactly_what_was_sent(pair):
    fwd = pair.start_fwd(['--iface', 'kbtfv1', '--netns', 'kbtf1', '--mode', 'rxdrop',
                          '--pin-dir', pair.pin, '--json'], pair.stats)
    g = pair.gen('--netns', 'kbtf2', '--dst', '198.18.40.1', '--count', '1000', '--rate', '20000')
    assert g['sent'] == 1000
    rc, out, err = pair.stop(fwd)
    assert rc == 0, err
    lines = [json.loads(line) for line in out.splitlines() if line.startswith('{')]
    assert lines and lines[-1]['running'] is False
    st = read_stats(pair.stats)
    assert st['rx_packets'] == 1000 and st['tx_packets'] == 0, st
    assert st['rx_bytes'] == 1000 * g['size'] == 64000  # --size: frame length without FCS
    assert pair.steer_counter(pair.pin, 2) == 1000


def test_generator_offers_the_asked_rate_for_the_whole_duration(pair):
    """The --duration clock starts when sending starts, not before the AF_XDP set-up
    (which takes up to ~100 ms here): a 0.2 s trial at 20 kpps sends its 4000 packets."""
    fwd = pair.start_fwd(['--iface', 'kbtfv1', '--netns', 'kbtf1', '--mode', 'rxdrop',
                          '--pin-dir', pair.pin], pair.stats)
    sent = [pair.gen('--netns', 'kbtf2', '--dst', '198.18.40.1', '--engine', 'afxdp',
                     '--iface', 'kbtfv2', '--rate', '20000', '--duration', '0.2',
                     '--count', '100000')['sent'] for dummy in range(3)]
    assert pair.stop(fwd)[0] == 0
    assert all(3960 <= n <= 4000 + 64 for n in sent), sent
    assert read_stats(pair.stats)['rx_packets'] == sum(sent)


def test_generator_charges_the_dut_only_while_it_sends(pair):
    """--cpu-of PID reads the DUT's CPU time when sending starts and when it stops: a
    forwarder that never sleeps (--busy-poll) shows one core over that window, although the
    generator then waits another 300 ms for replies that rxdrop never sends."""
    fwd = pair.start_fwd(['--iface', 'kbtfv1', '--netns', 'kbtf1', '--mode', 'rxdrop',
                          '--pin-dir', pair.pin, '--busy-poll', '--coalesce-usec', '0',
                          '--cpus', '1'], pair.stats)
    g = pair.gen('--netns', 'kbtf2', '--dst', '198.18.40.1', '--rate', '20000',
                 '--duration', '0.3', '--count', '100000', '--replies', '--reply-timeout', '300',
                 '--cpu', '0', '--cpu-of', str(fwd.pid))
    gone = pair.gen('--netns', 'kbtf2', '--dst', '198.18.40.1', '--count', '10',
                    '--cpu-of', '2147483647')
    assert pair.stop(fwd)[0] == 0
    cpu = g['cpu_of']
    assert cpu['pid'] == fwd.pid and 0.3 <= cpu['window_s'] < 0.33, g
    # the busy forwarder's core over the sending window only (10 ms ticks: +-0.02 s); with
    # the reply wait counted it would be about 0.6 s
    assert 0.24 <= cpu['cpu_s'] <= cpu['window_s'] + 0.02, g
    assert g['duration_s'] > 0.55, g                # the reply wait did happen
    assert gone['cpu_of'] is None                   # no such process: no figure


def test_kernel_mode_reinjects_into_local_socket(pair):
    # A normal socket in the DUT namespace; the steering program takes 4242 away from
    # the stack, so whatever this socket reads came through user space and the TAP.
    server = pair.start(['ip', 'netns', 'exec', 'kbtf1', pair.bins['kbypass-udpecho'],
                         '--port', str(PORT), '--mode', 'drop', '--duration', '20'])
    time.sleep(0.3)
    fwd = pair.start_fwd(['--iface', 'kbtfv1', '--netns', 'kbtf1', '--mode', 'kernel',
                          '--tap', 'kbtftap0', '--pin-dir', pair.pin], pair.stats)
    link = json.loads(nsrun('kbtf1', ['ip', '-j', 'link', 'show', 'kbtftap0']).stdout)[0]
    assert 'UP' in link['flags']
    pair.gen('--netns', 'kbtf2', '--dst', '198.18.40.1', '--count', '150', '--rate', '5000')
    pair.gen('--netns', 'kbtf2', '--dst', '2001:2:40::1', '--count', '50', '--rate', '5000')
    time.sleep(0.3)
    rc, err = pair.stop(fwd)[0::2]
    assert rc == 0, err
    rc, out = pair.stop(server)[:2]
    assert rc == 0
    got = json.loads(out)
    st = read_stats(pair.stats)
    assert st['rx_packets'] == 200 and st['tx_packets'] == 200, st
    assert got['packets'] == 200, got
    assert pair.steer_counter(pair.pin, 2) == 200
    # the TAP is owned by the forwarder: gone with it
    assert nsrun('kbtf1', ['ip', 'link', 'show', 'kbtftap0'], check=False).returncode != 0


def test_l2fwd_chain_only_while_forwarder_runs(bed):
    for ns in ('kbtf1', 'kbtf2', 'kbtf3'):
        assert not os.path.exists('/run/netns/' + ns)
        bed.netns(ns)
    bed.veth('kbtfv1', 'kbtf1', 'kbtfv2', 'kbtf2')   # A side
    bed.veth('kbtfv3', 'kbtf1', 'kbtfv4', 'kbtf3')   # C side
    bed.addr('kbtf2', 'kbtfv2', '198.18.41.2/24')
    bed.addr('kbtf3', 'kbtfv4', '198.18.41.3/24')
    # the middle namespace forwards at layer 2 without ARP: static neighbours at the ends
    nsrun('kbtf2', ['ip', 'neigh', 'add', '198.18.41.3', 'lladdr', bed.mac('kbtf3', 'kbtfv4'),
                    'dev', 'kbtfv2', 'nud', 'permanent'])
    nsrun('kbtf3', ['ip', 'neigh', 'add', '198.18.41.2', 'lladdr', bed.mac('kbtf2', 'kbtfv2'),
                    'dev', 'kbtfv4', 'nud', 'permanent'])
    pin_a = bed.steer('kbtf1', 'kbtfv1', [PORT])       # requests A -> C
    pin_c = bed.steer('kbtf1', 'kbtfv3', [SPORT])      # replies C -> A
    server = bed.start(['ip', 'netns', 'exec', 'kbtf3', bed.bins['kbypass-udpecho'], '--port',
                        str(PORT), '--duration', '30'])
    time.sleep(0.3)
    args = ('--netns', 'kbtf2', '--dst', '198.18.41.3', '--count', '100', '--rate', '2000',
            '--replies', '--reply-timeout', '300')
    before = bed.gen(*args)
    assert before['received'] == 0, 'the chain must be closed without the forwarder'
    stats = os.path.join(tempfile.mkdtemp(prefix='kbtf-'), 's.json')
    try:
        fwd = bed.start_fwd(['--iface', 'kbtfv1', '--iface2', 'kbtfv3', '--mode', 'l2fwd',
                             '--netns', 'kbtf1', '--pin-dir', pin_a, '--pin-dir2', pin_c],
                            stats)
        during = bed.gen(*args)
        rc, err = bed.stop(fwd)[0::2]
        assert rc == 0, err
        st = read_stats(stats)
    finally:
        shutil.rmtree(os.path.dirname(stats), ignore_errors=True)
    after = bed.gen(*args)
    assert during['received'] == 100, during
    assert after['received'] == 0, after
    assert st['rx_packets'] == 200 and st['tx_packets'] == 200, st
    assert bed.steer_counter(pin_a, 2) == 100 and bed.steer_counter(pin_c, 2) == 100


def test_arp_ping_tcp_and_other_udp_keep_working(pair):
    fwd = pair.start_fwd(['--iface', 'kbtfv1', '--netns', 'kbtf1', '--mode', 'echo',
                          '--pin-dir', pair.pin], pair.stats)
    nsrun('kbtf2', ['ip', 'neigh', 'flush', 'dev', 'kbtfv2'])
    ping = nsrun('kbtf2', ['ping', '-c', '3', '-i', '0.2', '-W', '2', '198.18.40.1'], check=False)
    assert ping.returncode == 0, ping.stdout
    ping6 = nsrun('kbtf2', ['ping', '-6', '-c', '2', '-i', '0.2', '-W', '2', '2001:2:40::1'],
                  check=False)
    assert ping6.returncode == 0, ping6.stdout
    neigh = nsrun('kbtf2', ['ip', '-j', 'neigh', 'show', '198.18.40.1']).stdout
    assert pair.mac('kbtf1', 'kbtfv1') in neigh  # ARP resolved through the kernel
    # TCP through the kernel stack of the DUT namespace
    srv = pair.start(['ip', 'netns', 'exec', 'kbtf1', 'python3', '-c',
                      'import socket\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,'
                      'socket.SO_REUSEADDR,1);s.bind(("198.18.40.1",5001));s.listen(1);'
                      's.settimeout(10);c,_=s.accept();c.sendall(c.recv(100)[::-1]);c.close()'])
    cli = nsrun('kbtf2', ['python3', '-c',
                          'import socket,time\nfor i in range(50):\n'
                          '    try:\n        c=socket.create_connection(("198.18.40.1",5001),2);break\n'
                          '    except OSError: time.sleep(0.1)\n'
                          'c.sendall(b"kbypass");print(c.recv(100).decode())'], timeout=20)
    assert cli.stdout.strip() == 'ssapybk'
    srv.communicate(timeout=10)
    # UDP on a port that is not steered still reaches the kernel socket
    udp = pair.start(['ip', 'netns', 'exec', 'kbtf1', pair.bins['kbypass-udpecho'], '--port',
                      '4243', '--duration', '20'])
    time.sleep(0.3)
    g = pair.gen('--netns', 'kbtf2', '--dst', '198.18.40.1', '--dport', '4243', '--count', '50',
                 '--rate', '2000', '--replies')
    assert g['received'] == 50
    pair.stop(udp)
    rc = pair.stop(fwd)[0]
    assert rc == 0
    assert read_stats(pair.stats)['rx_packets'] == 0  # none of that went to user space


def test_restart_binds_same_queue_immediately(pair):
    """The XSKMAP cannot be read from user space: prove the entry and the queue are free
    by starting a second forwarder on the same queue right after the first exits."""
    args = ['--iface', 'kbtfv1', '--netns', 'kbtf1', '--mode', 'echo', '--pin-dir', pair.pin]
    fwd = pair.start_fwd(args, pair.stats)
    rc, err = pair.stop(fwd)[0::2]
    assert rc == 0, err
    # while no forwarder runs, steered packets fall back to the kernel (redirect_missed)
    missed0 = pair.steer_counter(pair.pin, 3)
    pair.gen('--netns', 'kbtf2', '--dst', '198.18.40.1', '--count', '20', '--rate', '2000')
    assert pair.steer_counter(pair.pin, 3) - missed0 == 20
    os.unlink(pair.stats)
    t0 = time.time()
    fwd2 = pair.start_fwd(args, pair.stats)
    assert time.time() - t0 < 3
    g = pair.gen('--netns', 'kbtf2', '--dst', '198.18.40.1', '--count', '100', '--rate', '2000',
                 '--replies')
    assert g['received'] == 100
    rc, err = pair.stop(fwd2)[0::2]
    assert rc == 0 and 'busy' not in err


def tx_dropped(ns, dev):
    out = json.loads(nsrun(ns, ['ip', '-s', '-j', 'link', 'show', dev]).stdout)
    return out[0]['stats64']['tx']['dropped']


def rxq_redirects(ns, dev):
    """veth's per-RX-queue XDP redirect counters (ethtool -S), by queue."""
    stats = dict(line.strip().split(': ') for line in
                 nsrun(ns, ['ethtool', '-S', dev]).stdout.splitlines()[1:])
    return [int(stats['rx_queue_%d_xdp_redirect' % q]) for q in range(2)]


def test_overload_drops_are_counted_not_lost(pair):
    """Small rings and an AF_XDP sender at full speed: nothing crashes, every frame the
    XDP program redirected is accounted for (forwarded, dropped by us, or dropped by the
    kernel for a full RX ring / empty fill ring)."""
    fwd = pair.start_fwd(['--iface', 'kbtfv1', '--netns', 'kbtf1', '--mode', 'echo',
                          '--pin-dir', pair.pin, '--rx-ring', '64', '--tx-ring', '64',
                          '--fill-ring', '64', '--comp-ring', '64', '--frames', '256',
                          '--batch', '32'], pair.stats)
    veth_drops0 = tx_dropped('kbtf2', 'kbtfv2')
    g = pair.gen('--netns', 'kbtf2', '--dst', '198.18.40.1', '--iface', 'kbtfv2',
                 '--engine', 'afxdp', '--count', '200000', '--duration', '2')
    assert g['sent'] > 10000
    time.sleep(0.3)
    rc, out, err = pair.stop(fwd)
    assert rc == 0, err
    st = read_stats(pair.stats)
    xs = st['xdp_stats']
    redirected = pair.steer_counter(pair.pin, 2)
    assert st['rx_packets'] == st['tx_packets'] + st['dropped'] + st['invalid'], st
    assert redirected == st['rx_packets'] + xs['rx_dropped'] + xs['rx_ring_full'], \
        (redirected, st)
    # the socket's own drops are the forwarder's too: what was steered is accounted for
    assert st['kernel_dropped'] == xs['rx_dropped'] + xs['rx_ring_full'] > 0, st
    assert st['dropped_total'] == st['dropped'] + st['kernel_dropped'], st
    assert st['steered'] == redirected == \
        st['tx_packets'] + st['dropped_total'] + st['invalid'], (redirected, st)
    assert 'dropped: %d (kernel %d)' % (st['dropped_total'], st['kernel_dropped']) in out, out
    # Frames the sender completed but veth could not queue to the peer (its XDP ring
    # was full) never reach XDP; veth counts them as the sender's tx_dropped. That
    # counter also holds the namespace's own few packets (IPv6 ND/MLD) dropped alongside.
    veth_drops = tx_dropped('kbtf2', 'kbtfv2') - veth_drops0
    assert redirected <= g['sent']
    assert 0 <= redirected + veth_drops - g['sent'] <= 8, (redirected, veth_drops, g['sent'])


def test_two_queues_two_threads_busy_poll(bed):
    """One socket and one pinned thread per queue; flows spread over both RX queues."""
    for ns in ('kbtf1', 'kbtf2'):
        assert not os.path.exists('/run/netns/' + ns)
        bed.netns(ns)
    bed.veth('kbtfv1', 'kbtf1', 'kbtfv2', 'kbtf2', queues=2)
    bed.addr('kbtf1', 'kbtfv1', '198.18.40.1/24')
    bed.addr('kbtf2', 'kbtfv2', '198.18.40.2/24')
    pin = bed.steer('kbtf1', 'kbtfv1', [PORT])
    stats = os.path.join(tempfile.mkdtemp(prefix='kbtf-'), 's.json')
    try:
        fwd = bed.start_fwd(['--iface', 'kbtfv1', '--netns', 'kbtf1', '--mode', 'echo',
                             '--pin-dir', pin, '--queues', '0,1', '--cpus', '0,1',
                             '--busy-poll', '--busy-poll-usec', '10'], stats)
        threads = os.listdir('/proc/%d/task' % fwd.pid)
        assert len(threads) == 3  # main (stats) + one worker per queue
        redirects0 = rxq_redirects('kbtf1', 'kbtfv1')
        got = sum(bed.gen('--netns', 'kbtf2', '--dst', '198.18.40.1', '--sport', str(sp),
                          '--count', '100', '--rate', '5000', '--replies')['received']
                  for sp in range(40000, 40008))
        rc, err = bed.stop(fwd)[0::2]
        assert rc == 0, err
        st = read_stats(stats)
    finally:
        shutil.rmtree(os.path.dirname(stats), ignore_errors=True)
    assert got == 800
    # each queue's socket got its share: veth counts XDP redirects per RX queue
    per_queue = [n - n0 for n, n0 in zip(rxq_redirects('kbtf1', 'kbtfv1'), redirects0)]
    assert sum(per_queue) == 800 and min(per_queue) > 0, per_queue
    assert st['queues'] == [0, 1] and st['cpus'] == [0, 1] and st['busy_poll'] is True
    assert st['rx_packets'] == st['tx_packets'] == 800


def _parse_reply(frame, ntags):
    """(dst_mac, src_mac, tags, src_ip, dst_ip, sport, dport, udp_csum_ok, payload)."""
    import ipaddress
    macs = (frame[0:6].hex(':'), frame[6:12].hex(':'))
    tags = [struct.unpack('!HH', frame[12 + 4 * i:16 + 4 * i]) for i in range(ntags)]
    off = 12 + 4 * ntags
    ethertype = struct.unpack('!H', frame[off:off + 2])[0]
    l3 = frame[off + 2:]
    if ethertype == 0x0800:
        hl = (l3[0] & 0xf) * 4
        src, dst, udp = l3[12:16], l3[16:20], l3[hl:]
    else:
        assert ethertype == 0x86dd, hex(ethertype)
        src, dst, udp = l3[8:24], l3[24:40], l3[40:]
    ulen = struct.unpack('!H', udp[4:6])[0]
    pseudo = src + dst + struct.pack('!HH', 17, ulen)
    sport, dport = struct.unpack('!HH', udp[0:4])
    return (macs, tags, str(ipaddress.ip_address(src)), str(ipaddress.ip_address(dst)),
            sport, dport, _csum(pseudo + udp[:ulen]) == 0xffff, udp[8:ulen])


def test_echo_vlan_tagged_frames_keeps_tags(pair):
    """Hand-crafted tagged frames (this kernel has no 8021q module): an 802.1Q-tagged IPv4
    datagram with a complete checksum and an 802.1ad+802.1Q IPv6 datagram carrying only a
    partial checksum.  The echo keeps both tags, swaps MACs, addresses and ports, and the
    reply's UDP checksum verifies (the partial one completed)."""
    fwd = pair.start_fwd(['--iface', 'kbtfv1', '--netns', 'kbtf1', '--mode', 'echo',
                          '--pin-dir', pair.pin], pair.stats)
    dut, peer = pair.mac('kbtf1', 'kbtfv1'), pair.mac('kbtf2', 'kbtfv2')
    cases = [
        ([(0x8100, 0x2064)], '198.18.40.2', '198.18.40.1', 40001, b'kbtp-vlan-q-v4', False),
        ([(0x88a8, 0x00c8), (0x8100, 0x0065)], '2001:2:40::2', '2001:2:40::1', 40002,
         b'kbtp-vlan-qinq-v6', True),
    ]
    frames = [_udp_frame(dut, peer, tags, src, dst, sport, PORT, payload, partial)
              for tags, src, dst, sport, payload, partial in cases]
    proc = nsrun('kbtf2', ['python3', '-c', VLAN_PEER, 'kbtfv2',
                           json.dumps([f.hex() for f in frames])], timeout=30)
    replies = [bytes.fromhex(h) for h in json.loads(proc.stdout)]
    rc, err = pair.stop(fwd)[0::2]
    assert rc == 0, err
    st = read_stats(pair.stats)
    assert st['rx_packets'] == 2 and st['tx_packets'] == 2 and st['invalid'] == 0, st
    assert st['csum_fixed'] == 1, st  # only the partial checksum needed completing
    assert len(replies) == 2, (replies, st)
    by_payload = {}
    for r in replies:
        for case in cases:
            tags, payload = case[0], case[4]
            if r.endswith(payload):
                by_payload[payload] = _parse_reply(r, len(tags))
    for tags, src, dst, sport, payload, _partial in cases:
        got = by_payload[payload]
        assert got[0] == (peer, dut), got          # MACs swapped
        assert got[1] == tags, got                 # the tags, unchanged and in order
        assert got[2:6] == (dst, src, PORT, sport), got
        assert got[6] is True, 'UDP checksum of the reply does not verify: %r' % (got,)
        assert got[7] == payload


@pytest.mark.parametrize('args, message', [
    (['--mode', 'bogus'], "--mode: unknown value 'bogus'"),
    (['--mode', 'l2fwd'], '--mode l2fwd needs --iface2'),
    (['--mode', 'echo', '--rx-ring', '1000'], 'power of two'),
    (['--mode', 'echo', '--queues', '0,0'], '--queues'),
    (['--mode', 'echo', '--pin-dir', '/sys/fs/bpf/kbypass/kbtf-none'], 'cannot open pinned xsks_map'),
    (['--mode', 'echo', '--bind', 'zerocopy'], 'zero-copy bind on kbtfv1 queue 0 failed'),
    (['--mode', 'kernel', '--tap', 'kbtftapbad', '--netns', 'kbtf-none'], 'cannot enter network namespace'),
])
def test_bad_input_fails_clearly_and_changes_nothing(pair, args, message):
    before = nsrun('kbtf1', ['ip', '-j', 'link', 'show']).stdout
    cmd = [pair.bins['kbypass-fwd'], '--iface', 'kbtfv1', '--stats-file', pair.stats]
    if '--netns' not in args:
        cmd += ['--netns', 'kbtf1']
    if '--pin-dir' not in args:
        cmd += ['--pin-dir', pair.pin]
    proc = run(cmd + args, check=False, timeout=30)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert not os.path.exists(pair.stats)
    assert nsrun('kbtf1', ['ip', '-j', 'link', 'show']).stdout == before
    # the queue is still free for a real forwarder
    fwd = pair.start_fwd(['--iface', 'kbtfv1', '--netns', 'kbtf1', '--mode', 'rxdrop',
                          '--pin-dir', pair.pin], pair.stats)
    assert pair.stop(fwd)[0] == 0


def test_generator_is_bounded(bins):
    proc = run([bins['kbypass-gen'], '--dst', '198.18.40.1', '--count', '999999999999',
                '--duration', '100000', '--netns', 'kbtf-none'], check=False)
    assert 'capped at 50000000' in proc.stderr and 'capped at 300 s' in proc.stderr
    assert proc.returncode != 0 and 'cannot enter network namespace' in proc.stderr


# --------------------------------------------------------------------------- malformed
BAD_SRC_MAC = '02:6b:62:74:66:38'  # marks the frames the catch-all program redirects

STEER_ALL = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
/* Test only: redirect every frame from BAD_SRC_MAC to the socket, malformed or not, so
 * the forwarder's own validation is what stands between such a frame and an echo. */
struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u32);
} xsks_map SEC(".maps");
SEC("xdp")
int steer_all(struct xdp_md *ctx)
{
    unsigned char *d = (void *)(long)ctx->data;
    const unsigned char mark[6] = { 0x02, 0x6b, 0x62, 0x74, 0x66, 0x38 };

    if ((void *)(d + 14) > (void *)(long)ctx->data_end)
        return XDP_PASS;
    for (int i = 0; i < 6; i++)
        if (d[6 + i] != mark[i])
            return XDP_PASS;
    return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}
char _license[] SEC("license") = "GPL";
"""


def _send_and_collect(bed, frames):
    proc = nsrun('kbtf2', ['python3', '-c', VLAN_PEER, 'kbtfv2',
                           json.dumps([f.hex() for _n, f in frames])], timeout=30)
    return [bytes.fromhex(h) for h in json.loads(proc.stdout)]


def test_malformed_frames_are_passed_by_the_steering_program(pair):
    """#17 item 8: lengths and versions that do not add up are not steered (the kernel
    gets them and drops them); only the valid datagrams reach the forwarder and come back."""
    fwd = pair.start_fwd(['--iface', 'kbtfv1', '--netns', 'kbtf1', '--mode', 'echo',
                          '--pin-dir', pair.pin, '--spin-usec', '50'], pair.stats)
    bad, good = _malformed_frames(pair.mac('kbtf1', 'kbtfv1'), pair.mac('kbtf2', 'kbtfv2'))
    matched0, passed0 = pair.steer_counter(pair.pin, 1), pair.steer_counter(pair.pin, 4)
    replies = _send_and_collect(pair, bad + good)
    rc, err = pair.stop(fwd)[0::2]
    assert rc == 0, err
    st = read_stats(pair.stats)
    assert sorted(r[-3:] for r in replies) == [b'ok4', b'ok6'], replies
    assert pair.steer_counter(pair.pin, 1) - matched0 == 2
    assert pair.steer_counter(pair.pin, 4) - passed0 >= len(bad)
    assert st['rx_packets'] == st['tx_packets'] == 2 and st['invalid'] == 0, st
    assert st['spin_usec'] == 50


def test_malformed_frames_reaching_the_forwarder_count_as_invalid(pair):
    """The forwarder's own check, behind a catch-all program that redirects everything:
    malformed frames are counted as invalid and dropped, never echoed."""
    src = os.path.join(os.path.dirname(pair.bins['xdp_steer.o']), 'steer_all.c')
    with open(src, 'w') as f:
        f.write(STEER_ALL)
    arch = run(['cc', '-print-multiarch']).stdout.strip()
    run(['clang', '-O2', '-g', '-target', 'bpf', '-I/usr/include/%s' % arch, '-c', src, '-o',
         src[:-2] + '.o'])
    pin = '%s/kbtf1/kbtfv1-all' % PIN_ROOT
    os.makedirs(pin)
    pair.pins.append(pin)
    run(['bpftool', 'prog', 'load', src[:-2] + '.o', pin + '/prog', 'type', 'xdp', 'pinmaps', pin])
    run(['nsenter', '--net=/run/netns/kbtf1', 'bpftool', 'net', 'attach', 'xdpdrv', 'pinned',
         pin + '/prog', 'dev', 'kbtfv1', 'overwrite'])
    fwd = pair.start_fwd(['--iface', 'kbtfv1', '--netns', 'kbtf1', '--mode', 'echo',
                          '--pin-dir', pin], pair.stats)
    bad, good = _malformed_frames(pair.mac('kbtf1', 'kbtfv1'), BAD_SRC_MAC)
    replies = _send_and_collect(pair, bad + good)
    rc, err = pair.stop(fwd)[0::2]
    assert rc == 0, err
    st = read_stats(pair.stats)
    assert sorted(r[-3:] for r in replies) == [b'ok4', b'ok6'], replies
    assert st['rx_packets'] == len(bad) + 2 and st['invalid'] == len(bad), st
    assert st['tx_packets'] == 2 and st['steered'] == st['tx_packets'] + st['invalid'], st
