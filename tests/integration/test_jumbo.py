# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jumbo frames through user space: XDP multi-buffer (``xdp.frags``) and AF_XDP
``XDP_USE_SG`` (``kbypass-fwd --multi-buffer``), on real veths with MTU 9000.

Namespaces ``kbjc1`` (device under test), ``kbjc2`` (traffic), ``kbjc3`` (the far side of
l2fwd), veths ``kbjcv*``, addresses in 198.18.63.0/24. The steering program and the C
programs are built from private copies of files/bpf and files/forwarder. veth does AF_XDP
in copy mode only: the multi-buffer zero-copy path of a real NIC is not exercised here.
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

from conftest import ROOT, copy_build, remove_bed, run_module, sh, veth_bed

NS1, NS2, NS3 = 'kbjc1', 'kbjc2', 'kbjc3'
V1, V2, V3, V4 = 'kbjcv1', 'kbjcv2', 'kbjcv3', 'kbjcv4'
NS4, NS5, V5, V6 = 'kbjc4', 'kbjc5', 'kbjcv5', 'kbjcv6'  # the MTU test's own pair
A1, A2, A3 = '198.18.63.1', '198.18.63.2', '198.18.63.3'
PIN_ROOT = '/sys/fs/bpf/kbypass'
PORT, SPORT = 4242, 40000
JUMBO = 9000

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root (namespaces, XDP, AF_XDP)'),
    pytest.mark.skipif(shutil.which('clang') is None or shutil.which('bpftool') is None,
                       reason='needs clang and bpftool'),
]


@pytest.fixture(scope='module')
def bins():
    """kbypass-fwd/-gen/-udpecho and the BPF objects, plus the steering program as it was
    before multi-buffer (plain SEC("xdp")) to show what it did to a jumbo MTU."""
    tmp = tempfile.mkdtemp(prefix='kbjc-build-')
    try:
        fwd = copy_build(os.path.join(ROOT, 'files', 'forwarder'), os.path.join(tmp, 'fwd'))
        bpf = copy_build(os.path.join(ROOT, 'files', 'bpf'), os.path.join(tmp, 'bpf'))
        with open(os.path.join(bpf, 'xdp_steer.c')) as f:
            src = f.read()
        assert 'SEC("xdp.frags")' in src
        # beside xdp_steer.c: it includes steer_maps.h
        with open(os.path.join(bpf, 'old_steer.c'), 'w') as f:
            f.write(src.replace('SEC("xdp.frags")', 'SEC("xdp")'))
        arch = sh(['cc', '-print-multiarch']).stdout.strip()
        sh(['clang', '-O2', '-g', '-target', 'bpf', '-I/usr/include/%s' % arch, '-c',
            os.path.join(bpf, 'old_steer.c'), '-o', os.path.join(tmp, 'old_steer.o')])
        out = {n: os.path.join(fwd, n) for n in ('kbypass-fwd', 'kbypass-gen', 'kbypass-udpecho')}
        out.update(steer=os.path.join(bpf, 'xdp_steer.o'), old=os.path.join(tmp, 'old_steer.o'))
        yield out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def set_mtu(ns, dev, mtu, check=True):
    return sh(['ip', '-n', ns, 'link', 'set', dev, 'mtu', str(mtu)], check=check)


def mtu_of(ns, dev):
    return json.loads(sh(['ip', '-j', '-n', ns, 'link', 'show', dev]).stdout)[0]['mtu']


def steer(obj, ns, dev, ports):
    """Attach ``obj`` with the collection's own loader (xdp_attach: bpftool prog loadall,
    libbpf derives BPF_F_XDP_HAS_FRAGS from the section name) and steer ``ports``."""
    res = run_module('xdp_attach', {'interface': dev, 'netns': ns, 'object': obj,
                                    'ports': list(ports)})
    assert not res.get('failed'), res
    return res['pin_dir']


def steer_counter(pin, index):
    out = json.loads(sh(['bpftool', '-j', 'map', 'lookup', 'pinned', pin + '/steer_stats',
                         'key'] + [str(b) for b in struct.pack('<I', index)]).stdout)
    return sum(v['value']['packets'] for v in out['formatted']['values'])


