# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logic of the benchmark: paths, profiles, validation, the RFC 2544 zero-loss search,
the load sweep, aggregation of repetitions, and the reports; plus ``Children``, the
bounded child processes (generator, kernel echo) of one measurement.

Nothing here but ``Children`` touches the system. ``kbypass.xdp.traffic_bench`` runs the trials on the
target and calls these functions to decide what to run next; ``kbypass.xdp.bench_report``
renders the reports on the controller. Unit tests call them directly.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess

# What each path is: who answers on the device under test, and how delivery is counted.
#   replies: the generator counts echoed replies (delivered = replies received);
#   otherwise the forwarder's RX counter is what was delivered (rxdrop).
PATHS = {
    'afxdp-echo': {'dut': 'forwarder', 'mode': 'echo', 'replies': True,
                   'title': 'AF_XDP forwarder, echo'},
    # the same forwarder on a dedicated core (bounded spin or busy polling, see the role)
    'afxdp-echo-busy': {'dut': 'forwarder', 'mode': 'echo', 'replies': True,
                        'title': 'AF_XDP forwarder, echo, dedicated core'},
    'afxdp-rxdrop': {'dut': 'forwarder', 'mode': 'rxdrop', 'replies': False,
                     'title': 'AF_XDP forwarder, rxdrop'},
    'kernel-echo': {'dut': 'udpecho', 'mode': 'echo', 'replies': True,
                    'title': 'kernel UDP echo (kbypass-udpecho)'},
    'xdp-tx': {'dut': 'reflector', 'mode': 'echo', 'replies': True,
               'title': 'in-kernel XDP_TX reflector'},
}
PATH_ORDER = ('afxdp-echo', 'afxdp-echo-busy', 'afxdp-rxdrop', 'kernel-echo', 'xdp-tx')
# the upper bound of reflection on the box: every other path's ratio is taken to it
REFERENCE_PATH = 'xdp-tx'
SWEEP_PERCENTS = (10, 25, 50, 75, 90, 100, 110)
FRAME_SIZES = (64, 512, 1500)
MIN_SIZE, MAX_SIZE = 64, 9014       # kbypass-gen: Ethernet frame without FCS, up to MTU 9000
MAX_RATE = 50000000                 # pps; beyond any veth or 100G port
MAX_TRIAL_S = 30.0
MAX_TRIAL_PACKETS = 50000000        # kbypass-gen's own hard cap

# quick: the whole default run (5 paths x 3 sizes) in a few minutes on 2 cores.
# search_repetitions: zero-loss searches per path and size (their min/median/max);
# rates: fixed offered rates (pps) measured like sweep points, whatever the path's maximum.
PROFILES = {
    'quick': {'trial_s': 0.3, 'max_trial_s': 0.6, 'repetitions': 3, 'search_trials': 6,
              'search_resolution': 0.05, 'search_repetitions': 1,
              'percents': list(SWEEP_PERCENTS), 'rates': []},
    'full': {'trial_s': 2.0, 'max_trial_s': 3.0, 'repetitions': 5, 'search_trials': 10,
             'search_resolution': 0.02, 'search_repetitions': 3,
             'percents': list(SWEEP_PERCENTS), 'rates': []},
}

# A point "loses" when more than this share of its packets went missing (median of the
# repetitions); the zero-loss search itself uses exactly zero, as RFC 2544 does.
KNEE_LOSS = 0.001
# a sweep step whose median offered rate misses its target by more than this share of the
# path's maximum measured the generator, not the path: the report marks it instead of
# reading a knee into it (relative to the maximum, not the step: a few hundred pps of
# jitter at a low step say nothing about the path)
GEN_SHORT = 0.05
# hypervisor steal (% of all CPU time in a trial) from which the report warns, per trial as
# the run's median or in one trial (a quiet run often has one trial with a few per cent): a
# vCPU that is not running cannot poll or reply, so each steal adds its length to an RTT
STEAL_WARN = 2.0
STEAL_WARN_TRIAL = 10.0


