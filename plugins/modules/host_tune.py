#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: host_tune
short_description: Busy-poll sysctls and irqbalance's banned CPUs, saved and restored exactly
version_added: 0.1.0
description:
  - Sets sysctls (in the root or a named network namespace) such as C(net.core.busy_poll)
    and C(net.core.busy_read), and keeps irqbalance off a list of CPUs through
    C(IRQBALANCE_BANNED_CPULIST) in its defaults file, restarting irqbalance only when it
    was running and the file changed.
  - Saves each original value the first time it changes it in
    O(state_dir)/host.json (C(host:<netns>.json) for O(netns)); O(state=restored) puts
    them back and removes the file (a banned-CPU line that did not exist is removed again).
  - Every value is checked before anything is touched. When the kernel refuses a sysctl
    value, the sysctls written by the same run are put back and the task fails with
    nothing changed.
  - Optionally checks that processes named O(check_process) (the AF_XDP forwarder,
    C(kbypass-fwd)) run only on O(expected_cpus), from C(/proc/<pid>/task/*/status).
    The check never changes anything.
  - C(net.core.busy_poll) and C(net.core.busy_read) are global - they exist only in the
    initial network namespace (C(/proc/sys/net/core/busy_poll) is absent inside other
    namespaces) - so set them without O(netns). Per-namespace sysctls (C(net.ipv4.*),
    C(net.core.somaxconn)...) work with O(netns).
author:
  - kbypass.xdp developers (@kbypass)
options:
  state:
    description: V(present) applies, V(restored) puts back what was saved.
    type: str
    choices: [present, restored]
    default: present
  netns:
    description: Network namespace for O(sysctls).
    type: str
  sysctls:
    description: Sysctl name (dotted) to value.
    type: dict
    default: {}
  irqbalance_banned_cpus:
    description:
      - CPUs irqbalance must not place interrupts on (kernel CPU list or list of integers).
        Skipped with a warning when irqbalance is not installed.
    type: raw
  irqbalance_config:
    description: irqbalance's environment file.
    type: path
    default: /etc/default/irqbalance
  irqbalance_restart:
    description: Restart irqbalance after changing the file, only if it was running.
    type: bool
    default: true
  check_process:
    description: Process name (comm) whose CPU affinity is compared to O(expected_cpus).
    type: str
  expected_cpus:
    description: CPUs the O(check_process) threads should be pinned to.
    type: raw
  strict:
    description: Fail before changing anything when a sysctl does not exist.
    type: bool
    default: false
  state_dir:
    description: Directory holding the saved originals (an absolute path, not under
      C(/proc), C(/sys) or C(/dev)); removed when a restore leaves it empty.
    type: path
    default: /run/kbypass/tuning
attributes:
  check_mode:
    support: full
    description: Reports what would change; nothing is written.
  diff_mode:
    support: full
    description: Returns before/after values of changed keys.
seealso:
  - module: kbypass.xdp.nic_tune
'''

EXAMPLES = r'''
- name: Busy polling on, irqbalance off CPUs 2-3
  kbypass.xdp.host_tune:
    sysctls:
      net.core.busy_poll: 50
      net.core.busy_read: 50
    irqbalance_banned_cpus: "2-3"

- name: Is the forwarder where we put it?
  kbypass.xdp.host_tune:
    check_process: kbypass-fwd
    expected_cpus: [1]
  register: pin

- name: Restore
  kbypass.xdp.host_tune:
    state: restored
'''

RETURN = r'''
changes:
  description: What changed (or would change), per section.
  returned: always
  type: dict
  sample: {"sysctls": {"net.core.busy_poll": "50"}, "irqbalance": {"banned_cpulist": "2-3"}}
unsupported:
  description: Requested keys that do not exist here, with the reason.
  returned: always
  type: list
  elements: dict
irqbalance:
  description: installed, running, restarted, config path.
  returned: always
  type: dict
processes:
  description: Affinity of each O(check_process) process and whether it matches.
  returned: when check_process is set
  type: list
  elements: dict
  sample: [{"pid": 1234, "cpus": "0-1", "thread_cpus": {"1235": "1"}, "matches": true}]
state_file:
  description: Path of the saved-originals file.
  returned: always
  type: str
key:
  description: Name of what was tuned (C(host), or C(host:<netns>) with O(netns)).
  returned: always
  type: str
  sample: host:ns1
'''

import json
import os
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kbypass.xdp.plugins.module_utils._common import netns_error, state_dir_error
from ansible_collections.kbypass.xdp.plugins.module_utils._netns import HelperError, fs_op, netns_exists
from ansible_collections.kbypass.xdp.plugins.module_utils import _irq, _supervise
from ansible_collections.kbypass.xdp.plugins.module_utils._tuning_state import (
    TUNING_STATE_DIR,
    load_state,
    remember,
    remove_state,
    save_state,
    state_file,
    sysctl_path,
    target_key,
)

BANNED_KEY = 'IRQBALANCE_BANNED_CPULIST'
ABSENT = '__absent__'
_SYSCTL_RE = re.compile(r'^[a-z0-9_][a-z0-9_.-]*[a-z0-9_]$', re.I)


def norm_sysctl(value):
    """Kernel prints multi-value sysctls tab-separated; compare them space-normalised."""
    if isinstance(value, bool):
        value = int(value)
    return ' '.join(str(value).split())


def get_env_var(text, key):
    """Value of ``KEY=...`` in a shell-style defaults file (quotes stripped), or None."""
    val = None
    for line in (text or '').splitlines():
        m = re.match(r'^\s*(?:export\s+)?' + re.escape(key) + r'=(.*)$', line)
        if m:
            val = m.group(1).strip().strip('"').strip("'")
    return val


def set_env_var(text, key, value):
    """Return ``text`` with ``KEY="value"`` set (value None removes the line)."""
    lines = (text or '').splitlines()
    out, done = [], False
    for line in lines:
        if re.match(r'^\s*(?:export\s+)?' + re.escape(key) + r'=', line):
            if value is not None and not done:
                out.append('%s="%s"' % (key, value))
                done = True
            continue
        out.append(line)
    if value is not None and not done:
        out.append('%s="%s"' % (key, value))
    return '\n'.join(out) + ('\n' if out else '')


def process_matches(task_cpus, main_tid, expected):
    """Do the process's threads respect ``expected``?

    ``task_cpus``: {tid: [cpus]}. Matches when every thread is within ``expected``, or
    every thread but the main one is (a supervisor main thread may stay unpinned).
    """
    exp = set(expected)
    if not task_cpus:
        return False
    if all(set(c) <= exp for c in task_cpus.values()):
        return True
    workers = dict((t, c) for t, c in task_cpus.items() if t != main_tid)
    return bool(workers) and all(set(c) <= exp for c in workers.values())


def validate(p, online):
    """Checked, normalised request from module params (pure).

    Returns {'sysctls': {name: value}, 'banned': cpulist or None, 'expected': [cpus] or
    None}; raises ValueError with every problem found, before anything is read or written.
    """
    errors = []
    for err in (netns_error(p.get('netns')), state_dir_error(p['state_dir'])):
        if err:
            errors.append(err)
    sysctls = {}
    for name, val in (p.get('sysctls') or {}).items():
        if not _SYSCTL_RE.match(str(name)) or '..' in str(name):
            errors.append('%r is not a sysctl name (use dotted form, e.g. net.core.busy_poll)'
                          % name)
        elif not isinstance(val, (str, int, float)) or not norm_sysctl(val) or '\n' in str(val):
            errors.append('sysctls.%s: %r is not a sysctl value (a number or a line of text)'
                          % (name, val))
        else:
            sysctls[str(name)] = norm_sysctl(val)
    req = {'sysctls': sysctls, 'banned': None, 'expected': None}
    for key, what in (('banned', 'irqbalance_banned_cpus'), ('expected', 'expected_cpus')):
        try:
            req[key] = _irq.cpus_option(p.get(what), what, online)
        except ValueError as exc:
            errors.append(str(exc))
    if req['banned'] is not None:
        req['banned'] = _irq.format_cpulist(req['banned'])
    if errors:
        raise ValueError('; '.join(errors))
    return req


def compute_plan(current, want_sysctls, banned, restoring=False, netns=None):
    """What to change (pure).

    ``current``: {'sysctls': {name: value or None (missing)}, 'irqbalance_installed': bool,
    'banned_cpulist': value in the config file or None}. ``banned``: wanted list, ABSENT
    (remove the line: restore of a line that did not exist) or None (leave alone).
    Returns {'changes', 'before', 'unsupported'}.
    """
    changes, before, unsupported = {}, {}, []
    for name, want in sorted(want_sysctls.items()):
        have = current['sysctls'].get(name)
        if have is None:
            reason = 'no such sysctl%s' % (
                ' in netns %s (net.core.busy_poll/busy_read are global: set them without '
                'netns)' % netns if netns else '')
            unsupported.append({'key': 'sysctls.%s' % name, 'reason': reason})
        elif norm_sysctl(have) != want:
            changes.setdefault('sysctls', {})[name] = want
            before.setdefault('sysctls', {})[name] = norm_sysctl(have)
    if banned is not None:
        have = current['banned_cpulist']
        target = None if banned == ABSENT else banned
        if not current['irqbalance_installed'] and not restoring:
            unsupported.append({'key': 'irqbalance_banned_cpus',
                                'reason': 'irqbalance is not installed'})
        elif have != target:
            changes['irqbalance'] = {'banned_cpulist': target}
            before['irqbalance'] = {'banned_cpulist': have}
    return {'changes': changes, 'before': before, 'unsupported': unsupported}


def check_processes(comm, expected, proc=_supervise.PROC):
    """Affinity of every ``comm`` process, and whether it respects ``expected``."""
    procs = []
    for pid in _supervise.find_by_comm(comm, proc):
        tasks = dict((t['tid'], t['cpus']) for t in _supervise.thread_affinity(pid, proc))
        procs.append({
            'pid': pid,
            'cpus': _irq.format_cpulist(tasks.get(pid) or []),
            'thread_cpus': dict((str(t), _irq.format_cpulist(c)) for t, c in sorted(tasks.items())),
            'matches': process_matches(tasks, pid, expected),
        })
    return procs


class ApplyError(Exception):
    pass


def apply_plan(module, plan, state, path, netns, cfg, restoring):
    """Write sysctls, then the irqbalance file, each original saved first. On failure
    raises ApplyError(message, {sysctl: value before} of the ones written)."""
    changes, before = plan['changes'], plan['before']
    written = {}
    try:
        for name in sorted(changes.get('sysctls') or {}):
            if not restoring and remember(state, 'sysctls', name, before['sysctls'][name]):
                save_state(path, state)
        if changes.get('sysctls'):
            res = fs_op(module, netns, write=[(sysctl_path(n), v)
                                              for n, v in sorted(changes['sysctls'].items())])
            errs = [x for x in res['write'] if x[1]]
            written = dict((n, before['sysctls'][n]) for n in changes['sysctls']
                           if [sysctl_path(n), None] in res['write'])
            if errs:
                raise ApplyError('writing sysctls failed: %s'
                                 % '; '.join('%s: %s' % tuple(x) for x in errs), written)
        if 'irqbalance' in changes:
            if not restoring:
                was = before['irqbalance']['banned_cpulist']
                if remember(state, 'irqbalance', 'banned_cpulist',
                            ABSENT if was is None else was):
                    save_state(path, state)
            new = set_env_var(cfg['text'] or '', BANNED_KEY,
                              changes['irqbalance']['banned_cpulist'])
            _supervise.write_file_atomic(cfg['path'], new)
    except (OSError, ValueError, HelperError) as exc:
        raise ApplyError('cannot apply the change: %s' % (getattr(exc, 'strerror', None) or exc),
                         written)


def roll_back(module, netns, written, path, saved):
    """Put the sysctls of a failed run back and the state file as it was; returns the
    sysctls that could not be put back."""
    res = fs_op(module, netns, write=[(sysctl_path(n), v) for n, v in sorted(written.items())])
    if saved['original']:
        save_state(path, saved)
    elif os.path.exists(path):
        remove_state(path)
    return sorted(p for p, e in res['write'] if e)


def read_config(path):
    """{'path', 'text' (None when the file does not exist)}; ValueError when unreadable."""
    if os.path.isdir(path):
        raise ValueError('irqbalance_config %s is a directory; give the path of irqbalance\'s '
                         'environment file (usually /etc/default/irqbalance)' % path)
    try:
        with open(path) as f:
            return {'path': path, 'text': f.read()}
    except FileNotFoundError:
        return {'path': path, 'text': None}
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError('cannot read irqbalance_config %s: %s' % (path, exc))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type='str', choices=['present', 'restored'], default='present'),
            netns=dict(type='str'),
            sysctls=dict(type='dict', default={}),
            irqbalance_banned_cpus=dict(type='raw'),
            irqbalance_config=dict(type='path', default='/etc/default/irqbalance'),
            irqbalance_restart=dict(type='bool', default=True),
            check_process=dict(type='str'),
            expected_cpus=dict(type='raw'),
            strict=dict(type='bool', default=False),
            state_dir=dict(type='path', default=TUNING_STATE_DIR),
        ),
        required_together=[('check_process', 'expected_cpus')],
        supports_check_mode=True,
    )
    p = module.params
    netns = p['netns']
    restoring = p['state'] == 'restored'
    path = state_file(p['state_dir'], netns)
    try:
        req = validate(p, _supervise.online_cpus())
        if not netns_exists(netns):
            raise ValueError('network namespace %s does not exist (ip netns list)' % netns)
        cfg = read_config(p['irqbalance_config'])
        state = load_state(path)
        want_sysctls, banned = req['sysctls'], req['banned']
        if restoring:
            want_sysctls = dict(state['original'].get('sysctls') or {})
            banned = (state['original'].get('irqbalance') or {}).get('banned_cpulist')
        cur = fs_op(module, netns, read=[sysctl_path(n) for n in sorted(want_sysctls)])['read']
    except (ValueError, HelperError) as exc:
        module.fail_json(msg=str(exc))
    current = {'sysctls': dict((n, cur.get(sysctl_path(n))) for n in want_sysctls),
               'irqbalance_installed': (cfg['text'] is not None
                                        or bool(module.get_bin_path('irqbalance'))),
               'banned_cpulist': get_env_var(cfg['text'], BANNED_KEY)}
    plan = compute_plan(current, want_sysctls, banned, restoring, netns)
    changes = plan['changes']
    for item in plan['unsupported']:
        if p['strict'] and not restoring:
            module.fail_json(msg='%s: %s (nothing was changed)' % (item['key'], item['reason']),
                             unsupported=plan['unsupported'])
        module.warn('skipped %s: %s' % (item['key'], item['reason']))

    irqb = {'config': cfg['path'], 'installed': current['irqbalance_installed'],
            'running': bool(_supervise.find_by_comm('irqbalance')), 'restarted': False}
    file_exists = os.path.exists(path)
    result = dict(changed=bool(changes) or (restoring and file_exists), changes=changes,
                  unsupported=plan['unsupported'], irqbalance=irqb, state_file=path,
                  key=target_key(netns))
    if module._diff:
        result['diff'] = {'before': plan['before'], 'after': changes}

    if not module.check_mode and changes:
        saved = json.loads(json.dumps(state))
        try:
            apply_plan(module, plan, state, path, netns, cfg, restoring)
        except ApplyError as exc:
            written = exc.args[1]
            left = roll_back(module, netns, written, path, saved)
            result.update(changed=bool(left), rolled_back=sorted(written))
            outcome = ('could not put back %s' % ', '.join(left) if left else
                       'nothing was changed (%d sysctl(s) put back)' % len(written))
            module.fail_json(msg='%s; %s' % (exc.args[0], outcome), **result)
        if 'irqbalance' in changes and irqb['running'] and p['irqbalance_restart']:
            irqb['restarted'] = _restart_irqbalance(module)
    if restoring and file_exists and not module.check_mode:
        remove_state(path)

    if p['check_process']:
        result['processes'] = check_processes(p['check_process'], req['expected'])
        result['expected_cpus'] = _irq.format_cpulist(req['expected'])
    module.exit_json(**result)


def _restart_irqbalance(module):
    if os.path.isdir('/run/systemd/system'):
        cmd = ['systemctl', 'restart', 'irqbalance']
    else:
        svc = module.get_bin_path('service')
        if not svc:
            module.warn('irqbalance is running but there is no systemd or service(8) to '
                        'restart it; restart it yourself so the banned CPU list applies')
            return False
        cmd = [svc, 'irqbalance', 'restart']
    rc, out, err = module.run_command(cmd)
    if rc != 0:
        module.warn('restarting irqbalance failed: %s' % (err or out).strip())
        return False
    return True


if __name__ == '__main__':
    main()