class Procs:
    """Processes of one test, killed at its end whatever happens."""

    def __init__(self, bins):
        self.bins, self.procs = bins, []
        self.dir = tempfile.mkdtemp(prefix='kbjc-')
        self.stats = os.path.join(self.dir, 'fwd.json')

    def start(self, cmd):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    def fwd(self, *args):
        proc = self.start([self.bins['kbypass-fwd'], '--netns', NS1, '--stats-file', self.stats,
                           '--interval', '0.2', '--duration', '30', '--multi-buffer'] + list(args))
        deadline = time.time() + 10
        while time.time() < deadline and not os.path.exists(self.stats):
            if proc.poll() is not None:
                raise AssertionError('forwarder did not start: %s' % (proc.communicate(),))
            time.sleep(0.05)
        return proc

    def stop(self, proc):
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        return out

    def final_stats(self):
        with open(self.stats) as f:
            st = json.load(f)
        assert st['running'] is False and st['multi_buffer'] is True
        return st

    def gen(self, dst, size, count, *extra):
        out = sh([self.bins['kbypass-gen'], '--json', '--netns', NS2, '--dst', dst, '--size',
                  str(size), '--count', str(count), '--rate', '3000'] + list(extra), timeout=60)
        return json.loads(out.stdout)

    def cleanup(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def procs(bins):
    p = Procs(bins)
    try:
        yield p
    finally:
        p.cleanup()


@pytest.fixture(scope='module')
def jumbo_bed(bins):
    """kbjc1/kbjcv1 <-> kbjc2/kbjcv2 at MTU 9000, the steering program on kbjcv1 for 4242
    (one attachment for the module: the loader runs Ansible, seconds each time)."""
    with veth_bed(NS1, V1, NS2, V2, (A1 + '/24',), (A2 + '/24',)):
        pin = steer(bins['steer'], NS1, V1, [PORT])
        set_mtu(NS1, V1, JUMBO)
        set_mtu(NS2, V2, JUMBO)
        yield pin


class Jumbo:
    def __init__(self, pin):
        self.pin = pin
        self.base = steer_counter(pin, 2)

    def redirected(self):
        """Redirected by the steering program since the test began."""
        return steer_counter(self.pin, 2) - self.base


@pytest.fixture
def jumbo(jumbo_bed):
    return Jumbo(jumbo_bed)


# --------------------------------------------------------------------------- the MTU
def attach_plain(obj, pin):
    """The pre-multi-buffer program, attached native on kbjcv5 with bpftool."""
    sh(['bpftool', 'prog', 'load', obj, pin, 'type', 'xdp'])
    try:
        return sh(['nsenter', '--net=/run/netns/%s' % NS4, 'bpftool', 'net', 'attach', 'xdpdrv',
                   'pinned', pin, 'dev', V5], check=False)
    finally:
        os.unlink(pin)


def test_frags_program_keeps_a_jumbo_mtu_the_plain_one_refuses_it(bins):
    with veth_bed(NS4, V5, NS5, V6):
        os.makedirs(os.path.join(PIN_ROOT, NS4), exist_ok=True)
        plain = os.path.join(PIN_ROOT, NS4, 'kbjc-plain')
        # plain SEC("xdp") on kbjcv5: veth caps its peer's MTU (what users kept hitting)
        assert attach_plain(bins['old'], plain).returncode == 0
        refused = set_mtu(NS5, V6, JUMBO, check=False)
        assert refused.returncode != 0 and 'mtu' in refused.stderr.lower(), refused
        assert mtu_of(NS5, V6) == 1500
        sh(['ip', '-n', NS4, 'link', 'set', V5, 'xdpdrv', 'off'])
        # xdp.frags through the collection's loader: both ends take 9000 and keep it
        pin = steer(bins['steer'], NS4, V5, [PORT])
        set_mtu(NS5, V6, JUMBO)
        set_mtu(NS4, V5, JUMBO)
        assert (mtu_of(NS4, V5), mtu_of(NS5, V6)) == (JUMBO, JUMBO)
        link = json.loads(sh(['ip', '-j', '-n', NS4, 'link', 'show', V5]).stdout)[0]
        assert link['xdp']['mode'] == 1 and link['xdp']['prog']['id'] > 0, link
        # the plain program cannot even be attached while the peer has MTU 9000
        sh(['ip', '-n', NS4, 'link', 'set', V5, 'xdpdrv', 'off'])
        again = attach_plain(bins['old'], plain)
        assert again.returncode != 0 and 'MTU' in again.stderr, again
        assert os.path.isdir(pin)


def test_without_multi_buffer_a_jumbo_mtu_is_refused_at_start(bins, jumbo, procs):
    res = sh([bins['kbypass-fwd'], '--netns', NS1, '--iface', V1, '--pin-dir', jumbo.pin,
              '--mode', 'echo', '--duration', '1'], check=False)
    assert res.returncode == 2, res
    assert 'MTU 9000' in res.stderr and '--multi-buffer' in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()[-1]) < 300
    # --size beyond the MTU: the generator says so instead of fragmenting
    res = sh([bins['kbypass-gen'], '--netns', NS2, '--dst', A1, '--size', '9015', '--count',
              '1'], check=False)
    assert res.returncode == 2 and '--size 9015' in res.stderr, res.stderr
    assert jumbo.redirected() == 0