# --------------------------------------------------------------------------------------
# input
# --------------------------------------------------------------------------------------
def validate(p, online_cpus=None):
    """Human messages for bad input (empty when all is well). ``online_cpus``: the
    target's online CPUs, when known (then the pinned CPUs must be among them)."""
    errors = []
    bad = [s for s in p.get('sizes') or [] if not MIN_SIZE <= s <= MAX_SIZE]
    if not p.get('sizes'):
        errors.append('sizes: give at least one frame size')
    elif bad:
        errors.append('sizes %s out of range: frames are %d-%d bytes (Ethernet, without FCS)'
                      % (bad, MIN_SIZE, MAX_SIZE))
    if p.get('path') not in PATHS:
        errors.append('path %r unknown; choose from %s' % (p.get('path'), ', '.join(PATH_ORDER)))
    max_rate = p.get('max_rate') or 0
    if not 0 <= max_rate <= MAX_RATE:
        errors.append('max_rate %s out of range: 0 (no cap) to %d pps' % (max_rate, MAX_RATE))
    for key in ('trial_s', 'max_trial_s'):
        value = p.get(key)
        if value is not None and not 0.05 <= value <= MAX_TRIAL_S:
            errors.append('%s %s out of range: 0.05-%.0f seconds' % (key, value, MAX_TRIAL_S))
    for key in ('repetitions', 'search_repetitions'):
        reps = p.get(key)
        if reps is not None and not 1 <= reps <= 20:
            errors.append('%s %s out of range: 1-20' % (key, reps))
    bad = [x for x in p.get('rates') or [] if not 0 < x <= MAX_RATE]
    if bad:
        errors.append('rates %s out of range: each 1-%d pps' % (bad, MAX_RATE))
    bad = [x for x in p.get('percents') or [] if not 0 < x <= 200]
    if bad:
        errors.append('percents %s out of range: each above 0 and at most 200' % bad)
    packets = p.get('max_packets')
    if packets is not None and not 1000 <= packets <= MAX_TRIAL_PACKETS:
        errors.append('max_packets %s out of range: 1000-%d' % (packets, MAX_TRIAL_PACKETS))
    if online_cpus is not None:
        for key in ('gen_cpu', 'dut_cpu'):
            cpu = p.get(key)
            if cpu is not None and cpu not in online_cpus:
                errors.append('%s %s does not exist on this host (online CPUs: %s)'
                              % (key, cpu, ','.join(str(c) for c in online_cpus)))
    return errors


def profile(name, overrides=None):
    """The profile's settings with any non-None overrides applied."""
    out = dict(PROFILES[name])
    for key, value in (overrides or {}).items():
        if value is not None:
            out[key] = value
    return out


def trial_count(offered_pps, seconds, max_packets):
    """Packets one trial may send: a little above rate x time, never above the cap.
    ``offered_pps`` 0 means as fast as the generator goes."""
    if not offered_pps:
        return max_packets
    return int(min(max_packets, max(1000, offered_pps * seconds * 1.1 + 100)))


# --------------------------------------------------------------------------------------
# one trial
# --------------------------------------------------------------------------------------
def parse_proc_stat(line):
    """Softirq, steal and all CPU time (in clock ticks) from /proc/stat's ``cpu`` line."""
    fields = [int(x) for x in line.split()[1:9]]
    fields += [0] * (8 - len(fields))   # steal is absent on very old kernels
    return {'softirq': fields[6], 'steal': fields[7], 'total': sum(fields)}


def steal_pct(after, before):
    """Share (%) of all CPUs' time the hypervisor gave to other guests between two
    parse_proc_stat readings (None when no time passed)."""
    total = after['total'] - before['total']
    return 100.0 * max(0, after['steal'] - before['steal']) / total if total > 0 else None


