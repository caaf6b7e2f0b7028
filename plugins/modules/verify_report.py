#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: verify_report
short_description: Judge a traffic_probe measurement and write the verify report
version_added: "0.1.0"
description:
  - Compares the counters M(kbypass.xdp.traffic_probe) measured — generator, XDP steering
    counters, forwarder RX/TX, replies — and names the first one that disagrees.
  - Writes C(verify-<host>.md) and C(verify-<host>.json) into O(report_dir) and, when matplotlib
    is importable, C(verify-<host>.png) with the packet rate over time during the verify burst.
  - "Meant to run on the controller (C(delegate_to: localhost))."
  - The module itself never fails on a disagreement; it returns C(ok) and C(msg) so the caller
    can write the report first and fail afterwards.
  - The verdict is PASS only with evidence. Every required counter is present (at least one
    matching burst with the packets requested, the generator's sent and received, the steering
    program's counters before and after, the forwarder's RX and TX) and agrees. Missing evidence,
    or a measurement that failed, is FAIL with the reason.
author:
  - kbypass.xdp developers (@kbypass)
attributes:
  check_mode:
    support: full
    description: >-
      In check mode the verdict and the files are rendered in memory and compared with
      what is on disk (changed when a real run would write), but nothing is written.
  diff_mode:
    support: none
    description: Reports are run artefacts; no diff is returned.
options:
  host:
    description:
      - Name of the host the measurement belongs to (used in file names, where every
        character other than letters, digits, C(.), C(_) and C(-) becomes C(_)).
    type: str
    required: true
  data:
    description: The registered result of M(kbypass.xdp.traffic_probe).
    type: dict
    required: true
  report_dir:
    description: Directory for the report files; created if missing. An absolute path.
    type: path
    required: true
  mode:
    description: Forwarder mode to judge against; defaults to the mode in the forwarder's stats.
    type: str
    choices: [echo, rxdrop, l2fwd, kernel]
  plot:
    description: Render the PNG plot (skipped with a warning when matplotlib is missing).
    type: bool
    default: true
  ovs:
    description:
      - The registered result of M(kbypass.xdp.ovs_probe). Adds the Open vSwitch section
        to the report and its checks to the verdict.
      - With an empty O(data) the report holds the Open vSwitch section only.
    type: dict
    version_added: "0.2.0"
  kernel:
    description:
      - The registered result of M(kbypass.xdp.kernel_view) (or its C(view)). Adds the section
        "What the kernel sees" to the report - namespaces, links and their XDP state, programs
        and maps, the AF_XDP sockets by queue, counters, the forwarders' stats - with a note on
        why C(tcpdump) on the device under test shows no steered packets. The JSON report holds
        it under C(data.kernel). It is not judged.
    type: dict
    version_added: "0.3.0"
'''

EXAMPLES = r'''
- name: Write the report on the controller
  kbypass.xdp.verify_report:
    host: "{{ inventory_hostname }}"
    data: "{{ probe }}"
    report_dir: "{{ playbook_dir }}/../reports"
  delegate_to: localhost
  register: report

- name: Fail on the first disagreement
  ansible.builtin.fail:
    msg: "{{ report.msg }}"
  when: not report.ok
'''

RETURN = r'''
ok:
  description: True when every counter agrees.
  returned: always
  type: bool
msg:
  description: The first disagreement, or a one-line success summary.
  returned: always
  type: str
failures:
  description: Every disagreement, in the order checked.
  returned: always
  type: list
  elements: str
summary:
  description: A few lines for the play output.
  returned: always
  type: list
  elements: str
verdict:
  description: The deltas used per section (matching bursts, non-matching, observation).
  returned: always
  type: dict
files:
  description: Paths written (markdown, json and, when rendered, png).
  returned: always
  type: dict