# --------------------------------------------------------------------------- the modes
def test_echo_jumbo_and_standard_frames_arp_and_ping(jumbo, procs):
    fwd = procs.fwd('--iface', V1, '--pin-dir', jumbo.pin, '--mode', 'echo')
    big = procs.gen(A1, JUMBO, 200, '--replies')
    # the generator's own AF_XDP engine: one 9000-byte frame = 5 TX descriptors of 2048
    axdp = procs.gen(A1, JUMBO, 100, '--replies', '--engine', 'afxdp', '--iface', V2)
    std = procs.gen(A1, 1514, 100, '--replies')
    small = procs.gen(A1, 64, 100, '--replies')
    # not steered: the kernel answers, with and without frags
    sh(['ip', '-n', NS2, 'neigh', 'flush', 'dev', V2])
    ping = sh(['ip', 'netns', 'exec', NS2, 'ping', '-c', '2', '-i', '0.2', '-W', '2', A1])
    ping_big = sh(['ip', 'netns', 'exec', NS2, 'ping', '-c', '2', '-i', '0.2', '-W', '2',
                   '-M', 'do', '-s', '8972', A1])
    procs.stop(fwd)
    st = procs.final_stats()
    for g, n in ((big, 200), (axdp, 100), (std, 100), (small, 100)):
        assert (g['sent'], g['received'], g['lost']) == (n, n, 0), g
    assert big['size'] == JUMBO and axdp['tx_descs'] == 5 * 100
    assert ' 0% packet loss' in ping.stdout and ' 0% packet loss' in ping_big.stdout
    # steered = forwarder RX = TX = replies; a 9000-byte frame is 3 descriptors of 4096
    assert jumbo.redirected() == st['rx_packets'] == st['tx_packets'] == 500, st
    assert st['rx_descs'] == st['tx_descs'] == 300 * 3 + 200, st
    assert st['rx_bytes'] == 300 * JUMBO + 100 * 1514 + 100 * 64
    assert st['dropped'] == st['kernel_dropped'] == st['invalid'] == 0, st
    # the veth peer's kernel sockets leave partial checksums: completed over all parts
    assert st['csum_fixed'] >= 400


def test_rxdrop_counts_jumbo_packets_and_descriptors(jumbo, procs):
    fwd = procs.fwd('--iface', V1, '--pin-dir', jumbo.pin, '--mode', 'rxdrop')
    g = procs.gen(A1, JUMBO, 300)
    out = procs.stop(fwd)
    st = procs.final_stats()
    assert g['sent'] == 300
    assert jumbo.redirected() == st['rx_packets'] == 300, st
    assert st['rx_descs'] == 900 and st['rx_bytes'] == 300 * JUMBO
    assert st['tx_packets'] == st['tx_descs'] == 0 and st['kernel_dropped'] == 0, st
    assert 'AF_XDP RX: 300 pkts' in out and 'descs RX: 900 TX: 0 (final)' in out, out


def test_kernel_mode_writes_each_jumbo_packet_whole_to_the_tap(bins, jumbo, procs):
    server = procs.start(['ip', 'netns', 'exec', NS1, bins['kbypass-udpecho'], '--port',
                          str(PORT), '--mode', 'drop', '--duration', '20'])
    time.sleep(0.3)
    fwd = procs.fwd('--iface', V1, '--pin-dir', jumbo.pin, '--mode', 'kernel', '--tap', 'kbjctap0')
    procs.gen(A1, JUMBO, 200)
    procs.gen(A1, 1514, 50)
    time.sleep(0.3)
    procs.stop(fwd)
    server.send_signal(signal.SIGTERM)
    got = json.loads(server.communicate(timeout=10)[0])
    st = procs.final_stats()
    assert jumbo.redirected() == st['rx_packets'] == st['tx_packets'] == 250, st
    assert st['rx_descs'] == st['tx_descs'] == 200 * 3 + 50, st
    # the socket got whole datagrams: one writev() per packet, not one write per part
    assert got['packets'] == 250, got
    assert got['bytes'] == 200 * (JUMBO - 42) + 50 * (1514 - 42), got