def trial_figures(gen, seconds, replies, dut_rx=None, softirq_s=None, steal=None):
    """Figures of one trial from kbypass-gen's JSON and the DUT-side deltas.

    Rates are per requested second of sending (the generator's own duration also
    counts its wait for late replies). Delivered = replies received for echo paths,
    the DUT's RX delta for sink paths. The DUT's CPU is what kbypass-gen --cpu-of read
    while it sent (``cpu_of``): neither its set-up nor the reply wait, which a busy DUT
    spends spinning, is counted.
    """
    sent = int(gen.get('sent') or 0)
    delivered = int(gen.get('received') or 0) if replies else int(dut_rx or 0)
    delivered = min(delivered, sent)
    rtt = gen.get('rtt_us') or {}
    mpkt = delivered / 1e6
    cpu_of = gen.get('cpu_of') or {}
    dut_cpu_s = cpu_of.get('cpu_s')
    window = cpu_of.get('window_s') or seconds
    cpu = (dut_cpu_s or 0.0) + (softirq_s or 0.0)
    return {
        'sent': sent,
        'delivered': delivered,
        'offered_pps': sent / seconds,
        'delivered_pps': delivered / seconds,
        'loss': (sent - delivered) / sent if sent else 0.0,
        'rtt_p50_us': rtt.get('p50'),
        'rtt_p99_us': rtt.get('p99'),
        # kbypass-gen reports p99.9 as 'p99.9' when it has it; the maximum bounds it
        'rtt_p999_us': rtt.get('p99.9', rtt.get('p999', rtt.get('max'))),
        'dut_cpu_s': dut_cpu_s,
        # share of one core the DUT process used while the trial sent
        'dut_cpu_pct': 100.0 * dut_cpu_s / window if dut_cpu_s is not None else None,
        'softirq_s': softirq_s,
        'cpu_s_per_mpkt': cpu / mpkt if mpkt else None,
        'dut_cpu_s_per_mpkt': dut_cpu_s / mpkt if mpkt and dut_cpu_s is not None else None,
        'softirq_s_per_mpkt': softirq_s / mpkt if mpkt and softirq_s is not None else None,
        # CPU time the hypervisor took away during the trial (% of all CPUs)
        'steal_pct': steal,
    }


def spread(values):
    """min/median/max of the numbers among ``values`` (None when there are none)."""
    nums = [v for v in values if v is not None]
    if not nums:
        return None
    return {'min': min(nums), 'median': statistics.median(nums), 'max': max(nums)}


POINT_METRICS = ('offered_pps', 'delivered_pps', 'loss', 'rtt_p50_us', 'rtt_p99_us',
                 'rtt_p999_us', 'dut_cpu_s', 'dut_cpu_pct', 'softirq_s', 'cpu_s_per_mpkt', 'dut_cpu_s_per_mpkt',
                 'softirq_s_per_mpkt', 'steal_pct')


def summarize_point(target_pps, percent, trials):
    """One sweep point: every metric as min/median/max over the repetitions."""
    out = {'target_pps': target_pps, 'percent': percent, 'repetitions': len(trials)}
    for metric in POINT_METRICS:
        out[metric] = spread([t.get(metric) for t in trials])
    return out


# --------------------------------------------------------------------------------------
# zero-loss search and sweep
# --------------------------------------------------------------------------------------
def zero_loss_search(trial, high, max_trials, resolution=0.05, low=0.0):
    """RFC 2544 throughput: the highest offered rate at which a trial loses nothing.

    ``trial(rate)`` runs one short trial at ``rate`` pps and returns its loss ratio.
    Tries ``high`` first (no loss there: done), then halves the interval between the
    highest rate without loss and the lowest rate with loss until it is narrower than
    ``resolution`` x ``high`` or ``max_trials`` trials have run.
    Returns ``{'rate', 'trials': [{'rate', 'loss'}], 'converged'}``; ``rate`` is 0 when
    every trial lost packets.
    """
    trials = []
    good, bad = low, None
    rate = high
    while len(trials) < max_trials and rate > 0:
        loss = trial(rate)
        trials.append({'rate': rate, 'loss': loss})
        if loss == 0:
            good = rate
            if bad is None:
                break
        else:
            bad = rate
        if bad is not None and (bad - good) <= resolution * high:
            break
        rate = (good + bad) / 2.0
    converged = bad is None or (bad - good) <= resolution * high
    return {'rate': good, 'trials': trials, 'converged': converged}


def repeated_search(searches):
    """Several zero-loss searches of one path and size as one: ``rate`` is the median
    rate, ``rates`` their min/median/max, ``trials`` every trial in order."""
    rates = [s['rate'] for s in searches]
    return {'rate': statistics.median(rates), 'rates': spread(rates), 'per_search': rates,
            'trials': [t for s in searches for t in s['trials']],
            'converged': all(s['converged'] for s in searches), 'searches': len(searches)}


