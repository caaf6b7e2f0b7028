#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: bench_report
short_description: Write the benchmark report of one host, or the fleet table, on the controller
version_added: "0.2.0"
description:
  - "O(scope=host): writes C(bench-<host>.md) and C(bench-<host>.json) from the results of
    M(kbypass.xdp.traffic_bench) and, when matplotlib is importable, four plots:
    C(bench-<host>-delivered.png) (delivered vs offered load with the ideal line),
    C(bench-<host>-loss.png), C(bench-<host>-rtt.png) (RTT p50/p99/p99.9 vs offered load) and
    C(bench-<host>-cpu.png) (CPU seconds per million packets per path)."
  - "O(scope=fleet): writes C(bench-fleet.md) (what each host is: kernel, CPUs, the CPUs the
    bench used, load; then one table comparing every host's zero-loss and maximum rates and CPU
    cost side by side) and C(bench-fleet.json) (every host's run), from the per-host JSON files
    in O(report_dir)."
  - "Meant to run on the controller (C(delegate_to: localhost))."
author:
  - kbypass.xdp developers (@kbypass)
attributes:
  check_mode:
    support: full
    description: The files are rendered in memory and compared with what is on disk; nothing is written.
  diff_mode:
    support: none
    description: Reports are run artefacts; no diff is returned.
options:
  scope:
    description: V(host) writes one host's report, V(fleet) the table of all hosts in O(hosts).
    type: str
    choices: [host, fleet]
    default: host
  host:
    description: Host name (used in file names). Required for O(scope=host).
    type: str
  run:
    description: "The run of one host: C(results) (every traffic_bench result entry), C(profile),
      C(topology), C(timestamp), C(environment), C(notes). Required for O(scope=host)."
    type: dict
  hosts:
    description: Hosts whose C(bench-<host>.json) go into the fleet table (O(scope=fleet)).
    type: list
    elements: str
  report_dir:
    description: Directory for the report files; created if missing.
    type: path
    required: true
  plot:
    description: Render the PNG plots (skipped with a warning when matplotlib is missing).
    type: bool
    default: true
'''

EXAMPLES = r'''
- name: Write this host's report on the controller
  kbypass.xdp.bench_report:
    host: "{{ inventory_hostname }}"
    run:
      results: "{{ bench_measured.results | map(attribute='results') | flatten }}"
      profile: quick
    report_dir: reports
  delegate_to: localhost

- name: Fleet table over every host of the play
  kbypass.xdp.bench_report:
    scope: fleet
    hosts: "{{ ansible_play_hosts_all }}"
    report_dir: reports
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
files:
  description: Paths of the files of this report (markdown, json and the plots rendered).
  returned: always
  type: dict
summary:
  description: One line per host, path and frame size.
  returned: always
  type: list
  elements: str
'''

import io
import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kbypass.xdp.plugins.module_utils import _bench
from ansible_collections.kbypass.xdp.plugins.module_utils._common import write_report_files

try:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    HAS_MATPLOTLIB = True
except ImportError:
    HAS_MATPLOTLIB = False

COLORS = {'afxdp-echo': '#1f77b4', 'afxdp-echo-busy': '#17becf', 'afxdp-rxdrop': '#2ca02c',
          'kernel-echo': '#d62728', 'xdp-tx': '#9467bd'}


# ---------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------
def _by_size(results):
    sizes = sorted({r['size'] for r in results})
    return sizes, dict((s, sorted([r for r in results if r['size'] == s], key=_bench.result_key))
                       for s in sizes)


def _series(result, metric, scale=1.0):
    """x = median offered kpps, y = median/min/max of ``metric`` (scaled) per sweep point."""
    xs, ys, lo, hi = [], [], [], []
    # in order of offered load: a noisy point must not draw the line backwards
    for pt in sorted(result['sweep'], key=lambda p: (p.get('offered_pps') or {}).get('median', 0)):
        spread = pt.get(metric)
        if not spread or not pt.get('offered_pps'):
            continue
        xs.append(pt['offered_pps']['median'] / 1e3)
        ys.append(spread['median'] * scale)
        lo.append(spread['median'] * scale - spread['min'] * scale)
        hi.append(spread['max'] * scale - spread['median'] * scale)
    return xs, ys, [lo, hi]


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    plt.close(fig)
    return buf.getvalue()


def _grid(n, title, host):
    fig, axes = plt.subplots(1, n, figsize=(max(7.0, 5.2 * n), 4.8), dpi=100, squeeze=False)
    fig.suptitle('%s\nhost %s' % (title, host), fontsize=12)
    return fig, axes[0]


def plot_delivered(host, results):
    sizes, by = _by_size(results)
    fig, axes = _grid(len(sizes), 'Delivered vs offered load (median, bars: min–max)', host)
    for ax, size in zip(axes, sizes):
        top = 0.0
        for r in by[size]:
            xs, ys, err = _series(r, 'delivered_pps', 1e-3)
            ax.errorbar(xs, ys, yerr=err, marker='o', ms=4, capsize=3,
                        color=COLORS.get(r['path']), label=r['path'])
            zl = r['zero_loss']['rate'] / 1e3
            ax.plot([zl], [zl], marker='*', ms=13, color=COLORS.get(r['path']),
                    markeredgecolor='black', linestyle='none')
            top = max([top, zl] + xs + ys)
        ax.plot([0, top * 1.05], [0, top * 1.05], linestyle='--', color='grey', label='ideal (no loss)')
        ax.set_title('%d-byte frames' % size)
        ax.set_xlabel('offered load (kpps)')
        ax.set_ylabel('delivered (kpps)')
        ax.set_xlim(0, top * 1.05 or 1)
        ax.set_ylim(0, top * 1.05 or 1)
        ax.grid(True, alpha=0.3)
    axes[0].plot([], [], marker='*', ms=11, color='white', markeredgecolor='black',
                 linestyle='none', label='zero-loss rate (RFC 2544)')
    axes[0].legend(loc='upper left', fontsize=8)
    fig.tight_layout()
    return _png(fig)


def plot_loss(host, results):
    sizes, by = _by_size(results)
    fig, axes = _grid(len(sizes), 'Loss vs offered load (median, bars: min–max)', host)
    for ax, size in zip(axes, sizes):
        for r in by[size]:
            xs, ys, err = _series(r, 'loss', 100.0)
            ax.errorbar(xs, ys, yerr=err, marker='o', ms=4, capsize=3,
                        color=COLORS.get(r['path']), label=r['path'])
            if r.get('knee'):
                ax.axvline(r['knee']['offered_pps'] / 1e3, color=COLORS.get(r['path']),
                           linestyle=':', alpha=0.7)
        ax.set_title('%d-byte frames (dotted: where loss begins)' % size, fontsize=10)
        ax.set_xlabel('offered load (kpps)')
        ax.set_ylabel('loss (% of sent)')
        ax.set_ylim(bottom=-1)
        ax.grid(True, alpha=0.3)
    axes[0].legend(loc='upper left', fontsize=8)
    fig.tight_layout()
    return _png(fig)


def plot_rtt(host, results):
    sizes, by = _by_size(results)
    paths = [p for p in _bench.PATH_ORDER if any(r['path'] == p and _bench.PATHS[p]['replies']
                                                 for r in results)]
    if not paths:
        return None
    fig, axes = plt.subplots(len(paths), len(sizes),
                             figsize=(max(7.0, 4.8 * len(sizes)), 1.0 + 3.0 * len(paths)),
                             dpi=100, squeeze=False, sharey=True)
    fig.suptitle('Round-trip time vs offered load (median, band: min–max)\nhost %s' % host,
                 fontsize=12)
    styles = (('rtt_p50_us', 'p50', '-'), ('rtt_p99_us', 'p99', '--'), ('rtt_p999_us', 'p99.9', ':'))
    for row, path in enumerate(paths):
        for col, size in enumerate(sizes):
            ax = axes[row][col]
            for r in by[size]:
                if r['path'] != path:
                    continue
                for metric, label, style in styles:
                    xs, ys, err = _series(r, metric)
                    ax.plot(xs, ys, linestyle=style, marker='o', ms=3,
                            color=COLORS.get(path), label=label)
                    ax.fill_between(xs, [y - e for y, e in zip(ys, err[0])],
                                    [y + e for y, e in zip(ys, err[1])],
                                    color=COLORS.get(path), alpha=0.12)
            ax.set_yscale('log')
            ax.set_title('%s, %d B' % (path, size), fontsize=10)
            ax.grid(True, which='both', alpha=0.3)
            if row == len(paths) - 1:
                ax.set_xlabel('offered load (kpps)')
            if col == 0:
                ax.set_ylabel('RTT (µs, log)')
            if row == 0 and col == 0:
                ax.legend(loc='upper left', fontsize=8)
    fig.tight_layout()
    return _png(fig)


def plot_cpu(host, results):
    sizes, by = _by_size(results)
    paths = [p for p in _bench.PATH_ORDER if any(r['path'] == p for r in results)]
    fig, ax = plt.subplots(figsize=(max(7, 2.2 * len(paths) * len(sizes) / 2), 4.6), dpi=100)
    width = 0.8 / len(sizes)
    for i, size in enumerate(sizes):
        for j, path in enumerate(paths):
            r = next((x for x in by[size] if x['path'] == path), None)
            pt = _point_at_50(r)
            if not pt:
                continue
            proc = (pt.get('dut_cpu_s_per_mpkt') or {}).get('median') or 0
            sirq = (pt.get('softirq_s_per_mpkt') or {}).get('median') or 0
            x = j + (i - (len(sizes) - 1) / 2.0) * width
            ax.bar(x, proc, width * 0.95, color=COLORS.get(path), edgecolor='black')
            ax.bar(x, sirq, width * 0.95, bottom=proc, color=COLORS.get(path), alpha=0.35,
                   edgecolor='black', hatch='//')
            ax.text(x, proc + sirq, '%d B' % size, ha='center', va='bottom', fontsize=7)
    ax.set_xticks(range(len(paths)))
    ax.set_xticklabels(paths)
    ax.set_ylabel('CPU seconds per million packets delivered')
    ax.set_title('CPU cost per packet at 50 %% of each path\'s maximum — %s\n'
                 'solid: DUT process (user+sys); hatched: softirq on all CPUs (XDP, veth, '
                 'stack, both sides)' % host, fontsize=10)
    ax.grid(True, axis='y', alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _point_at_50(result):
    if not result:
        return None
    points = [p for p in result['sweep'] if p['percent'] <= 50] or result['sweep']
    return points[-1] if points else None


PLOTS = (('delivered', plot_delivered), ('loss', plot_loss), ('rtt', plot_rtt), ('cpu', plot_cpu))


# ---------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------

def host_files(module, host, run, report_dir):
    base = os.path.join(report_dir, 'bench-%s' % host)
    files, content = {}, {}
    if module.params['plot'] and not HAS_MATPLOTLIB:
        module.warn('matplotlib is not importable on the controller: the plots were skipped '
                    '(pip install matplotlib)')
    elif module.params['plot'] and run.get('results'):
        for kind, fn in PLOTS:
            png = fn(host, run['results'])
            if png:
                files[kind] = '%s-%s.png' % (base, kind)
                content[kind] = png
    plots = dict((k, os.path.basename(v)) for k, v in files.items())
    files['markdown'], files['json'] = base + '.md', base + '.json'
    content['markdown'] = (_bench.render_markdown(host, run, plots) + '\n').encode()
    content['json'] = _bench.render_json(dict(run, host=host)).encode()
    return files, content, _bench.summary_lines(run.get('results') or [], host)


def fleet_files(module, hosts, report_dir):
    runs = {}
    for host in hosts:
        path = os.path.join(report_dir, 'bench-%s.json' % host)
        try:
            with open(path) as fh:
                runs[host] = json.load(fh)
        except (OSError, ValueError):
            module.warn('no benchmark of %s in %s: left out of the fleet table' % (host, path))
    base = os.path.join(report_dir, 'bench-fleet')
    files = {'markdown': base + '.md', 'json': base + '.json'}
    content = {'markdown': (_bench.render_fleet(runs) + '\n').encode(),
               'json': _bench.render_json(runs).encode()}
    summary = []
    for host in sorted(runs):
        summary.extend(_bench.summary_lines(runs[host].get('results') or [], host))
    return files, content, summary


def main():
    module = AnsibleModule(
        argument_spec=dict(
            scope=dict(type='str', choices=['host', 'fleet'], default='host'),
            host=dict(type='str'),
            run=dict(type='dict'),
            hosts=dict(type='list', elements='str'),
            report_dir=dict(type='path', required=True),
            plot=dict(type='bool', default=True),
        ),
        required_if=[('scope', 'host', ('host', 'run')), ('scope', 'fleet', ('hosts',))],
        supports_check_mode=True,
    )
    p = module.params
    names = [p['host']] if p['scope'] == 'host' else p['hosts']
    bad = [h for h in names if not h or '/' in h or h in ('.', '..')]
    if bad:
        module.fail_json(msg='host name(s) %s cannot be used in a file name' % bad)
    if p['scope'] == 'host':
        files, content, summary = host_files(module, p['host'], p['run'], p['report_dir'])
    else:
        files, content, summary = fleet_files(module, p['hosts'], p['report_dir'])
    stale = write_report_files(module, p['report_dir'], files, content)
    module.exit_json(changed=bool(stale), files=files, summary=summary)


if __name__ == '__main__':
    main()