def test_l2fwd_carries_jumbo_frames_both_ways(bins, jumbo, procs):
    remove_bed(NS3)
    try:
        sh(['ip', 'netns', 'add', NS3])
        sh(['ip', 'link', 'add', V3, 'netns', NS1, 'mtu', str(JUMBO), 'type', 'veth', 'peer',
            'name', V4, 'netns', NS3, 'mtu', str(JUMBO)])
        sh(['ip', '-n', NS3, 'addr', 'add', A3 + '/24', 'dev', V4])
        for ns, dev in ((NS1, V3), (NS3, V4), (NS3, 'lo')):
            sh(['ip', '-n', ns, 'link', 'set', dev, 'up'])
        mac = {}
        for ns, dev in ((NS2, V2), (NS3, V4)):
            mac[ns] = json.loads(sh(['ip', '-j', '-n', ns, 'link', 'show', dev]).stdout)[0][
                'address']
        sh(['ip', '-n', NS2, 'neigh', 'add', A3, 'lladdr', mac[NS3], 'dev', V2, 'nud',
            'permanent'])
        sh(['ip', '-n', NS3, 'neigh', 'add', A2, 'lladdr', mac[NS2], 'dev', V4, 'nud',
            'permanent'])
        pin_c = steer(bins['steer'], NS1, V3, [SPORT])      # replies C -> A
        server = procs.start(['ip', 'netns', 'exec', NS3, bins['kbypass-udpecho'], '--port',
                              str(PORT), '--duration', '20'])
        time.sleep(0.3)
        fwd = procs.fwd('--iface', V1, '--iface2', V3, '--pin-dir', jumbo.pin, '--pin-dir2', pin_c,
                        '--mode', 'l2fwd')
        g = procs.gen(A3, JUMBO, 200, '--replies', '--reply-timeout', '1000')
        std = procs.gen(A3, 1514, 50, '--replies', '--reply-timeout', '1000')
        procs.stop(fwd)
        server.send_signal(signal.SIGTERM)
        echoed = json.loads(server.communicate(timeout=10)[0])
        st = procs.final_stats()
        assert (g['received'], std['received']) == (200, 50), (g, std)
        assert echoed['packets'] == 250 and echoed['bytes'] == 200 * (JUMBO - 42) + 50 * 1472
        assert jumbo.redirected() == steer_counter(pin_c, 2) == 250
        assert st['rx_packets'] == st['tx_packets'] == 500, st
        assert st['rx_descs'] == st['tx_descs'] == 2 * (200 * 3 + 50), st
        assert st['dropped'] == st['kernel_dropped'] == 0, st
    finally:
        remove_bed(NS3)


def test_overload_drops_whole_packets_never_parts(jumbo, procs):
    """Small rings and an unpaced burst: whatever is dropped goes as whole packets, so every
    packet sent back is its 3 descriptors and arrives intact (the kernel checks its UDP
    checksum over all 9000 bytes)."""
    fwd = procs.fwd('--iface', V1, '--pin-dir', jumbo.pin, '--mode', 'echo', '--rx-ring', '64',
                    '--tx-ring', '64', '--batch', '16', '--frames', '256', '--fill-ring', '64')
    g = procs.gen(A1, JUMBO, 3000, '--replies', '--rate', '0', '--reply-timeout', '500')
    procs.stop(fwd)
    st = procs.final_stats()
    assert g['sent'] == 3000 and g['stray'] == 0, g
    assert jumbo.redirected() == st['rx_packets'] + st['kernel_dropped'], st
    assert st['rx_packets'] == st['tx_packets'] + st['dropped'] + st['invalid'], st
    assert st['rx_descs'] == 3 * st['rx_packets'] and st['tx_descs'] == 3 * st['tx_packets'], st
    assert 0 < g['received'] <= st['tx_packets'], (g, st)