def ratios(results, reference=REFERENCE_PATH):
    """Each path's figures over the reference path's (the XDP_TX reflector) at the same
    frame size: the zero-loss rate (repetition i over repetition i when both searched
    several times, as min/median/max) and the maximum delivered."""
    refs = dict((r['size'], r) for r in results if r['path'] == reference)
    out = []
    for r in sorted(results, key=result_key):
        ref = refs.get(r['size'])
        if r['path'] == reference or not ref:
            continue
        own = r['zero_loss'].get('per_search') or [r['zero_loss']['rate']]
        base = ref['zero_loss'].get('per_search') or [ref['zero_loss']['rate']]
        pairs = [a / b for a, b in zip(own, base) if b] if len(own) == len(base) else \
            ([r['zero_loss']['rate'] / ref['zero_loss']['rate']] if ref['zero_loss']['rate'] else [])
        peak = ref['max']['delivered_pps']
        out.append({'path': r['path'], 'size': r['size'], 'reference': reference,
                    'zero_loss': spread(pairs),
                    'max': r['max']['delivered_pps'] / peak if peak else None})
    return out


def sweep_targets(max_pps, percents=SWEEP_PERCENTS):
    """Offered rates (pps, at least 1) at each percentage of the path's maximum."""
    return [(pct, max(1, int(round(max_pps * pct / 100.0)))) for pct in percents]


def knee(points, threshold=KNEE_LOSS):
    """The first sweep point (lowest offered load) whose median loss exceeds
    ``threshold``, or None when no point loses."""
    for point in sorted(points, key=lambda p: p['target_pps']):
        loss = (point.get('loss') or {}).get('median')
        if loss is not None and loss > threshold:
            return {'target_pps': point['target_pps'], 'percent': point['percent'],
                    'offered_pps': (point.get('offered_pps') or {}).get('median'),
                    'loss': loss}
    return None


def generator_short(point, short=GEN_SHORT):
    """True when the generator offered clearly less than the step's target."""
    offered = (point.get('offered_pps') or {}).get('median')
    peak = point['target_pps'] * 100.0 / point['percent']
    return offered is not None and point['target_pps'] - offered > short * peak


def first_short(points):
    """The lowest sweep percentage the generator could not offer, or None."""
    return min((p['percent'] for p in points if generator_short(p)), default=None)


def short_note(result):
    """'' or the sweep step from which the generator fell short, for the report's lines."""
    short = first_short(result.get('sweep') or [])
    return '' if short is None else '; the generator fell short from the %d %% step' % short


# --------------------------------------------------------------------------------------
# reports
# --------------------------------------------------------------------------------------
def fmt_pps(value):
    if value is None:
        return '—'
    if value >= 1e6:
        return '%.2f M' % (value / 1e6)
    if value >= 1e3:
        return '%.0f k' % (value / 1e3)
    return '%.0f' % value


def fmt_gbps(pps, size):
    """Frame bits per second (Ethernet without FCS, preamble or gap) in Gbit/s."""
    return '—' if pps is None else '%.2f Gbit/s' % (pps * size * 8 / 1e9)


def _fmt(value, digits=1):
    return '—' if value is None else ('%.' + str(digits) + 'f') % value


def _fmt0(value):
    return _fmt(value, 0)


def _fmt2(value):
    return _fmt(value, 2)


def _med(spread_, digits=1):
    return _fmt((spread_ or {}).get('median'), digits)


def _mmm(spread_, fn=_fmt):
    if not spread_:
        return '—'
    return '%s (%s–%s)' % (fn(spread_['median']), fn(spread_['min']), fn(spread_['max']))


def run_steal(results):
    """Steal over every measured point of a run: the median of the points' medians and
    the worst single trial (None where the figures carry no steal)."""
    points = [pt.get('steal_pct') for r in results for pt in (r.get('sweep') or []) + (r.get('fixed') or [])]
    points = [pt for pt in points if pt]
    if not points:
        return None
    return {'median': statistics.median(pt['median'] for pt in points),
            'max': max(pt['max'] for pt in points)}


