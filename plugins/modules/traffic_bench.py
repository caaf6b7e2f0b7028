#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: traffic_bench
short_description: Benchmark one packet path with kbypass-gen - maximum, RFC 2544 zero-loss rate and a load sweep
version_added: "0.2.0"
description:
  - Drives C(kbypass-gen --engine afxdp) from the generator's interface against the device
    under test (DUT) and measures one path for each frame size in O(sizes).
  - "For each size: the maximum (one trial as fast as the generator goes), the zero-loss
    throughput the RFC 2544 way (a binary search of short trials over the offered rate until
    a trial loses nothing), then a sweep at O(percents) of the maximum, each point repeated
    O(repetitions) times: offered and delivered pps, loss, RTT p50/p99/p99.9, DUT process CPU
    and softirq time; then, when O(rates) names any, the same figures at those fixed offered
    rates."
  - "Paths: V(afxdp-echo), V(afxdp-echo-busy) (the forwarder on a dedicated core) and
    V(afxdp-rxdrop) need a running forwarder instance
    (M(kbypass.xdp.afxdp_forwarder)) whose stats file is O(forwarder_stats_file);
    V(kernel-echo) starts C(kbypass-udpecho) in the DUT namespace itself (bounded, stopped at
    the end); V(xdp-tx) needs the C(xdp_reflect) program attached to the DUT interface by
    M(kbypass.xdp.xdp_attach)."
  - Replies reach the generator through its own AF_XDP socket, so the generator side needs the
    steering program attached with O(sport) in its ports (O(gen_pin_dir)).
  - Before any traffic it checks the input, the CPUs, the binaries, the programs attached on both
    sides and that the generator reaches the DUT (ICMP echo); any problem fails the task with a
    message and nothing sent.
  - Every trial is bounded in packets (O(max_packets)) and seconds, the whole call by
    O(max_seconds); processes it started are stopped also when the task is interrupted.
author:
  - kbypass.xdp developers (@kbypass)
attributes:
  check_mode:
    support: full
    description: In check mode only the checks run; nothing is sent.
  diff_mode:
    support: none
    description: A measurement changes nothing on the host.
