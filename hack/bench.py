# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make bench`: AF_XDP forwarder against the kernel UDP stack on one veth pair.

Python standard library only; run as root.  Builds files/forwarder (make) and the
steering program (clang), creates its own namespaces kbbench1 (device under test,
kbbv1 198.18.50.1) and kbbench2 (traffic, kbbv2 198.18.50.2), attaches the steering
program natively to both ends (kbbv1 steers UDP 4242 to the forwarder, kbbv2 steers the
replies to the generator's own AF_XDP socket so counting them costs almost nothing), runs
the scenarios below and always tears everything down.

Generator: kbypass-gen --engine afxdp pinned to one core, the forwarder or the kernel
baseline (kbypass-udpecho) pinned to another.  On veth the receive work of the DUT side
(XDP + copy into the UMEM, or the kernel stack) runs in the softirq of the sending core,
so ratios measured in the same run matter more than absolute figures.

Scenarios (all 64-byte frames unless --size):
  kernel-echo / afxdp-echo     max offered load: echoes received per second
  kernel-echo@half / afxdp-echo@half   50 % of that side's maximum: loss, RTT p50/p99
  kernel-drop / afxdp-rxdrop   max offered load: packets consumed per second
  afxdp-echo@100k / kernel-echo@100k   fixed 100 kpps: CPU % of the DUT process
Output: a table on stdout and reports/bench-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FWD_SRC = os.path.join(ROOT, 'files', 'forwarder')
BPF_SRC = os.path.join(ROOT, 'files', 'bpf', 'xdp_steer.c')
PIN_ROOT = '/sys/fs/bpf/kbypass'
NS_DUT, NS_GEN = 'kbbench1', 'kbbench2'
IF_DUT, IF_GEN = 'kbbv1', 'kbbv2'
IP_DUT, IP_GEN = '198.18.50.1', '198.18.50.2'
PORT, SPORT = 4242, 40000
CLK_TCK = os.sysconf('SC_CLK_TCK')


def sh(cmd, check=True, timeout=120):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError('%s failed (rc=%d): %s%s'
                           % (' '.join(cmd), proc.returncode, proc.stdout, proc.stderr))
    return proc


def log(msg):
    sys.stderr.write('bench: %s\n' % msg)
    sys.stderr.flush()


def proc_cpu_s(pid):
    """utime + stime of a live process in seconds (fields 14 and 15 of /proc/PID/stat)."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Bench:
    def __init__(self, opts):
        self.opts = opts
        self.tmp = tempfile.mkdtemp(prefix='kbbench-')
        self.bins = {}
        self.procs = []
        self.pins = []
        self.ncpu = os.cpu_count() or 1
        self.gen_cpu = opts.gen_cpu
        self.dut_cpu = opts.dut_cpu if self.ncpu > 1 else 0

    # ------------------------------------------------------------------ set-up
    def build(self):
        log('building files/forwarder and the steering program')
        sh(['make', '-C', FWD_SRC, '-s'], timeout=300)
        for name in ('kbypass-fwd', 'kbypass-gen', 'kbypass-udpecho'):
            self.bins[name] = os.path.join(FWD_SRC, name)
        arch = sh(['cc', '-print-multiarch'], check=False).stdout.strip()
        obj = os.path.join(self.tmp, 'xdp_steer.o')
        cmd = ['clang', '-O2', '-g', '-target', 'bpf', '-Wall', '-c', BPF_SRC, '-o', obj]
        if arch:
            cmd.insert(1, '-I/usr/include/%s' % arch)
        sh(cmd)
        self.bins['xdp_steer.o'] = obj

    def steer(self, ns, dev, port):
        pin = '%s/%s/%s' % (PIN_ROOT, ns, dev)
        shutil.rmtree(pin, ignore_errors=True)
        os.makedirs(pin)
        self.pins.append(pin)
        sh(['bpftool', 'prog', 'load', self.bins['xdp_steer.o'], pin + '/prog', 'type', 'xdp',
            'pinmaps', pin])
        sh(['nsenter', '--net=/run/netns/' + ns, 'bpftool', 'net', 'attach', 'xdpdrv', 'pinned',
            pin + '/prog', 'dev', dev])
        sh(['bpftool', 'map', 'update', 'pinned', pin + '/steer_ports', 'key']
           + [str(b) for b in struct.pack('<I', port)] + ['value', '1'])
        return pin

    def setup(self):
        self.teardown_net()  # a previous run that was killed hard
        log('creating %s/%s with %s <-> %s' % (NS_DUT, NS_GEN, IF_DUT, IF_GEN))
        for ns in (NS_DUT, NS_GEN):
            sh(['ip', 'netns', 'add', ns])
            sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
        sh(['ip', 'link', 'add', IF_DUT, 'netns', NS_DUT, 'type', 'veth', 'peer', 'name', IF_GEN,
            'netns', NS_GEN])
        sh(['ip', '-n', NS_DUT, 'addr', 'add', IP_DUT + '/24', 'dev', IF_DUT])
        sh(['ip', '-n', NS_GEN, 'addr', 'add', IP_GEN + '/24', 'dev', IF_GEN])
        sh(['ip', '-n', NS_DUT, 'link', 'set', IF_DUT, 'up'])
        sh(['ip', '-n', NS_GEN, 'link', 'set', IF_GEN, 'up'])
        self.pin_dut = self.steer(NS_DUT, IF_DUT, PORT)
        self.pin_gen = self.steer(NS_GEN, IF_GEN, SPORT)
        sh(['ip', 'netns', 'exec', NS_GEN, 'ping', '-c', '1', '-W', '2', IP_DUT])

    def teardown_net(self):
        for ns in (NS_DUT, NS_GEN):
            if os.path.exists('/run/netns/' + ns):
                sh(['ip', 'netns', 'del', ns], check=False)
        for ns in (NS_DUT, NS_GEN):
            shutil.rmtree('%s/%s' % (PIN_ROOT, ns), ignore_errors=True)
        try:
            os.rmdir(PIN_ROOT)  # only when empty: a user's bed may have pins there
        except OSError:
            pass

    def teardown(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
        self.teardown_net()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ processes
    def start(self, cmd):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    def stop(self, proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        if proc.returncode != 0:
            raise RuntimeError('%s exited %d: %s' % (proc.args[0], proc.returncode, err))
        return out

    def start_dut(self, kind, mode):
        if kind == 'afxdp':
            stats = os.path.join(self.tmp, 'fwd.json')
            if os.path.exists(stats):
                os.unlink(stats)
            proc = self.start([self.bins['kbypass-fwd'], '--iface', IF_DUT, '--netns', NS_DUT,
                               '--pin-dir', self.pin_dut, '--mode', mode, '--cpus',
                               str(self.dut_cpu), '--stats-file', stats, '--interval', '1',
                               '--quiet'])
            deadline = time.time() + 10
            while not os.path.exists(stats):
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError('forwarder did not start: %s' % proc.communicate()[1])
                time.sleep(0.05)
            proc.stats_path = stats
        else:
            proc = self.start([self.bins['kbypass-udpecho'], '--netns', NS_DUT, '--port',
                               str(PORT), '--mode', mode, '--cpu', str(self.dut_cpu),
                               '--duration', '120'])
            time.sleep(0.3)
        return proc

    def gen(self, duration, rate=0, replies=True):
        cmd = [self.bins['kbypass-gen'], '--netns', NS_GEN, '--iface', IF_GEN, '--dst', IP_DUT,
               '--engine', 'afxdp', '--size', str(self.opts.size), '--count', '50000000',
               '--duration', str(duration), '--rate', str(int(rate)), '--cpu',
               str(self.gen_cpu), '--json', '--reply-timeout', '500']
        if replies:
            cmd += ['--replies', '--pin-dir', self.pin_gen]
        return json.loads(sh(cmd, timeout=duration + 60).stdout)

    def run(self, kind, mode, duration, rate=0):
        """One scenario: DUT up, generator for `duration`, DUT down; figures in a dict."""
        dut = self.start_dut(kind, 'drop' if mode == 'rxdrop' and kind == 'kernel' else mode)
        cpu0, t0 = proc_cpu_s(dut.pid), time.time()
        g = self.gen(duration, rate, replies=(mode == 'echo'))
        cpu1, t1 = proc_cpu_s(dut.pid), time.time()
        out = self.stop(dut)
        if kind == 'afxdp':
            with open(dut.stats_path) as f:
                st = json.load(f)
            dut_packets = st['rx_packets']
            extra = {'bind_mode': st['bind_mode'], 'dropped': st['dropped'],
                     'xdp_stats': st['xdp_stats'],
                     'cpu_s_self': round(st['cpu_user_s'] + st['cpu_sys_s'], 3)}
        else:
            st = json.loads(out)
            dut_packets = st['packets']
            extra = {'cpu_s_self': round(st['cpu_user_s'] + st['cpu_sys_s'], 3)}
        dur = g['duration_s'] or 1e-9
        cpu_s = cpu1 - cpu0
        res = {
            'dut': kind, 'mode': mode, 'offered_rate': rate or 'max', 'sent': g['sent'],
            'tx_pps': round(g['tx_pps']), 'dut_packets': dut_packets,
            'dut_pps': round(dut_packets / dur),
            'received': g['received'], 'lost': g['lost'],
            'rx_pps': round(g['rx_pps']) if g['received'] is not None else None,
            'rtt_us': g['rtt_us'], 'duration_s': round(dur, 3),
            'dut_cpu_s': round(cpu_s, 3), 'dut_cpu_pct': round(100.0 * cpu_s / (t1 - t0), 1),
            'dut_cpu_s_per_mpkt': round(cpu_s / (dut_packets / 1e6), 3) if dut_packets else None,
        }
        res.update(extra)
        log('%-6s %-6s rate=%-8s sent=%d dut=%d received=%s cpu=%.1f%%' % (
            kind, mode, rate or 'max', g['sent'], dut_packets, g['received'],
            res['dut_cpu_pct']))
        return res


def fmt(v, nd=0):
    if v is None:
        return '-'
    if isinstance(v, float):
        return '%.*f' % (nd, v)
    return str(v)


def table(rows):
    head = ('scenario', 'offered', 'sent pps', 'DUT pps', 'echo pps', 'lost', 'RTT p50 us',
            'RTT p99 us', 'DUT CPU %', 'CPU s/Mpkt')
    lines = [head]
    for name, r in rows:
        rtt = r['rtt_us'] or {}
        lines.append((name, fmt(r['offered_rate']), fmt(r['tx_pps']), fmt(r['dut_pps']),
                      fmt(r['rx_pps']), fmt(r['lost']), fmt(rtt.get('p50'), 1),
                      fmt(rtt.get('p99'), 1), fmt(r['dut_cpu_pct'], 1),
                      fmt(r['dut_cpu_s_per_mpkt'], 3)))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    out = []
    for i, line in enumerate(lines):
        out.append('  '.join(str(c).rjust(w) if j else str(c).ljust(w)
                             for j, (c, w) in enumerate(zip(line, widths))))
        if i == 0:
            out.append('  '.join('-' * w for w in widths))
    return '\n'.join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    ap.add_argument('--duration', type=float, default=5.0, help='seconds per max-rate run')
    ap.add_argument('--size', type=int, default=64, help='frame size without FCS')
    ap.add_argument('--gen-cpu', type=int, default=0)
    ap.add_argument('--dut-cpu', type=int, default=1)
    ap.add_argument('--fixed-rate', type=int, default=100000, help='pps for the CPU %% run')
    ap.add_argument('--out-dir', default=os.path.join(ROOT, 'reports'))
    opts = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit('bench: run as root (namespaces, XDP, AF_XDP)')
    for tool in ('clang', 'bpftool', 'make', 'cc', 'nsenter'):
        if not shutil.which(tool):
            sys.exit('bench: %s not found; run `make toolchain` first' % tool)
    opts.duration = min(max(opts.duration, 1.0), 20.0)  # keep the whole bench a few minutes

    b = Bench(opts)
    started = time.time()
    load_before = os.getloadavg()
    rows = []
    try:
        b.build()
        b.setup()
        d = opts.duration
        k_echo = b.run('kernel', 'echo', d)
        a_echo = b.run('afxdp', 'echo', d)
        k_half = b.run('kernel', 'echo', 3, rate=max(1000, k_echo['rx_pps'] // 2))
        a_half = b.run('afxdp', 'echo', 3, rate=max(1000, a_echo['rx_pps'] // 2))
        k_drop = b.run('kernel', 'rxdrop', d)
        a_drop = b.run('afxdp', 'rxdrop', d)
        a_fixed = b.run('afxdp', 'echo', 4, rate=opts.fixed_rate)
        k_fixed = b.run('kernel', 'echo', 4, rate=opts.fixed_rate)
        rows = [('kernel-echo', k_echo), ('afxdp-echo', a_echo),
                ('kernel-echo@half', k_half), ('afxdp-echo@half', a_half),
                ('kernel-drop', k_drop), ('afxdp-rxdrop', a_drop),
                ('kernel-echo@%dk' % (opts.fixed_rate // 1000), k_fixed),
                ('afxdp-echo@%dk' % (opts.fixed_rate // 1000), a_fixed)]
    finally:
        b.teardown()

    echo_ratio = a_echo['rx_pps'] / k_echo['rx_pps'] if k_echo['rx_pps'] else None
    drop_ratio = a_drop['dut_pps'] / k_drop['dut_pps'] if k_drop['dut_pps'] else None
    summary = {
        'echo_ratio_afxdp_vs_kernel': round(echo_ratio, 2) if echo_ratio else None,
        'rxdrop_ratio_afxdp_vs_kernel': round(drop_ratio, 2) if drop_ratio else None,
        'target_echo_2x_kernel': bool(echo_ratio and echo_ratio >= 2.0),
        'target_no_loss_at_half_rate': a_half['lost'] == 0,
        'afxdp_cpu_pct_at_fixed_rate': a_fixed['dut_cpu_pct'],
        'kernel_cpu_pct_at_fixed_rate': k_fixed['dut_cpu_pct'],
        'fixed_rate_pps': opts.fixed_rate,
    }
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
    report = {
        'timestamp': stamp, 'kernel': os.uname().release, 'cpus': b.ncpu,
        'gen_cpu': b.gen_cpu, 'dut_cpu': b.dut_cpu, 'frame_size': opts.size,
        'generator': 'kbypass-gen --engine afxdp (replies received through AF_XDP on %s)' % IF_GEN,
        'loadavg_before': load_before, 'loadavg_after': os.getloadavg(),
        'wall_s': round(time.time() - started, 1),
        'summary': summary, 'results': dict(rows),
    }
    os.makedirs(opts.out_dir, exist_ok=True)
    path = os.path.join(opts.out_dir, 'bench-%s.json' % stamp)
    with open(path, 'w') as f:
        json.dump(report, f, indent=2)
        f.write('\n')
    print(table(rows))
    print()
    print('echo: AF_XDP %s x kernel (target >= 2x: %s); rxdrop: AF_XDP %s x kernel' % (
        fmt(summary['echo_ratio_afxdp_vs_kernel'], 2),
        'met' if summary['target_echo_2x_kernel'] else 'NOT met',
        fmt(summary['rxdrop_ratio_afxdp_vs_kernel'], 2)))
    print('no loss at half the AF_XDP echo maximum: %s (lost %s of %s)' % (
        'yes' if summary['target_no_loss_at_half_rate'] else 'NO', a_half['lost'], a_half['sent']))
    print('DUT CPU at %d pps: AF_XDP %.1f%%, kernel %.1f%%  (load average before %.2f)' % (
        opts.fixed_rate, a_fixed['dut_cpu_pct'], k_fixed['dut_cpu_pct'], load_before[0]))
    print('report: %s  (%.0f s)' % (os.path.relpath(path, ROOT), report['wall_s']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