def steal_warning(results):
    """A sentence for the reader when the hypervisor took noticeable CPU time, or None."""
    st = run_steal(results)
    if not st or (st['median'] < STEAL_WARN and st['max'] < STEAL_WARN_TRIAL):
        return None
    return ('the hypervisor took CPU time from this machine during the run (%.1f %% of all CPU '
            'time per trial as the median, %.1f %% in the worst trial): a vCPU that is not '
            'running cannot poll or reply, so RTT tails (p99, p99.9), loss and maxima show the '
            'host\'s neighbours as much as the path; compare runs with steal near 0'
            % (st['median'], st['max']))


def result_key(result):
    return (PATH_ORDER.index(result['path']) if result['path'] in PATH_ORDER else 99,
            result['size'])


def summary_lines(results, host=None):
    """One line per path and frame size: max delivered, zero-loss rate, where loss begins."""
    lines = []
    for r in sorted(results, key=result_key):
        k = r.get('knee')
        lines.append('%s%s %dB: max %spps (%s), zero-loss %spps (%s), %s' % (
            host + ': ' if host else '', r['path'], r['size'], fmt_pps(r['max']['delivered_pps']),
            fmt_gbps(r['max']['delivered_pps'], r['size']), fmt_pps(r['zero_loss']['rate']),
            fmt_gbps(r['zero_loss']['rate'], r['size']),
            ('loss from %spps offered (%d%% of max)' % (fmt_pps(k['offered_pps']), k['percent'])
             if k else 'no loss in the sweep') + short_note(r)))
        for pt in r.get('fixed') or []:
            lines.append('%s%s %dB at %spps: loss %s %%, DUT CPU %s %%, RTT p50 / p99 %s / %s us' % (
                host + ': ' if host else '', r['path'], r['size'], fmt_pps(pt['target_pps']),
                _mmm(_scaled(pt['loss'], 100.0), lambda v: _fmt(v, 2)), _mmm(pt.get('dut_cpu_pct'), _fmt0),
                _mmm(pt['rtt_p50_us'], _fmt0), _mmm(pt['rtt_p99_us'], _fmt0)))
    for q in ratios(results):
        lines.append('%s%s %dB / %s: zero-loss x%s, max x%s' % (
            host + ': ' if host else '', q['path'], q['size'], q['reference'],
            _mmm(q['zero_loss'], _fmt2), _fmt(q['max'], 2)))
    warning = steal_warning(results)
    if warning:
        lines.append('%swarning: %s' % (host + ': ' if host else '', warning))
    return lines