options:
  path:
    description: The path to measure.
    type: str
    required: true
    choices: [afxdp-echo, afxdp-echo-busy, afxdp-rxdrop, kernel-echo, xdp-tx]
  sizes:
    description:
      - Ethernet frame sizes without FCS, 64-9014 bytes.
      - Sizes above 1514 need an MTU of size - 14 on both interfaces (a jumbo bed) and, for
        the AF_XDP paths, a forwarder with O(kbypass.xdp.afxdp_forwarder#module:multi_buffer).
    type: list
    elements: int
    default: [64, 512, 1500]
  profile:
    description: V(quick) (0.3 s trials, 3 repetitions) or V(full) (2 s trials, 5 repetitions).
    type: str
    choices: [quick, full]
    default: quick
  trial_s:
    description: Seconds per trial of the search and the sweep (overrides the profile).
    type: float
  max_trial_s:
    description: Seconds of the maximum trial (overrides the profile).
    type: float
  repetitions:
    description: Trials per sweep point (overrides the profile), 1-20.
    type: int
  search_trials:
    description: At most this many trials in the zero-loss search (overrides the profile).
    type: int
  percents:
    description: Sweep points in percent of the measured maximum (overrides the profile).
    type: list
    elements: int
  search_repetitions:
    description: Zero-loss searches per frame size, 1-20 (overrides the profile); their rates
      are reported as min/median/max.
    type: int
    version_added: 0.3.0
  rates:
    description: Fixed offered rates in pps, each measured O(repetitions) times like a sweep
      point (e.g. V([100000]) for CPU and RTT at 100 kpps whatever the path's maximum).
    type: list
    elements: int
    version_added: 0.3.0
  max_rate:
    description: Offered rate of the maximum trial in pps; V(0) sends as fast as the generator goes.
    type: int
    default: 0
  max_packets:
    description: Packets any one trial may send, 1000-50000000.
    type: int
    default: 5000000
  max_seconds:
    description: Upper bound of the whole call; the sweep stops with a note when it is reached.
    type: float
    default: 240
  gen_netns:
    description: Network namespace of the generator's interface; omit for the root namespace.
    type: str
  gen_ifname:
    description: The generator's interface.
    type: str
    required: true
  gen_pin_dir:
    description: Pins of the steering program on O(gen_ifname) (its C(xsks_map) receives the
      replies). Defaults to C(/sys/fs/bpf/kbypass/<gen_netns or init_net>/<gen_ifname>).
    type: path
  gen_cpu:
    description: CPU the generator is pinned to.
    type: int
  dst:
    description: Address of the DUT the generator sends to.
    type: str
    required: true
  dport:
    description: UDP destination port (steered on the DUT).
    type: int
    default: 4242
  sport:
    description: UDP source port (steered to the generator's socket on the way back).
    type: int
    default: 40000
  dut_netns:
    description: Network namespace of the DUT interface; omit for the root namespace.
    type: str
  dut_ifname:
    description: The DUT interface (steering program or reflector attached).
    type: str
    required: true
  dut_pin_dir:
    description: Pins of the program on O(dut_ifname); default as for O(gen_pin_dir).
    type: path
  dut_cpu:
    description: CPU of the kernel UDP echo (the forwarder's CPUs are set where it is started).
    type: int
  forwarder_stats_file:
    description: Stats file of the forwarder instance (required for the C(afxdp-*) paths).
    type: path
  generator:
    description: Path of C(kbypass-gen).
    type: path
    default: /usr/local/bin/kbypass-gen
  udpecho:
    description: Path of C(kbypass-udpecho).
    type: path
    default: /usr/local/bin/kbypass-udpecho
  reply_timeout_ms:
    description: How long the generator waits for late replies after each trial.
    type: int
    default: 200
  validate_only:
    description: Only check the arguments and that the CPUs exist; touch nothing, read no
      interface (for a role to stop on bad input before it builds anything).
    type: bool
    default: false
notes:
  - Needs root. On veth, the DUT's receive work (XDP, the copy into the socket, the kernel
    stack) runs in the softirq of the sending CPU, hence the separate softirq column.
  - Figures measured while other work runs on the host are noisy; the min-max of the
    repetitions shows how much. On a virtual machine, every point also carries the CPU time
    the hypervisor took away during its trials (steal, from /proc/stat); the report warns
    from 2 % per trial (median) or 10 % in one trial, because a descheduled vCPU adds its
    whole pause to an RTT.
'''

EXAMPLES = r'''
- name: AF_XDP echo on the bench bed, 64-byte frames only
  kbypass.xdp.traffic_bench:
    path: afxdp-echo
    sizes: [64]
    gen_netns: kbb2
    gen_ifname: kbbv1
    gen_cpu: 0
    dst: 198.18.250.1
    dut_netns: kbb1
    dut_ifname: kbbv0
    forwarder_stats_file: /run/kbypass/forwarder/kbb-afxdp-echo.stats.json
  register: bench_afxdp

- name: Only check that the set-up can be measured (nothing is sent)
  kbypass.xdp.traffic_bench:
    path: kernel-echo
    gen_ifname: eth1
    dst: 198.18.251.1
    dut_netns: dut
    dut_ifname: eth2
  check_mode: true
'''

RETURN = r'''
results:
  description: One entry per frame size with C(path), C(size), C(max) (offered_pps,
    delivered_pps), C(zero_loss) (rate (the median over the searches), rates, per_search,
    trials, converged), C(sweep) (points with every metric as min/median/max), C(fixed) (the
    points at O(rates)), C(knee) (the first point that loses) and C(elapsed_s).
  returned: success, not in check mode
  type: list
  elements: dict
summary:
  description: One line per frame size for the play output.
  returned: always
  type: list
  elements: str
notes:
  description: Things the reader of the figures should know (partial sweep, RTT percentile
    fallbacks).
  returned: always
  type: list
  elements: str
environment:
  description: Kernel, CPU count, pinned CPUs, load average when the call started.
  returned: always
  type: dict
'''

import json
import os
import signal
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kbypass.xdp.plugins.module_utils import _bench, _bpf, _netns, _xdp
from ansible_collections.kbypass.xdp.plugins.module_utils._common import (
    default_pin_dir,
    name_errors,
)
from ansible_collections.kbypass.xdp.plugins.module_utils._deps import require_pyroute2
from ansible_collections.kbypass.xdp.plugins.module_utils._supervise import (
    die_if_forked_helper,
    online_cpus,
    read_json,
)

CLK_TCK = os.sysconf('SC_CLK_TCK')
EXPECTED_PROGRAM = {'xdp-tx': 'xdp_reflect'}  # every other path: the steering program


class BenchError(Exception):
    pass


class Interrupted(BaseException):
    """SIGTERM/SIGINT while measuring: unwind through the finally blocks."""


def _interrupt(signum, frame):
    if die_if_forked_helper(signum):
        return
    raise Interrupted(signum)


# ---------------------------------------------------------------------------------------
# CPU accounting
# ---------------------------------------------------------------------------------------
def proc_cpu_s(pid):
    """utime + stime of a live process in seconds, or None."""
    if not pid:
        return None
    try:
        with open('/proc/%d/stat' % pid) as fh:
            fields = fh.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / float(CLK_TCK)
    except (OSError, ValueError, IndexError):
        return None


def cpu_times():
    """Softirq, steal and total time of all CPUs in clock ticks (/proc/stat)."""
    with open('/proc/stat') as fh:
        return _bench.parse_proc_stat(fh.readline())


def _delta(after, before):
    return None if after is None or before is None else max(0.0, after - before)


# ---------------------------------------------------------------------------------------
class Bench(object):
    def __init__(self, module, p):
        self.m = module
        self.p = p
        self.meta = _bench.PATHS[p['path']]
        self.children = _bench.Children()
        self.udpecho = None
        self.notes = []
        self.p999_from_max = False
        self.deadline = time.time() + p['max_seconds']

    # --- checks (nothing sent but one ICMP echo) -----------------------------------------
    def check_program(self, side, netns, ifname, pin_dir, expected):
        link = _xdp.query(ifname, netns)
        where = '%s%s' % (ifname, ' in netns %s' % netns if netns else '')
        if link is None:
            raise BenchError('%s interface %s does not exist' % (side, where))
        prog_id = link['xdp']['prog_id']
        try:
            pinned = _bpf.pinned_prog_info(os.path.join(pin_dir, _bpf.PROG_PIN))
        except _bpf.BpfError:
            pinned = None
        if not prog_id or not pinned or pinned.get('id') != prog_id \
                or pinned.get('name') != expected[:15]:
            raise BenchError(
                '%s interface %s has no %s program pinned in %s (attached program id: %s): '
                'attach it with kbypass.xdp.xdp_attach (the bench role does) before measuring'
                % (side, where, expected, pin_dir, prog_id or 'none'))

    def preflight(self):
        p = self.p
        for ns in (p['gen_netns'], p['dut_netns']):
            if not _netns.netns_exists(ns):
                raise BenchError('network namespace %r does not exist' % ns)
        for exe in [p['generator']] + ([p['udpecho']] if self.meta['dut'] == 'udpecho' else []):
            if not os.access(exe, os.X_OK):
                raise BenchError('%s is missing or not executable: run the kbypass.xdp.forwarder '
                                 'role first (it builds kbypass-gen and kbypass-udpecho)' % exe)
        self.check_program('DUT', p['dut_netns'], p['dut_ifname'], p['dut_pin_dir'],
                           EXPECTED_PROGRAM.get(p['path'], 'xdp_steer'))
        if self.meta['replies']:
            self.check_program('generator', p['gen_netns'], p['gen_ifname'], p['gen_pin_dir'],
                               'xdp_steer')
            if p['sport'] not in _bpf.read_steer_ports(p['gen_pin_dir']):
                raise BenchError('the generator side steers no UDP port %d into its socket (%s '
                                 'steer_ports): attach xdp_steer there with ports [%d]'
                                 % (p['sport'], p['gen_pin_dir'], p['sport']))
        if p['path'] != 'xdp-tx' and p['dport'] not in _bpf.read_steer_ports(p['dut_pin_dir']) \
                and self.meta['dut'] == 'forwarder':
            raise BenchError('the DUT does not steer UDP port %d (%s steer_ports)'
                             % (p['dport'], p['dut_pin_dir']))
        if self.meta['dut'] == 'forwarder':
            stats = read_json(p['forwarder_stats_file']) if p['forwarder_stats_file'] else None
            if not stats or proc_cpu_s(stats.get('pid')) is None:
                raise BenchError('no running forwarder behind %s: start the instance with '
                                 'kbypass.xdp.afxdp_forwarder first' % p['forwarder_stats_file'])
            if stats.get('mode') != self.meta['mode']:
                raise BenchError('the forwarder runs in %s mode; path %s needs %s'
                                 % (stats.get('mode'), p['path'], self.meta['mode']))
        if self.m.check_mode:
            return
        rc, out, err = _netns.run(self.m, ['ping', '-n', '-q', '-c', '2', '-i', '0.2', '-W', '1',
                                           p['dst']], p['gen_netns'])
        if rc != 0:
            raise BenchError('the generator (%s%s) cannot reach the DUT at %s: no ICMP echo '
                             'reply. Check addresses, routes and links before measuring'
                             % (p['gen_ifname'], ' in netns %s' % p['gen_netns']
                                if p['gen_netns'] else '', p['dst']))

    def start_udpecho(self, seconds):
        p = self.p
        argv = [p['udpecho'], '--netns', p['dut_netns'], '--port', str(p['dport']),
                '--mode', 'echo', '--duration', str(int(seconds) + 1)] if p['dut_netns'] else \
            [p['udpecho'], '--port', str(p['dport']), '--mode', 'echo',
             '--duration', str(int(seconds) + 1)]
        if p['dut_cpu'] is not None:
            argv += ['--cpu', str(p['dut_cpu'])]
        self.udpecho = self.children.spawn(argv)
        port = ':%04X ' % p['dport']
        deadline = time.time() + 5
        while time.time() < deadline:
            if self.udpecho.poll() is not None:
                raise BenchError('kbypass-udpecho exited: %s' % self.children.reap(self.udpecho, 1)[1].strip())
            rows = _netns.proc_net(p['dut_netns'], 'udp6') + _netns.proc_net(p['dut_netns'], 'udp')
            if any(port in row for row in rows):
                return
            time.sleep(0.05)
        raise BenchError('kbypass-udpecho did not bind UDP port %d in 5 s' % p['dport'])

    def dut_pid(self):
        if self.meta['dut'] == 'udpecho':
            return self.udpecho.pid if self.udpecho else None
        if self.meta['dut'] == 'forwarder':
            return (read_json(self.p['forwarder_stats_file']) or {}).get('pid')
        return None

    def forwarder_rx(self, since):
        """The forwarder's RX counter from a stats file written after ``since`` (bounded)."""
        end = time.time() + 2.0
        while True:
            stats = read_json(self.p['forwarder_stats_file']) or {}
            if stats.get('timestamp', 0) > since or time.time() > end:
                return int(stats.get('rx_packets') or 0)
            time.sleep(0.02)

    # --- one trial -----------------------------------------------------------------------
    def trial(self, rate, seconds, size):
        p = self.p
        count = _bench.trial_count(rate, seconds, p['max_packets'])
        argv = [p['generator'], '--iface', p['gen_ifname'], '--dst', p['dst'],
                '--dport', str(p['dport']), '--sport', str(p['sport']), '--engine', 'afxdp',
                '--size', str(size), '--count', str(count), '--duration', '%.3f' % seconds,
                '--rate', str(int(rate)), '--json']
        if p['gen_netns']:
            argv += ['--netns', p['gen_netns']]
        if p['gen_cpu'] is not None:
            argv += ['--cpu', str(p['gen_cpu'])]
        if self.meta['replies']:
            argv += ['--replies', '--reply-timeout', str(p['reply_timeout_ms']),
                     '--pin-dir', p['gen_pin_dir']]
        pid = self.dut_pid()
        if pid:
            argv += ['--cpu-of', str(pid)]
        rx0 = self.forwarder_rx(time.time()) if self.meta['mode'] == 'rxdrop' else None
        times0 = cpu_times()
        proc = self.children.spawn(argv)
        out, err = self.children.reap(proc, seconds + p['reply_timeout_ms'] / 1000.0 + 15)
        times1 = cpu_times()
        rx1 = self.forwarder_rx(time.time()) if rx0 is not None else None
        try:
            gen = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise BenchError('kbypass-gen failed (rc=%s): %s'
                             % (proc.returncode, (err or out).strip()[-400:]))
        rtt = gen.get('rtt_us') or {}
        if rtt and 'p99.9' not in rtt and 'p999' not in rtt:
            self.p999_from_max = True
        return _bench.trial_figures(gen, seconds, self.meta['replies'],
                                    dut_rx=_delta(rx1, rx0) if rx0 is not None else None,
                                    softirq_s=(times1['softirq'] - times0['softirq']) / float(CLK_TCK),
                                    steal=_bench.steal_pct(times1, times0))

    # --- one frame size ------------------------------------------------------------------
    def measure(self, size, prof):
        started = time.time()
        best = self.trial(self.p['max_rate'], prof['max_trial_s'], size)
        search = _bench.repeated_search([_bench.zero_loss_search(
            lambda rate: self.trial(rate, prof['trial_s'], size)['loss'],
            high=best['offered_pps'], max_trials=prof['search_trials'],
            resolution=prof['search_resolution']) for dummy in range(prof['search_repetitions'])])
        # flat out, a path can deliver less than it carries without loss (overload
        # collapse): its maximum is the better of the two
        peak = max(best['delivered_pps'], search['rate'])
        points = []
        for pct, target in _bench.sweep_targets(peak, prof['percents']):
            if time.time() > self.deadline:
                self.notes.append('%s %d B: sweep stopped at %d %% (max_seconds %.0f reached)'
                                  % (self.p['path'], size, pct, self.p['max_seconds']))
                break
            trials = [self.trial(target, prof['trial_s'], size)
                      for dummy in range(prof['repetitions'])]
            points.append(_bench.summarize_point(target, pct, trials))
        fixed = [_bench.summarize_point(rate, None, [self.trial(rate, prof['trial_s'], size)
                                                     for dummy in range(prof['repetitions'])])
                 for rate in prof['rates'] if time.time() < self.deadline]
        return {'path': self.p['path'], 'size': size,
                'max': {'delivered_pps': peak, 'flat_out': {
                    'offered_pps': best['offered_pps'], 'delivered_pps': best['delivered_pps'],
                    'loss': best['loss']}},
                'zero_loss': search, 'sweep': points, 'fixed': fixed, 'knee': _bench.knee(points),
                'elapsed_s': round(time.time() - started, 2)}

    def run(self, prof):
        results = []
        if self.meta['dut'] == 'udpecho':
            self.start_udpecho(self.p['max_seconds'])
        for size in self.p['sizes']:
            results.append(self.measure(size, prof))
        return results


def environment(p):
    return {'kernel': os.uname()[2], 'cpus': len(online_cpus()), 'gen_cpu': p['gen_cpu'],
            'dut_cpu': p['dut_cpu'], 'loadavg': round(os.getloadavg()[0], 2)}


def validate(p, cpus):
    errors = _bench.validate(p, cpus)
    errors += name_errors(p, ('gen_ifname', 'dut_ifname'), ('gen_netns', 'dut_netns'))
    for key in ('dport', 'sport'):
        if not 0 < p[key] < 65536:
            errors.append('%s %s is not a UDP port (1-65535)' % (key, p[key]))
    if _bench.PATHS.get(p['path'], {}).get('dut') == 'forwarder' and not p['forwarder_stats_file']:
        errors.append('path %s needs forwarder_stats_file' % p['path'])
    if not 0 <= p['reply_timeout_ms'] <= 10000:
        errors.append('reply_timeout_ms %s out of range: 0-10000' % p['reply_timeout_ms'])
    return errors


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='str', required=True, choices=list(_bench.PATH_ORDER)),
            sizes=dict(type='list', elements='int', default=list(_bench.FRAME_SIZES)),
            profile=dict(type='str', choices=list(_bench.PROFILES), default='quick'),
            trial_s=dict(type='float'),
            max_trial_s=dict(type='float'),
            repetitions=dict(type='int'),
            search_trials=dict(type='int'),
            percents=dict(type='list', elements='int'),
            search_repetitions=dict(type='int'),
            rates=dict(type='list', elements='int'),
            max_rate=dict(type='int', default=0),
            max_packets=dict(type='int', default=5000000),
            max_seconds=dict(type='float', default=240),
            gen_netns=dict(type='str'),
            gen_ifname=dict(type='str', required=True),
            gen_pin_dir=dict(type='path'),
            gen_cpu=dict(type='int'),
            dst=dict(type='str', required=True),
            dport=dict(type='int', default=4242),
            sport=dict(type='int', default=40000),
            dut_netns=dict(type='str'),
            dut_ifname=dict(type='str', required=True),
            dut_pin_dir=dict(type='path'),
            dut_cpu=dict(type='int'),
            forwarder_stats_file=dict(type='path'),
            generator=dict(type='path', default='/usr/local/bin/kbypass-gen'),
            udpecho=dict(type='path', default='/usr/local/bin/kbypass-udpecho'),
            reply_timeout_ms=dict(type='int', default=200),
            validate_only=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    p = dict(module.params)
    errors = validate(p, online_cpus())
    if errors:
        module.fail_json(msg='invalid arguments: ' + '; '.join(errors), errors=errors)
    if p['validate_only']:
        module.exit_json(changed=False, summary=[], notes=[], environment=environment(p))
    require_pyroute2(module)
    p['gen_pin_dir'] = p['gen_pin_dir'] or default_pin_dir(p['gen_ifname'], p['gen_netns'])
    p['dut_pin_dir'] = p['dut_pin_dir'] or default_pin_dir(p['dut_ifname'], p['dut_netns'])
    prof = _bench.profile(p['profile'], dict((k, p[k]) for k in (
        'trial_s', 'max_trial_s', 'repetitions', 'search_trials', 'percents',
        'search_repetitions', 'rates')))
    result = {'changed': False, 'environment': environment(p), 'summary': [], 'notes': [],
              'profile': dict(prof, name=p['profile'])}
    bench = Bench(module, p)
    old = [signal.signal(s, _interrupt) for s in (signal.SIGTERM, signal.SIGINT)]
    try:
        bench.preflight()
        if module.check_mode:
            module.exit_json(**result)
        result['results'] = bench.run(prof)
    except BenchError as exc:
        module.fail_json(msg=str(exc), **result)
    except Interrupted as exc:
        module.fail_json(msg='interrupted by signal %s: the generator and the kernel echo were '
                             'stopped' % exc.args[0], **result)
    finally:
        bench.children.stop()
        for sig, handler in zip((signal.SIGTERM, signal.SIGINT), old):
            signal.signal(sig, handler)
    if bench.p999_from_max:
        bench.notes.append('RTT p99.9: this kbypass-gen reports no p99.9; the p99.9 column '
                           'shows the maximum RTT, an upper bound')
    result['notes'] = bench.notes
    result['summary'] = _bench.summary_lines(result['results'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