'''

import io
import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kbypass.xdp.plugins.module_utils import _ovs
from ansible_collections.kbypass.xdp.plugins.module_utils._common import (
    state_dir_error,
    write_report_files,
)
from ansible_collections.kbypass.xdp.plugins.module_utils._report import (
    evaluate,
    render_kernel_markdown,
    render_json,
    render_markdown,
    series_rates,
    summary_lines,
    usable,
)

try:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    HAS_MATPLOTLIB = True
except ImportError:
    HAS_MATPLOTLIB = False


def file_label(host):
    """``host`` as a file name component: letters, digits, ``.``, ``_`` and ``-`` kept,
    anything else (newlines, direction overrides, spaces) replaced by ``_``."""
    return re.sub(r'[^A-Za-z0-9._-]', '_', host)


def render_plot(host, data):
    """PNG bytes of tx/rx pps over time for every matching burst, or None without bursts."""
    bursts = [b for b in data.get('matching') or []
              if isinstance(b.get('generator'), dict) and isinstance(b['generator'].get('series'), list)]
    if not bursts:
        return None
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    for burst in bursts:
        gen = burst['generator']
        ts, tx, rx = series_rates(gen.get('series'), total=gen.get('sent'))
        # each sample is the rate over the interval that ends at t: a step plot
        ax.plot(ts, tx, drawstyle='steps-pre', label='%s sent' % burst.get('family'))
        ax.plot(ts, rx, drawstyle='steps-pre', linestyle='--',
                label='%s echoed back' % burst.get('family'))
    ax.set_xlabel('time since burst start (s)')
    ax.set_ylabel('packets per second')
    ax.set_title('kbypass.xdp verify burst on %s' % host)
    ax.grid(True, alpha=0.3)
    ax.legend(loc='lower center')
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    plt.close(fig)
    return buf.getvalue()


def render_all(host, raw, mode, base, plot, ovs=None, kernel=None):
    """(verdict, summary, files, content): everything a run would write, rendered first
    so that check mode predicts exactly what a real run writes. With ``ovs`` (the result
    of kbypass.xdp.ovs_probe) the Open vSwitch section and its checks are folded in; with
    ``ovs`` and empty ``raw`` the run measured OVS only, and only OVS is judged. ``kernel``
    (kbypass.xdp.kernel_view's result or view) adds "What the kernel sees", not judged."""
    data, _problems = usable(raw)  # evaluate() reports the problems
    ovs_only = bool(ovs) and not raw
    verdict = {'ok': True, 'failures': []} if ovs_only else evaluate(raw, mode)
    files = {'markdown': base + '.md', 'json': base + '.json'}
    content = {}
    png = render_plot(host, data) if plot and not ovs_only else None
    if png:
        files['png'] = base + '.png'
        content['png'] = png
    plot_name = os.path.basename(files['png']) if 'png' in files else None
    if not ovs:
        markdown = render_markdown(host, data, verdict, plot_name)
        summary = summary_lines(host, data, verdict)
    else:
        ovs_verdict = _ovs.judge_ovs(ovs)
        verdict = _ovs.merge_verdict(verdict, ovs_verdict)
        section = _ovs.render_ovs_markdown(ovs, ovs_verdict)
        if ovs_only:
            markdown = '\n'.join(['# kbypass.xdp verify — %s' % host, '', '**Verdict: %s**%s' % (
                'PASS' if verdict['ok'] else 'FAIL',
                '' if verdict['ok'] else ' — ' + verdict['failures'][0]), '', section])
            summary = []
        else:
            markdown = render_markdown(host, data, verdict, plot_name) + '\n' + section
            summary = summary_lines(host, data, verdict)
        summary.append(_ovs.summary_line(host, ovs, ovs_verdict))
        data = dict(data, ovs=ovs)
    if kernel:
        view = kernel.get('view', kernel)
        markdown += '\n' + render_kernel_markdown(view)
        data = dict(data, kernel=view)
    content['markdown'] = (markdown + '\n').encode()
    content['json'] = render_json(host, data, verdict).encode()
    return verdict, summary, files, content


def main():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type='str', required=True),
            data=dict(type='dict', required=True),
            report_dir=dict(type='path', required=True),
            mode=dict(type='str', choices=['echo', 'rxdrop', 'l2fwd', 'kernel']),
            plot=dict(type='bool', default=True),
            ovs=dict(type='dict'),
            kernel=dict(type='dict'),
        ),
        supports_check_mode=True,
    )
    host = module.params['host']
    if not host or '/' in host or host in ('.', '..'):
        module.fail_json(msg='host %r cannot be used in a file name' % host)
    err = state_dir_error(module.params['report_dir'], 'report_dir')
    if err:
        module.fail_json(msg=err)
    report_dir = module.params['report_dir']
    base = os.path.join(report_dir, 'verify-%s' % file_label(host))
    if module.params['plot'] and not HAS_MATPLOTLIB:
        module.warn('matplotlib is not importable on the controller: the pps plot was '
                    'skipped (pip install matplotlib)')
    try:
        verdict, summary, files, content = render_all(
            host, module.params['data'], module.params['mode'], base,
            module.params['plot'] and HAS_MATPLOTLIB, module.params['ovs'], module.params['kernel'])
    except (AttributeError, TypeError, ValueError, KeyError):
        module.fail_json(msg='data does not have the shape of the result of '
                             'kbypass.xdp.traffic_probe (a section holds a value of the wrong '
                             'type): pass that module\'s registered result')
    stale = write_report_files(module, report_dir, files, content)
    msg = verdict['failures'][0] if verdict['failures'] else summary[0]
    module.exit_json(changed=bool(stale), ok=verdict['ok'], msg=msg, failures=verdict['failures'],
                     summary=summary, verdict=verdict, files=files)


if __name__ == '__main__':
    main()