def render_markdown(host, run, plots=None):
    """The per-host Markdown report; ``plots`` maps plot kinds to file names."""
    results = sorted(run['results'], key=result_key)
    out = ['# kbypass.xdp benchmark — %s' % host, '']
    env = run.get('environment') or {}
    out.append('Run at %s, profile **%s**, topology **%s**, kernel %s, %s CPUs (generator on '
               'CPU %s, device under test on CPU %s), load average before %s. Every sweep '
               'point is %s repetitions of %.1f s; figures are median (min–max).' % (
                   run.get('timestamp', '?'), run.get('profile', '?'), run.get('topology', '?'),
                   env.get('kernel', '?'), env.get('cpus', '?'), env.get('gen_cpu', '?'),
                   env.get('dut_cpu', '?'), env.get('loadavg', '?'),
                   run.get('repetitions', '?'), run.get('trial_s') or 0))
    steal = run_steal(results)
    if steal:
        out[-1] += (' CPU time stolen by the hypervisor: %.1f %% per trial (median), %.1f %% in '
                    'the worst trial.' % (steal['median'], steal['max']))
    warning = steal_warning(results)
    if warning:
        out += ['', '> **Warning:** %s.' % (warning[0].upper() + warning[1:])]
    out.append('')
    out.append('## Summary')
    out.append('')
    out.append('| path | frame | max delivered | zero-loss (RFC 2544) | loss begins at | '
               'RTT p50 / p99 / p99.9 at 50 % (µs) | CPU s per Mpkt at 50 % |')
    out.append('|---|---|---|---|---|---|---|')
    for r in results:
        k = r.get('knee')
        half = _point_at(r, 50) or {}
        out.append('| %s | %d B | %spps (%s) | %spps (%s)%s | %s | %s / %s / %s | %s |' % (
            r['path'], r['size'], fmt_pps(r['max']['delivered_pps']),
            fmt_gbps(r['max']['delivered_pps'], r['size']), fmt_pps(r['zero_loss']['rate']),
            fmt_gbps(r['zero_loss']['rate'], r['size']), '' if r['zero_loss']['converged'] else ' (not converged)',
            ('%spps (%d %%)' % (fmt_pps(k['offered_pps']), k['percent']) if k
             else 'no loss up to %s' % ('the generator\'s limit' if first_short(r['sweep']) is not None
                                        else '110 %')) + short_note(r),
            _med(half.get('rtt_p50_us')), _med(half.get('rtt_p99_us')),
            _med(half.get('rtt_p999_us')), _med(half.get('cpu_s_per_mpkt'), 2)))
    out.append('')
    out.extend(_fixed_and_ratio_tables(results))
    for kind, title in (('delivered', 'Delivered vs offered load'), ('loss', 'Loss vs offered load'),
                        ('rtt', 'Round-trip time vs offered load'),
                        ('cpu', 'CPU seconds per million packets')):
        if plots and plots.get(kind):
            out.append('## %s' % title)
            out.append('')
            out.append('![%s](%s)' % (title, plots[kind]))
            out.append('')
    out.append('## Sweep points')
    out.append('')
    for r in results:
        out.append('### %s, %d-byte frames — %s' % (r['path'], r['size'],
                                                    PATHS.get(r['path'], {}).get('title', '')))
        out.append('')
        flat = r['max'].get('flat_out') or {}
        steps = ', '.join('%s→%s' % (fmt_pps(t['rate']),
                                     '%.2f%%' % (100 * t['loss']) if t['loss'] else 'ok')
                          for t in r['zero_loss']['trials']) or 'no trial'
        out.append('Maximum %spps (the sweep\'s 100 %%). Flat out: %spps offered, %spps '
                   'delivered. Zero-loss search: %s.'
                   % (fmt_pps(r['max']['delivered_pps']), fmt_pps(flat.get('offered_pps')),
                      fmt_pps(flat.get('delivered_pps')), steps))
        out.append('')
        out.append('| % of max | offered pps | delivered pps | loss % | RTT p50 µs | RTT p99 µs '
                   '| RTT p99.9 µs | DUT CPU % | softirq s | steal % |')
        out.append('|---|---|---|---|---|---|---|---|---|---|')
        for pt in r['sweep']:
            out.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
                '%d *' % pt['percent'] if generator_short(pt) else pt['percent'],
                _mmm(pt['offered_pps'], fmt_pps), _mmm(pt['delivered_pps'], fmt_pps),
                _mmm(_scaled(pt['loss'], 100.0), lambda v: _fmt(v, 2)),
                _mmm(pt['rtt_p50_us']), _mmm(pt['rtt_p99_us']), _mmm(pt['rtt_p999_us']),
                _mmm(pt.get('dut_cpu_pct'), _fmt0),
                _mmm(pt['softirq_s'], lambda v: _fmt(v, 3)), _mmm(pt.get('steal_pct'))))
        out.append('')
        if first_short(r['sweep']) is not None:
            out.append('\\* the generator fell short of this step\'s target by more than %d %% '
                       'of the path\'s maximum: the step measures the generator, not the path.'
                       % round(100 * GEN_SHORT))
            out.append('')
    notes = run.get('notes') or []
    if notes:
        out.append('## Notes')
        out.append('')
        out.extend('- %s' % n for n in notes)
        out.append('')
    return '\n'.join(out)


