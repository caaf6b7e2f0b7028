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
    O(state_dir)/<netns or init_net>-host.json; O(state=restored) puts them back and
    removes the file (a banned-CPU line that did not exist is removed again).
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
    description: Directory holding the saved originals.
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
'''

import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kbypass.xdp.plugins.module_utils._common import netns_error
from ansible_collections.kbypass.xdp.plugins.module_utils._netns import HelperError, fs_op, netns_exists
from ansible_collections.kbypass.xdp.plugins.module_utils import _irq
from ansible_collections.kbypass.xdp.plugins.module_utils._tuning_state import (
    load_state,
    remember,
    save_state,
    state_file,
    sysctl_path,
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


def find_processes(comm, proc_root='/proc'):
    """[{pid, tasks: {tid: [cpus]}}] for processes whose comm is ``comm``."""
    out = []
    for pid in os.listdir(proc_root):
        if not pid.isdigit():
            continue
        try:
            with open(os.path.join(proc_root, pid, 'comm')) as f:
                if f.read().strip() != comm[:15]:
                    continue
            tasks = {}
            for tid in os.listdir(os.path.join(proc_root, pid, 'task')):
                with open(os.path.join(proc_root, pid, 'task', tid, 'status')) as f:
                    for line in f:
                        if line.startswith('Cpus_allowed_list:'):
                            tasks[int(tid)] = _irq.parse_cpulist(line.split(':', 1)[1].strip())
        except OSError:
            continue
        out.append({'pid': int(pid), 'tasks': tasks})
    return out


def irqbalance_running(proc_root='/proc'):
    return bool(find_processes('irqbalance', proc_root))


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
            state_dir=dict(type='path', default='/run/kbypass/tuning'),
        ),
        required_together=[('check_process', 'expected_cpus')],
        supports_check_mode=True,
    )
    p = module.params
    netns = p['netns']
    err = netns_error(netns)
    if err:
        module.fail_json(msg=err)
    if not netns_exists(netns):
        module.fail_json(msg='network namespace %s does not exist (ip netns list)' % netns)
    want_sysctls = {}
    for name, val in (p['sysctls'] or {}).items():
        if not _SYSCTL_RE.match(str(name)) or '..' in str(name):
            module.fail_json(msg='%r is not a sysctl name (use dotted form, e.g. '
                             'net.core.busy_poll)' % name)
        want_sysctls[str(name)] = norm_sysctl(val)
    try:
        banned = None
        if p['irqbalance_banned_cpus'] not in (None, '', []):
            banned = _irq.format_cpulist(_irq.parse_cpulist(p['irqbalance_banned_cpus']))
        expected = (_irq.parse_cpulist(p['expected_cpus'])
                    if p['expected_cpus'] not in (None, '', []) else None)
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    path = state_file(p['state_dir'], 'host', netns)
    try:
        state = load_state(path)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    orig = state['original']
    restoring = p['state'] == 'restored'
    if restoring:
        want_sysctls = dict(orig.get('sysctls') or {})
        banned = (orig.get('irqbalance') or {}).get('banned_cpulist')

    changes, before, unsupported = {}, {}, []
    try:
        cur = fs_op(module, netns, read=[sysctl_path(n) for n in sorted(want_sysctls)])['read']
    except HelperError as exc:
        module.fail_json(msg=str(exc))
    for name, want in sorted(want_sysctls.items()):
        have = cur.get(sysctl_path(name))
        if have is None:
            reason = 'no such sysctl%s' % (
                ' in netns %s (net.core.busy_poll/busy_read are global: set them without '
                'netns)' % netns if netns else '')
            unsupported.append({'key': 'sysctls.%s' % name, 'reason': reason})
        elif norm_sysctl(have) != want:
            changes.setdefault('sysctls', {})[name] = want
            before.setdefault('sysctls', {})[name] = norm_sysctl(have)

    irqb = {'config': p['irqbalance_config'], 'installed': False,
            'running': irqbalance_running(), 'restarted': False}
    cfg_text = None
    if os.path.exists(p['irqbalance_config']):
        with open(p['irqbalance_config']) as f:
            cfg_text = f.read()
    irqb['installed'] = cfg_text is not None or bool(module.get_bin_path('irqbalance'))
    if banned is not None:
        have = get_env_var(cfg_text, BANNED_KEY) if cfg_text is not None else None
        target = None if banned == ABSENT else banned
        if not irqb['installed'] and not restoring:
            unsupported.append({'key': 'irqbalance_banned_cpus',
                                'reason': 'irqbalance is not installed (%s missing)'
                                % p['irqbalance_config']})
        elif have != target:
            changes['irqbalance'] = {'banned_cpulist': target}
            before['irqbalance'] = {'banned_cpulist': have}

    for item in unsupported:
        if p['strict'] and not restoring:
            module.fail_json(msg='%s: %s (nothing was changed)' % (item['key'], item['reason']),
                             unsupported=unsupported)
        module.warn('skipped %s: %s' % (item['key'], item['reason']))

    file_exists = os.path.exists(path)
    result = dict(changed=bool(changes) or (restoring and file_exists), changes=changes,
                  unsupported=unsupported, irqbalance=irqb, state_file=path)
    if module._diff:
        result['diff'] = {'before': before, 'after': changes}

    if not module.check_mode and changes:
        for name, want in sorted((changes.get('sysctls') or {}).items()):
            if not restoring and remember(state, 'sysctls', name, before['sysctls'][name]):
                save_state(path, state)
        if changes.get('sysctls'):
            res = fs_op(module, netns, write=[(sysctl_path(n), v)
                                              for n, v in sorted(changes['sysctls'].items())])
            errs = [x for x in res['write'] if x[1]]
            if errs:
                module.fail_json(msg='writing sysctls failed: %s'
                                 % '; '.join('%s: %s' % tuple(x) for x in errs))
        if 'irqbalance' in changes:
            if not restoring:
                was = before['irqbalance']['banned_cpulist']
                if remember(state, 'irqbalance', 'banned_cpulist',
                            ABSENT if was is None else was):
                    save_state(path, state)
            new = set_env_var(cfg_text or '', BANNED_KEY, changes['irqbalance']['banned_cpulist'])
            module.atomic_move(_write_tmp(module, new), p['irqbalance_config'])
            os.chmod(p['irqbalance_config'], 0o644)
            if irqb['running'] and p['irqbalance_restart']:
                irqb['restarted'] = _restart_irqbalance(module)
    if restoring and file_exists and not module.check_mode:
        os.remove(path)

    if p['check_process']:
        procs = []
        for proc in find_processes(p['check_process']):
            procs.append({
                'pid': proc['pid'],
                'cpus': _irq.format_cpulist(proc['tasks'].get(proc['pid']) or []),
                'thread_cpus': dict((str(t), _irq.format_cpulist(c))
                                    for t, c in sorted(proc['tasks'].items())),
                'matches': process_matches(proc['tasks'], proc['pid'], expected),
            })
        result['processes'] = procs
        result['expected_cpus'] = _irq.format_cpulist(expected)
    module.exit_json(**result)


def _write_tmp(module, text):
    fd, tmp = tempfile.mkstemp(dir=module.tmpdir)
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    return tmp


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
