# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make ovs-bench`: Open vSwitch with afxdp ports against a Linux bridge and against
kbypass-fwd --mode l2fwd, as the box between the same two namespaces, in one run.

Python standard library only; run as root, with Open vSwitch installed (the ovs role)
and its daemons NOT running (this script starts and stops them itself).

Topology (its own names, always torn down):
  kbovsb1 (traffic, 198.18.241.1)  kbovsb1v <-> kbovsbp0  [root namespace: the box]
  kbovsb3 (far, 198.18.241.3)      kbovsb3v <-> kbovsbp2  [root namespace: the box]
The box is, in turn: an OVS bridge kbovsbbr (datapath netdev, both ends afxdp ports in
native mode, two flows crossing them, PMD on --box-cpu), a Linux bridge kbovsblb, and
kbypass-fwd --mode l2fwd on both ends (steering programs pinned under
/sys/fs/bpf/kbypass/init_net/kbovsbp*; forwarder on --box-cpu).

kbypass-gen --engine afxdp in kbovsb1 sends 64-byte UDP to kbypass-udpecho in kbovsb3
(kernel, the same far end for every box). Neighbours are static, so the l2fwd box (which
forwards UDP only) needs no ARP. Per box and repetition: the forwarding rate at max
offered load (packets the far end counted per second, udpecho --mode drop) and the RTT
through the box and back at a fixed low rate (udpecho --mode echo, replies to the
generator's own AF_XDP socket). Medians over --reps, boxes
interleaved per repetition so background load hits them alike. Output: a table and
reports/ovs-bench-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (hack/bench.py: build, sh, log, process handling)

sh, log = bench.sh, bench.log
NS_GEN, NS_FAR = 'kbovsb1', 'kbovsb3'
IF_GEN, IF_FAR = 'kbovsb1v', 'kbovsb3v'
BOX0, BOX2 = 'kbovsbp0', 'kbovsbp2'
IP_GEN, IP_FAR = '198.18.241.1', '198.18.241.3'
OVS_BR, LINUX_BR = 'kbovsbbr', 'kbovsblb'
OVS_CTL = '/usr/share/openvswitch/scripts/ovs-ctl'
SYSTEM_ID = '/etc/openvswitch/system-id.conf'
BOXES = ('ovs-afxdp', 'linux-bridge', 'kbypass-l2fwd')


class OvsBench(bench.Bench):
    """bench.Bench's build and process handling on a three-namespace topology."""

    def mac(self, ns, dev):
        cmd = ['ip', '-j', 'link', 'show', 'dev', dev]
        if ns:
            cmd[1:1] = ['-n', ns]
        return json.loads(sh(cmd).stdout)[0]['address']

    def steer_root(self, dev, port):
        """The steering program on a root-namespace end (bench.Bench.steer enters a netns)."""
        pin = '%s/init_net/%s' % (bench.PIN_ROOT, dev)
        shutil.rmtree(pin, ignore_errors=True)
        os.makedirs(pin)
        self.pins.append(pin)
        sh(['bpftool', 'prog', 'load', self.bins['xdp_steer.o'], pin + '/prog', 'type', 'xdp',
            'pinmaps', pin])
        sh(['bpftool', 'net', 'attach', 'xdpdrv', 'pinned', pin + '/prog', 'dev', dev])
        sh(['bpftool', 'map', 'update', 'pinned', pin + '/steer_ports', 'key']
           + [str(b) for b in struct.pack('<I', port)] + ['value', '1'])
        return pin

    def unsteer_root(self, dev):
        sh(['ip', 'link', 'set', 'dev', dev, 'xdpdrv', 'off'], check=False)
        shutil.rmtree('%s/init_net/%s' % (bench.PIN_ROOT, dev), ignore_errors=True)

    def setup(self):
        self.teardown_net()
        log('creating %s <-> [%s %s] <-> %s' % (NS_GEN, BOX0, BOX2, NS_FAR))
        for ns, dev, box, addr in ((NS_GEN, IF_GEN, BOX0, IP_GEN), (NS_FAR, IF_FAR, BOX2, IP_FAR)):
            sh(['ip', 'netns', 'add', ns])
            sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
            sh(['ip', 'link', 'add', box, 'type', 'veth', 'peer', 'name', dev, 'netns', ns])
            sh(['ip', '-n', ns, 'addr', 'add', addr + '/24', 'dev', dev])
            sh(['ip', '-n', ns, 'link', 'set', dev, 'up'])
            sh(['ip', 'link', 'set', box, 'up'])
            # UDP from a veth sender keeps a partial checksum across an afxdp port
            sh(['ip', 'netns', 'exec', ns, 'ethtool', '-K', dev, 'tx', 'off'])
        self.mac_gen, self.mac_far = self.mac(NS_GEN, IF_GEN), self.mac(NS_FAR, IF_FAR)
        sh(['ip', '-n', NS_GEN, 'neigh', 'replace', IP_FAR, 'lladdr', self.mac_far, 'dev',
            IF_GEN, 'nud', 'permanent'])
        sh(['ip', '-n', NS_FAR, 'neigh', 'replace', IP_GEN, 'lladdr', self.mac_gen, 'dev',
            IF_FAR, 'nud', 'permanent'])
        self.pin_gen = self.steer(NS_GEN, IF_GEN, bench.SPORT)

    def teardown_net(self):
        self.ovs_down()
        sh(['ip', 'link', 'del', LINUX_BR], check=False)
        for ns in (NS_GEN, NS_FAR):
            if os.path.exists('/run/netns/' + ns):
                sh(['ip', 'netns', 'del', ns], check=False)
        for box in (BOX0, BOX2):
            sh(['ip', 'link', 'del', box], check=False)
            shutil.rmtree('%s/init_net/%s' % (bench.PIN_ROOT, box), ignore_errors=True)
        shutil.rmtree('%s/%s' % (bench.PIN_ROOT, NS_GEN), ignore_errors=True)
        for d in ('%s/init_net' % bench.PIN_ROOT, bench.PIN_ROOT):
            try:
                os.rmdir(d)  # only when empty
            except OSError:
                pass

    # ------------------------------------------------------------------ the boxes
    def ovs_up(self):
        self.sysid_new = not os.path.exists(SYSTEM_ID)
        sh([OVS_CTL, '--system-id=random', '--no-record-hostname', '--no-mlockall', 'start'])
        self.ovs_started = True
        vsctl = ['ovs-vsctl', '--timeout=20']
        sh(vsctl + ['set', 'Open_vSwitch', '.',
                    'other_config:pmd-cpu-mask=%#x' % (1 << self.dut_cpu)])
        sh(vsctl + ['add-br', OVS_BR, '--', 'set', 'Bridge', OVS_BR, 'datapath_type=netdev'])
        for n, box in ((1, BOX0), (2, BOX2)):
            sh(vsctl + ['add-port', OVS_BR, box, '--', 'set', 'Interface', box, 'type=afxdp',
                        'options:xdp-mode=native', 'ofport_request=%d' % n])
        sh(['ovs-ofctl', 'del-flows', OVS_BR])
        sh(['ovs-ofctl', 'add-flow', OVS_BR, 'in_port=1,actions=output:2'])
        sh(['ovs-ofctl', 'add-flow', OVS_BR, 'in_port=2,actions=output:1'])
        time.sleep(1)
        return sh(['ovs-appctl', 'dpctl/show']).stdout

    def ovs_down(self):
        if not getattr(self, 'ovs_started', False):
            return
        sh(['ovs-vsctl', '--timeout=10', 'del-br', OVS_BR], check=False)
        sh(['ovs-vsctl', '--timeout=10', 'remove', 'Open_vSwitch', '.', 'other_config',
            'pmd-cpu-mask'], check=False)
        sh([OVS_CTL, 'stop'], check=False)
        if self.sysid_new and os.path.exists(SYSTEM_ID):
            os.unlink(SYSTEM_ID)  # written by --system-id=random: ours
        self.ovs_started = False

    def box_up(self, box):
        if box == 'ovs-afxdp':
            return {'dpctl': self.ovs_up()}
        if box == 'linux-bridge':
            sh(['ip', 'link', 'add', LINUX_BR, 'type', 'bridge'])
            for dev in (BOX0, BOX2):
                sh(['ip', 'link', 'set', dev, 'master', LINUX_BR])
            sh(['ip', 'link', 'set', LINUX_BR, 'up'])
            time.sleep(1)
            return {}
        pin0, pin2 = self.steer_root(BOX0, bench.PORT), self.steer_root(BOX2, bench.SPORT)
        stats = os.path.join(self.tmp, 'l2fwd.json')
        self.fwd = self.start([self.bins['kbypass-fwd'], '--iface', BOX0, '--iface2', BOX2,
                               '--pin-dir', pin0, '--pin-dir2', pin2, '--mode', 'l2fwd',
                               '--cpus', str(self.dut_cpu), '--stats-file', stats, '--quiet'])
        deadline = time.time() + 10
        while not os.path.exists(stats):
            if self.fwd.poll() is not None or time.time() > deadline:
                raise RuntimeError('l2fwd did not start: %s' % self.fwd.communicate()[1])
            time.sleep(0.05)
        return {}

    def box_down(self, box):
        if box == 'ovs-afxdp':
            self.ovs_down()
        elif box == 'linux-bridge':
            sh(['ip', 'link', 'del', LINUX_BR])
        else:
            self.stop(self.fwd)
            for dev in (BOX0, BOX2):
                self.unsteer_root(dev)

    # ------------------------------------------------------------------ one measurement
    def gen(self, duration, rate=0, replies=True):
        cmd = [self.bins['kbypass-gen'], '--netns', NS_GEN, '--iface', IF_GEN, '--dst', IP_FAR,
               '--dst-mac', self.mac_far, '--engine', 'afxdp', '--size', str(self.opts.size),
               '--count', '50000000', '--duration', str(duration), '--rate', str(int(rate)),
               '--cpu', str(self.gen_cpu), '--json', '--reply-timeout', '500']
        if replies:
            cmd += ['--replies', '--pin-dir', self.pin_gen]
        return json.loads(sh(cmd, timeout=duration + 60).stdout)

    def far_end(self, mode):
        proc = self.start([self.bins['kbypass-udpecho'], '--netns', NS_FAR, '--port',
                           str(bench.PORT), '--mode', mode, '--cpu', str(self.gen_cpu),
                           '--duration', '120'])
        time.sleep(0.3)
        return proc

    def measure(self, box):
        """Forwarding rate (one way, counted by the far end) at max offered load, then
        RTT through the box and back at a fixed low rate."""
        sink = self.far_end('drop')
        try:
            peak = self.gen(self.opts.duration, replies=False)
        finally:
            delivered = json.loads(self.stop(sink))['packets']
        echo = self.far_end('echo')
        try:
            low = self.gen(2, rate=self.opts.rtt_rate)
        finally:
            self.stop(echo)
        res = {'box': box, 'fwd_pps': round(delivered / (peak['duration_s'] or 1e-9)),
               'offered_pps': round(peak['tx_pps']), 'sent': peak['sent'],
               'delivered': delivered, 'rtt_p50_us': (low['rtt_us'] or {}).get('p50'),
               'rtt_p99_us': (low['rtt_us'] or {}).get('p99'),
               'rtt_burst_lost': low['lost']}
        log('%-14s forwards %8d pps (offered %d), rtt p50 %s us p99 %s us at %d pps' % (
            box, res['fwd_pps'], res['offered_pps'], res['rtt_p50_us'], res['rtt_p99_us'],
            self.opts.rtt_rate))
        return res


def summarize(runs):
    out = []
    for box in BOXES:
        mine = [r for r in runs if r['box'] == box]
        med = dict((k, statistics.median([r[k] for r in mine if r[k] is not None] or [0]))
                   for k in ('fwd_pps', 'rtt_p50_us', 'rtt_p99_us'))
        out.append(dict(box=box, reps=len(mine), **med))
    base = next(r for r in out if r['box'] == 'linux-bridge')
    for row in out:
        row['fwd_vs_linux_bridge'] = round(row['fwd_pps'] / base['fwd_pps'], 2) \
            if base['fwd_pps'] else None
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    ap.add_argument('--duration', type=int, default=3, help='seconds per max-rate burst')
    ap.add_argument('--rtt-rate', type=int, default=20000, help='pps of the RTT burst')
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--gen-cpu', type=int, default=0)
    ap.add_argument('--dut-cpu', type=int, default=1, help='CPU of the PMD / the forwarder')
    ap.add_argument('--out-dir', default='reports')
    opts = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit('ovs_bench.py needs root')
    if not shutil.which('ovs-vsctl') or not os.path.exists(OVS_CTL):
        sys.exit('Open vSwitch is not installed (run the kbypass.xdp.ovs role first)')
    if subprocess.run(['ovs-vsctl', '--timeout=1', 'show'], capture_output=True,
                      check=False).returncode == 0:
        sys.exit('Open vSwitch runs already: stop it first (this script starts its own)')
    b = OvsBench(opts)
    runs, dpctl = [], None
    try:
        b.build()
        b.setup()
        for rep in range(opts.reps):
            for box in BOXES if rep % 2 == 0 else tuple(reversed(BOXES)):
                info = b.box_up(box)
                dpctl = info.get('dpctl') or dpctl
                try:
                    runs.append(b.measure(box))
                finally:
                    b.box_down(box)
    finally:
        b.teardown()
    summary = summarize(runs)
    print('%-14s %12s %10s %12s %12s' % ('box', 'fwd pps', 'vs bridge', 'RTT p50 us',
                                         'RTT p99 us'))
    for row in summary:
        print('%-14s %12d %10s %12.1f %12.1f' % (row['box'], row['fwd_pps'],
                                                 row['fwd_vs_linux_bridge'], row['rtt_p50_us'],
                                                 row['rtt_p99_us']))
    os.makedirs(opts.out_dir, exist_ok=True)
    path = os.path.join(opts.out_dir, 'ovs-bench-%s.json'
                        % datetime.datetime.utcnow().strftime('%Y%m%dT%H%M%SZ'))
    with open(path, 'w') as fh:
        json.dump({'options': vars(opts), 'summary': summary, 'runs': runs,
                   'ovs_dpctl_show': dpctl, 'load_average': os.getloadavg()}, fh, indent=2)
    print('report: %s' % path)


if __name__ == '__main__':
    main()