def _fixed_and_ratio_tables(results):
    """Markdown lines: the fixed-rate points and the ratios to the reflector (none when
    the run has neither)."""
    out = []
    fixed = [(r, pt) for r in results for pt in r.get('fixed') or []]
    if fixed:
        out += ['## At fixed offered rates', '',
                '| path | frame | offered | loss % | DUT CPU % of a core | RTT p50 µs | RTT p99 µs '
                '| RTT p99.9 µs |', '|---|---|---|---|---|---|---|---|']
        for r, pt in fixed:
            out.append('| %s | %d B | %spps | %s | %s | %s | %s | %s |' % (
                r['path'], r['size'], fmt_pps(pt['target_pps']),
                _mmm(_scaled(pt['loss'], 100.0), _fmt2), _mmm(pt.get('dut_cpu_pct'), _fmt0),
                _mmm(pt['rtt_p50_us'], _fmt0), _mmm(pt['rtt_p99_us'], _fmt0),
                _mmm(pt['rtt_p999_us'], _fmt0)))
        out.append('')
    rows = ratios(results)
    if rows:
        out += ['## Against the in-kernel XDP_TX reflector', '',
                'Ratio of each path to `%s` at the same frame size: the zero-loss rate (per '
                'search repetition: median (min–max)) and the maximum delivered.' % REFERENCE_PATH,
                '', '| path | frame | zero-loss ratio | max ratio |', '|---|---|---|---|']
        for q in rows:
            out.append('| %s | %d B | %s | %s |' % (q['path'], q['size'],
                                                    _mmm(q['zero_loss'], _fmt2), _fmt(q['max'], 2)))
        out.append('')
    return out


def _scaled(spread_, factor):
    if not spread_:
        return None
    return dict((k, v * factor) for k, v in spread_.items())


def _point_at(result, percent):
    for pt in result.get('sweep') or []:
        if pt['percent'] == percent:
            return pt
    return None


def render_fleet(hosts):
    """The inventory's tables: first what each host is (hosts differ in CPUs, kernel, load,
    and the bench may pin other CPUs per host), then one row per host and path, columns per
    frame size. ``hosts`` maps host names to their runs (the per-host JSON).
    """
    sizes = sorted({r['size'] for run in hosts.values() for r in run['results']})
    out = ['# kbypass.xdp benchmark — fleet', '',
           'Each host has its own report (plots, sweep points) beside this file.', '',
           '| host | run at | profile | topology | kernel | CPUs | generator / DUT CPU | load before '
           '| steal % (median / worst trial) |',
           '|---|---|---|---|---|---|---|---|---|']
    for host in sorted(hosts):
        run, env = hosts[host], hosts[host].get('environment') or {}
        steal = run_steal(run['results'])
        out.append('| %s | %s | %s | %s | %s | %s | %s / %s | %s | %s |' % (
            host, run.get('timestamp', '?'), run.get('profile', '?'), run.get('topology', '?'),
            env.get('kernel', '?'), env.get('cpus', '?'), env.get('gen_cpu', '?'),
            env.get('dut_cpu', '?'), env.get('loadavg', '?'),
            '%.1f / %.1f' % (steal['median'], steal['max']) if steal else '—'))
    out += ['', 'Zero-loss throughput (RFC 2544) / maximum delivered per frame size; in brackets '
            'the CPU seconds per million packets at 50 % of the maximum.', '']
    out.append('| host | path | ' + ' | '.join('%d B zero-loss / max' % s for s in sizes) + ' |')
    out.append('|---|---|' + '---|' * len(sizes))
    for host in sorted(hosts):
        by = dict(((r['path'], r['size']), r) for r in hosts[host]['results'])
        for path in PATH_ORDER:
            if not any(key[0] == path for key in by):
                continue
            cells = []
            for size in sizes:
                r = by.get((path, size))
                cells.append('%spps / %spps (%s)' % (
                    fmt_pps(r['zero_loss']['rate']), fmt_pps(r['max']['delivered_pps']),
                    _med((_point_at(r, 50) or {}).get('cpu_s_per_mpkt'), 2)) if r else '—')
            out.append('| %s | %s | %s |' % (host, path, ' | '.join(cells)))
    out.append('')
    return '\n'.join(out)


def render_json(obj):
    return json.dumps(obj, indent=2, sort_keys=True) + '\n'


# --------------------------------------------------------------------------------------
# child processes
# --------------------------------------------------------------------------------------
class Children(object):
    """The generator and kernel echo a measurement runs, each with a bounded wait;
    ``stop()`` ends whatever still runs (also when the module is interrupted).
    Background processes need Popen: run_command waits for its command to finish."""

    def __init__(self):
        self.procs = []

    def spawn(self, argv):
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True)
        self.procs.append(proc)
        return proc

    def reap(self, proc, timeout):
        """(stdout, stderr) of ``proc``, killed when it outlives ``timeout`` seconds."""
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        self.procs.remove(proc)
        return out, err

    def stop(self):
        for proc in list(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            self.reap(proc, 5)
