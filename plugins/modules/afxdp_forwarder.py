#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: afxdp_forwarder
short_description: Run one supervised instance of the kbypass AF_XDP forwarder
version_added: 0.1.0
description:
  - Starts, stops or restarts one named instance of C(kbypass-fwd), the AF_XDP forwarder
    of this collection, bound to the XSKMAP that the steering program pinned for an
    interface (see M(kbypass.xdp.xdp_attach)).
  - Without systemd as PID 1 the forwarder runs as a detached process (own session) with
    a pidfile, a log and a stats file under C(/run/kbypass/forwarder/<name>.*). The pidfile
    records the process start time, so a reused pid is never mistaken for the forwarder.
    Where systemd is PID 1 the instance runs as C(kbypass-fwd@<name>.service) (the
    template unit comes from the C(kbypass.xdp.forwarder) role); the command line and CPU
    affinity go into a runtime drop-in.
  - The effective command line is stored in C(<name>.args.json). The same configuration
    while the forwarder runs is no change; a different one restarts it; a dead process
    with a stale pidfile is started again.
  - A running forwarder counts as healthy only when it receives through the program
    attached now. The XSKMAP it registered its sockets in (read from its open fds) is one
    the program attached to O(interface) uses, it runs in the namespace that now carries
    the name O(netns), and its binary is the one on disk. An unhealthy forwarder is
    restarted (see RV(restart_reasons)), e.g. after bpffs was remounted and the program
    re-attached with new maps, after the namespace was re-created, or after an upgrade.
  - Everything is checked before anything is stopped. The arguments, the binary, the
    namespace, the interface and its queues, pins that belong to the program attached to
    O(interface) (a O(pin_dir) of another interface's attachment is refused), and RX
    queues already bound by another forwarder. When a restart fails after the old process
    was stopped, the previous configuration is started again and the task fails with
    C(changed=true), saying what runs now.
  - Starting waits (bounded by O(start_timeout)) until the forwarder's stats file reports
    C(running) (its sockets are bound). If the process dies first the task fails with the
    tail of its log and nothing is left running.
author:
  - kbypass.xdp developers (@kbypass)
options:
  name:
    description:
      - Instance name. Names the runtime files and the systemd unit instance.
      - 1-63 characters from letters, digits, V(_), V(.) and V(-).
    type: str
    required: true
  state:
    description:
      - V(started) runs the instance with this configuration (restarting it when the
        configuration differs), V(stopped) stops it and removes its runtime files,
        V(restarted) always restarts it.
    type: str
    choices: [started, stopped, restarted]
    default: started
  mode:
    description:
      - V(rxdrop) counts and drops, V(echo) reflects each frame to its sender (MAC, IP and
        UDP ports swapped), V(l2fwd) sends frames out of O(interface2), V(kernel)
        reinjects them into the kernel stack through a TAP device.
    type: str
    choices: [rxdrop, echo, l2fwd, kernel]
    default: echo
  interface:
    description: Interface whose RX queues the forwarder binds. Required to start.
    type: str
  interface2:
    description: Egress interface for O(mode=l2fwd) (required there, refused otherwise).
    type: str
  netns:
    description: Network namespace of the interfaces. Omit for the root namespace.
    type: str
  pin_dir:
    description:
      - bpffs directory with the steering program's pinned C(xsks_map).
      - Defaults to C(/sys/fs/bpf/kbypass/<netns or init_net>/<interface>).
    type: path
  pin_dir2:
    description: Pin directory for O(interface2) in O(mode=l2fwd), when it has one.
    type: path
  queues:
    description: RX queue indices to bind, one AF_XDP socket each. Must exist on the interface.
    type: list
    elements: int
    default: [0]
  cpus:
    description: CPUs for the worker threads (one per queue, round robin). Empty means no pinning.
    type: list
    elements: int
    default: []
  bind_mode:
    description: AF_XDP bind mode; V(auto) tries zero-copy and falls back to copy.
    type: str
    choices: [auto, copy, zerocopy]
    default: auto
  batch_size:
    description:
      - Descriptors processed per ring operation, 1-1024 (forwarder default 64).
      - At most O(rx_ring_size) and O(tx_ring_size); O(num_frames) at least twice this.
    type: int
  frame_size:
    description: UMEM frame size in bytes, 2048 or 4096 (forwarder default 4096).
    type: int
  multi_buffer:
    description:
      - Bind with C(XDP_USE_SG) (C(--multi-buffer)) so that packets larger than one frame (an
        interface MTU above O(frame_size) - 278, e.g. 9000) arrive and leave as several descriptors.
      - Needs kernel 6.6 or later in copy mode, or a driver with multi-buffer zero-copy; the
        forwarder exits with code 3 and says so when the kernel refuses. Without it, the forwarder
        refuses to start on an interface whose MTU does not fit one frame.
    type: bool
    default: false
    version_added: 0.3.0
  num_frames:
    description: UMEM frames per socket, 256-1048576 (forwarder default 4096), at least 2 x O(batch_size).
    type: int
  rx_ring_size:
    description: RX ring size, 64-32768, a power of two (forwarder default 2048), at least O(batch_size).
    type: int
  tx_ring_size:
    description: TX ring size, 64-32768, a power of two (forwarder default 2048), at least O(batch_size).
    type: int
  fill_ring_size:
    description: Fill ring size, 64-32768, a power of two (forwarder default 4096).
    type: int
  comp_ring_size:
    description: Completion ring size, 64-32768, a power of two (forwarder default 2048).
    type: int
  need_wakeup:
    description: Use the need_wakeup flag (fewer syscalls); V(false) passes C(--no-need-wakeup).
    type: bool
    default: true
  busy_poll:
    description: Enable preferred busy polling on the sockets.
    type: bool
    default: false
  busy_poll_usec:
    description: SO_BUSY_POLL time in microseconds, 0-1000000 (forwarder default 20); needs O(busy_poll).
    type: int
  busy_poll_budget:
    description: SO_BUSY_POLL_BUDGET packets, 1-65535 (forwarder default 64); needs O(busy_poll).
    type: int
  spin_usec:
    description:
      - Microseconds, 0-10000, to keep polling the rings before sleeping (forwarder default 0).
      - A dedicated core buys a shorter latency tail with CPU time.
    type: int
  coalesce_usec:
    description:
      - While traffic flows, microseconds, 0-1000, to let a batch gather between passes instead
        of waking up for every few packets (forwarder default 100).
      - Less CPU, adds up to that much latency; V(0) turns it off.
    type: int
  tap:
    description: TAP device name for O(mode=kernel) (forwarder default when omitted).
    type: str
  stats_interval:
    description: Seconds between stats file updates, 0.05-3600.
    type: float
    default: 1.0
  binary:
    description: Path of the forwarder binary.
    type: path
    default: /usr/local/bin/kbypass-fwd
  supervisor:
    description:
      - V(process) runs a detached process with a pidfile, V(systemd) a unit instance,
        V(auto) picks V(systemd) when systemd is PID 1, else V(process).
    type: str
    choices: [auto, process, systemd]
    default: auto
  state_dir:
    description:
      - Directory for the pidfile, log, stats and args files. An absolute path outside
        the kernel's pseudo file systems (C(/proc), C(/sys), C(/dev)). Created on start,
        removed when a stop leaves it empty.
    type: path
    default: /run/kbypass/forwarder
  start_timeout:
    description: Seconds to wait for the forwarder to report running.
    type: float
    default: 10
  stop_timeout:
    description: Seconds to wait after SIGTERM before SIGKILL.
    type: float
    default: 5
attributes:
  check_mode:
    support: full
    description: Predicts start/stop/restart without touching anything.
  diff_mode:
    support: full
    description: Shows the running and the wanted configuration (command line, supervisor).
  platform:
    platforms: [linux]
    support: full
    description: Linux with AF_XDP sockets.
requirements:
  - the C(kbypass-fwd) binary (role C(kbypass.xdp.forwarder) builds it)
  - a steering program attached with pinned C(xsks_map) (M(kbypass.xdp.xdp_attach))
  - C(ip) from iproute2 (to read the RX queues of an interface in a namespace)
  - pyroute2 (reads the program attached to the interface; the kbypass.xdp.toolchain role
    installs it in C(/opt/kbypass/venv) and the module re-runs itself under that interpreter)
notes:
  - In check mode, missing prerequisites (binary, namespace, interface, pins) only warn,
    because the tasks that create them did not run for real either.
seealso:
  - module: kbypass.xdp.xdp_attach
'''

EXAMPLES = r'''
- name: Echo UDP steered into queue 0 of veth0 in ns1, worker pinned to CPU 1
  kbypass.xdp.afxdp_forwarder:
    name: echo-ns1-veth0
    mode: echo
    interface: veth0
    netns: ns1
    queues: [0]
    cpus: [1]

- name: Drop everything on queues 0 and 1 with busy polling and larger batches
  kbypass.xdp.afxdp_forwarder:
    name: drop-eth1
    mode: rxdrop
    interface: eth1
    queues: [0, 1]
    cpus: [2, 3]
    batch_size: 256
    busy_poll: true
    busy_poll_usec: 20
    busy_poll_budget: 64

- name: Stop it and remove its runtime files
  kbypass.xdp.afxdp_forwarder:
    name: drop-eth1
    state: stopped
'''

RETURN = r'''
name:
  description: Instance name.
  returned: always
  type: str
  sample: echo-ns1-veth0
operation:
  description: What the module did (or would do in check mode).
  returned: always
  type: str
  sample: start
  choices: [none, start, restart, stop, cleanup]
running:
  description: Whether the forwarder runs after the task.
  returned: always
  type: bool
pid:
  description: Pid of the running forwarder.
  returned: when running
  type: int
  sample: 4242
supervisor:
  description: Supervisor in use (V(process) or V(systemd)).
  returned: always
  type: str
argv:
  description: Effective command line of the forwarder.
  returned: when state is started or restarted
  type: list
  elements: str
bind_mode:
  description: Bind mode in effect as the forwarder reports it (V(copy) or V(zerocopy)).
  returned: when running
  type: str
  sample: copy
threads:
  description: Threads of the forwarder with the CPUs each may run on (Cpus_allowed_list).
  returned: when running
  type: list
  elements: dict
  sample: [{tid: 4242, name: kbypass-fwd, cpus: [0, 1]}, {tid: 4243, name: kbypass-fwd, cpus: [1]}]
cpus_in_effect:
  description: CPUs the worker threads are allowed on, as read from /proc.
  returned: when running
  type: list
  elements: int
  sample: [1]
stats:
  description: Latest content of the forwarder's stats file (see docs/contracts.md).
  returned: when running
  type: dict
  sample: {running: true, rx_packets: 100, tx_packets: 100, bind_mode: copy}
paths:
  description: Runtime files of the instance.
  returned: always
  type: dict
  sample: {pid: /run/kbypass/forwarder/echo.pid, log: /run/kbypass/forwarder/echo.log}
problems:
  description: Missing prerequisites that would make the start fail (check mode only; also warned).
  returned: in check mode when prerequisites are missing
  type: list
  elements: str
instances:
  description:
    - Names of every instance with runtime files in O(state_dir) after the task, this one
      included when it has any. The forwarder role stops those it does not list.
  returned: always
  type: list
  elements: str
  sample: [echo-ns1-veth0]
restart_reasons:
  description:
    - Why a running forwarder with the same configuration was restarted. It could not
      receive through the program attached now (its sockets are registered in another
      xsks_map, it runs in a namespace that no longer carries the name) or its binary was
      replaced.
  returned: when a running forwarder was unhealthy
  type: list
  elements: str
removed:
  description: Runtime files removed by a stop.
  returned: when state is stopped
  type: list
  elements: str
'''

import os
import re
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kbypass.xdp.plugins.module_utils._common import (
    default_pin_dir,
    format_cpulist,
    ifname_error,
    netns_error,
    prune_dir,
    state_dir_error,
    where,
)
from ansible_collections.kbypass.xdp.plugins.module_utils import _bpf, _fwdopts, _netns, _xdp
from ansible_collections.kbypass.xdp.plugins.module_utils._deps import require_pyroute2
from ansible_collections.kbypass.xdp.plugins.module_utils import _supervise as sv

UNIT_TEMPLATE = 'kbypass-fwd'
MAX_QUEUES = 64  # XSKMAP entries in xdp_steer.c

ARGUMENT_SPEC = dict(
    name=dict(type='str', required=True),
    state=dict(type='str', default='started', choices=['started', 'stopped', 'restarted']),
    mode=dict(type='str', default='echo', choices=['rxdrop', 'echo', 'l2fwd', 'kernel']),
    interface=dict(type='str'),
    interface2=dict(type='str'),
    netns=dict(type='str'),
    pin_dir=dict(type='path'),
    pin_dir2=dict(type='path'),
    queues=dict(type='list', elements='int', default=[0]),
    cpus=dict(type='list', elements='int', default=[]),
    bind_mode=dict(type='str', default='auto', choices=['auto', 'copy', 'zerocopy']),
    binary=dict(type='path', default='/usr/local/bin/kbypass-fwd'),
    supervisor=dict(type='str', default='auto', choices=['auto', 'process', 'systemd']),
    state_dir=dict(type='path', default=sv.FORWARDER_STATE_DIR),
    start_timeout=dict(type='float', default=10.0),
    stop_timeout=dict(type='float', default=5.0),
    **_fwdopts.argument_spec()
)


# --------------------------------------------------------------------------- pure logic
def validate_params(p, online_cpus=None):
    """Every problem with the arguments as a list of messages (empty when fine).

    Only looks at the arguments (and the list of online CPUs): no system access.
    """
    errors = []
    err = sv.instance_name_error(p['name'])
    if err:
        errors.append(err)
    err = state_dir_error(p.get('state_dir'), 'state_dir')
    if err:
        errors.append(err)
    if p['state'] == 'stopped':
        return errors
    for key in ('interface', 'interface2', 'tap'):
        if p.get(key) is not None:
            err = ifname_error(p[key])
            if err:
                errors.append('%s: %s' % (key, err))
    err = netns_error(p.get('netns'))
    if err:
        errors.append(err)
    if p['mode'] == 'l2fwd' and not p.get('interface2'):
        errors.append('mode l2fwd needs interface2 (the egress interface)')
    if p['mode'] != 'l2fwd' and p.get('interface2'):
        errors.append('interface2 is only used by mode l2fwd, not by mode %s' % p['mode'])
    if p.get('tap') and p['mode'] != 'kernel':
        errors.append('tap is only used by mode kernel, not by mode %s' % p['mode'])
    if p.get('pin_dir2') and p['mode'] != 'l2fwd':
        errors.append('pin_dir2 is only used by mode l2fwd')
    queues = p.get('queues') or []
    if not queues:
        errors.append('queues is empty: give at least one RX queue index')
    elif len(set(queues)) != len(queues):
        errors.append('queues %s contains duplicates' % (queues,))
    bad = [q for q in queues if q < 0 or q >= MAX_QUEUES]
    if bad:
        errors.append('queue indices %s out of range 0-%d (the XSKMAP has %d entries)'
                      % (bad, MAX_QUEUES - 1, MAX_QUEUES))
    cpus = p.get('cpus') or []
    if len(set(cpus)) != len(cpus):
        errors.append('cpus %s contains duplicates' % (cpus,))
    if online_cpus is not None:
        missing = sorted(set(c for c in cpus if c not in online_cpus))
        if missing:
            errors.append('cpus %s are not online on this host (online: %s)'
                          % (missing, format_cpulist(online_cpus)))
    errors.extend(_fwdopts.errors(p))
    for key in ('start_timeout', 'stop_timeout'):
        if p.get(key) is not None and p[key] <= 0:
            errors.append('%s must be positive' % key)
    return errors


def effective_pin_dir(p):
    return p.get('pin_dir') or default_pin_dir(p['interface'], p.get('netns'))


def build_argv(p, stats_path):
    """The forwarder's command line for these arguments (docs/contracts.md CLI)."""
    argv = [p['binary'], '--iface', p['interface']]
    if p.get('interface2'):
        argv += ['--iface2', p['interface2']]
    argv += ['--mode', p['mode']]
    if p.get('netns'):
        argv += ['--netns', p['netns']]
    argv += ['--pin-dir', effective_pin_dir(p)]
    if p.get('pin_dir2'):
        argv += ['--pin-dir2', p['pin_dir2']]
    argv += ['--queues', ','.join(str(q) for q in p['queues'])]
    if p.get('cpus'):
        argv += ['--cpus', ','.join(str(c) for c in p['cpus'])]
    argv += ['--bind', p['bind_mode']]
    argv += _fwdopts.argv(p)
    argv += ['--stats-file', stats_path, '--quiet']
    return argv


def compute_plan(state, status, current, desired, unhealthy=None):
    """Decide what to do.

    ``status`` is 'running', 'dead' (runtime files without a live process) or 'absent';
    ``current`` and ``desired`` are ``{'argv': [...], 'supervisor': ...}`` (or None);
    ``unhealthy`` lists why a running forwarder cannot receive through the program
    attached now (health_problems()): such a forwarder is restarted.
    Returns one of 'none', 'start', 'restart', 'stop', 'cleanup'.
    """
    if state == 'stopped':
        return {'running': 'stop', 'dead': 'cleanup'}.get(status, 'none')
    if status != 'running':
        return 'start'
    if state == 'restarted' or unhealthy:
        return 'restart'
    same = (current is not None and desired is not None
            and current.get('argv') == desired.get('argv')
            and current.get('supervisor') == desired.get('supervisor')
            and list(current.get('cpus') or []) == list(desired.get('cpus') or []))
    return 'none' if same else 'restart'


def attachment_problems(ifname, where, pin_dir, att):
    """Why the pins in ``pin_dir`` are not those of the program attached to ``ifname``.

    ``att`` is attachment_of()'s view: ``prog_id`` attached now (None: nothing),
    ``map_ids`` (the maps that program uses), ``pinned_xskmap`` (id of the pinned
    xsks_map). A pin dir of another interface's attachment would steal its traffic.
    """
    if att is None:
        return []
    if not att.get('prog_id'):
        return ['no XDP program is attached to %s in %s, so nothing reaches the '
                'forwarder: attach the steering program first (kbypass.xdp.xdp_attach)'
                % (ifname, where)]
    if att.get('pinned_xskmap') not in (att.get('map_ids') or []):
        return ['pin_dir %s belongs to another attachment: its xsks_map (map id %s) is not '
                'used by the program attached to %s in %s (program id %d, maps %s); use the '
                'pin_dir of that attachment (omit pin_dir for the default)'
                % (pin_dir, att.get('pinned_xskmap'), ifname, where, att['prog_id'],
                   ','.join(str(i) for i in att.get('map_ids') or []) or 'none')]
    return []


def health_problems(ifname, where, att, proc):
    """Why a running forwarder does not receive through the program attached now.

    ``att``: attachment_of() (plus ``netns``, the (dev, inode) of the namespace that now
    carries the name); ``proc``: the forwarder as /proc shows it: ``xskmaps`` (XSKMAP ids
    it holds, i.e. registered its sockets in), ``netns`` (dev, inode), ``exe_replaced``.
    """
    out = []
    if proc.get('exe_replaced'):
        out.append('its binary was replaced or removed since it started (upgrade): it still '
                   'runs the old one')
    if att.get('netns') and proc.get('netns') and att['netns'] != proc['netns']:
        out.append('it runs in a network namespace that no longer carries the name of %s '
                   '(the namespace was deleted or re-created)' % where)
    held = proc.get('xskmaps')
    if att.get('map_ids') and held is not None and not set(held) & set(att['map_ids']):
        out.append('its sockets are registered in xsks_map id %s, but the program attached '
                   'to %s in %s now uses xsks_map id %s (re-attached with new maps, e.g. '
                   'after bpffs was remounted)'
                   % (','.join(str(i) for i in held) or 'none', ifname, where,
                      att.get('pinned_xskmap')))
    return out


def busy_queue_problems(ifname, netns, queues, others):
    """Queues of ``ifname`` in ``netns`` that another forwarder (``others``: pid -> argv)
    already binds; a second AF_XDP socket on a queue fails with EBUSY."""
    out = []
    for pid, argv in sorted(others.items()):
        opts = {}
        for i, a in enumerate(argv[:-1]):
            if a.startswith('--'):
                opts.setdefault(a, argv[i + 1])
        if opts.get('--iface') != ifname or opts.get('--netns') != netns:
            continue
        try:
            theirs = set(int(q) for q in opts.get('--queues', '0').split(','))
        except ValueError:
            continue
        both = sorted(theirs & set(queues))
        if both:
            out.append('queue %s of %s is already bound by another forwarder (pid %d, %s): '
                       'stop that one first or pick another queue'
                       % (','.join(str(q) for q in both), ifname, pid,
                          opts.get('--stats-file', '?')))
    return out


def parse_rx_queues(names):
    """['rx-0', 'tx-0', 'rx-1'] -> [0, 1]."""
    out = []
    for n in names:
        m = re.match(r'^rx-(\d+)$', n.strip())
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


def is_instance_argv(stats_path):
    """Matcher for /proc scans: a kbypass-fwd whose --stats-file is this instance's."""
    def match(argv):
        if not sv.argv_runs(argv, 'kbypass-fwd'):
            return False
        for i, a in enumerate(argv[:-1]):
            if a == '--stats-file' and argv[i + 1] == stats_path:
                return True
        return False
    return match


# --------------------------------------------------------------------------- the module
class Forwarder(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.paths = sv.InstancePaths(self.p['name'], self.p['state_dir'])
        self.supervisor = self._pick_supervisor()
        self.unit = None
        self.attachment = None
        if self.supervisor == 'systemd':
            systemctl = module.get_bin_path('systemctl')
            if not (systemctl and sv.systemd_is_pid1()):
                if self.p['state'] != 'stopped':
                    module.fail_json(msg='supervisor systemd was requested but systemd is not '
                                         'PID 1 on this host (no /run/systemd/system): use '
                                         'supervisor process or auto')
                self.supervisor = 'process'  # nothing can run under systemd here
            else:
                self.unit = sv.SystemdUnit(self._run, UNIT_TEMPLATE, self.p['name'],
                                           systemctl=systemctl,
                                           unit_dir=sv.SYSTEMD_RUNTIME_UNIT_DIR)

    def _run(self, argv):
        return self.module.run_command(argv)

    def _pick_supervisor(self):
        if self.p['supervisor'] != 'auto':
            return self.p['supervisor']
        return 'systemd' if sv.systemd_is_pid1() else 'process'

    # ---- current state
    def current(self):
        args = sv.read_json(self.paths.args)
        pid, start = sv.read_pidfile(self.paths.pid)
        if self.unit is not None and (args or {}).get('supervisor') == 'systemd':
            main = self.unit.main_pid() if self.unit.is_active() else None
            if main:
                st = sv.proc_stat(main)
                pid, start = main, (st or {}).get('start_time')
        exe = os.path.basename((args or {}).get('argv', [''])[0] or '') or None
        alive = bool(pid) and sv.is_alive(pid, start, exe_name=exe)
        if alive:
            status = 'running'
        elif self.paths.existing() or self._orphans():
            status = 'dead'
        else:
            status = 'absent'
        return status, (pid if alive else None), (start if alive else None), args

    def _orphans(self):
        return sv.find_processes(is_instance_argv(self.paths.stats))

    # ---- prerequisites on the system (read-only)
    def prerequisite_errors(self):
        p = self.p
        errors = []
        binary = p['binary']
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            errors.append('forwarder binary %s is missing or not executable: run the '
                          'kbypass.xdp.forwarder role (it builds and installs it) or set binary'
                          % binary)
        if not _netns.netns_exists(p.get('netns')):
            errors.append('network namespace %s does not exist (no %s): create it first '
                          '(kbypass.xdp.netns_veth)' % (p['netns'], _netns.netns_path(p['netns'])))
            return errors
        here = where(p.get('netns'))
        ifaces = [p['interface']] + ([p['interface2']] if p.get('interface2') else [])
        for idx, ifname in enumerate(ifaces):
            queues, err = self.rx_queues(ifname, p.get('netns'))
            if err:
                errors.append(err)
                continue
            if idx == 0:
                missing = [q for q in p['queues'] if q not in queues]
                if missing:
                    errors.append('queue %s does not exist on %s in %s (%d RX queue%s: %s)'
                                  % (','.join(str(q) for q in missing), ifname, here,
                                     len(queues), '' if len(queues) == 1 else 's',
                                     ','.join(str(q) for q in queues)))
        pin = effective_pin_dir(p)
        if not os.path.exists(os.path.join(pin, 'xsks_map')):
            errors.append('no xsks_map pinned at %s: attach the steering program first '
                          '(kbypass.xdp.xdp_attach)' % pin)
        elif not errors:
            self.attachment = self.attachment_of()
            errors.extend(attachment_problems(p['interface'], here, pin, self.attachment))
        if p.get('pin_dir2') and not os.path.exists(os.path.join(p['pin_dir2'], 'xsks_map')):
            errors.append('no xsks_map pinned at %s (pin_dir2)' % p['pin_dir2'])
        errors.extend(busy_queue_problems(p['interface'], p.get('netns'), p['queues'],
                                          self.other_forwarders()))
        return errors

    def attachment_of(self):
        """The kernel's view of the attachment the forwarder needs (see
        attachment_problems()); None when it cannot be read, with a warning."""
        p = self.p
        try:
            link = _xdp.query(p['interface'], p.get('netns'))
            prog_id = (link or {}).get('xdp', {}).get('prog_id')
            map_ids = _bpf.prog_info_by_id(prog_id)['map_ids'] if prog_id else []
            pinned = _bpf.pinned_map_info(os.path.join(effective_pin_dir(p), 'xsks_map'))
            ns = _netns.netns_path(p['netns']) if p.get('netns') else '/proc/1/ns/net'
            st = os.stat(ns)
        except (_xdp.XdpError, OSError) as e:
            self.module.warn('cannot read the XDP attachment of %s: %s' % (p['interface'], e))
            return None
        return {'prog_id': prog_id, 'map_ids': map_ids,
                'pinned_xskmap': (pinned or {}).get('id'), 'netns': (st.st_dev, st.st_ino)}

    def other_forwarders(self):
        """pid -> argv of every kbypass-fwd that is not this instance."""
        mine = is_instance_argv(self.paths.stats)
        out = {}
        for pid in sv.find_processes(lambda argv: sv.argv_runs(argv, 'kbypass-fwd')
                                     and not mine(argv)):
            out[pid] = sv.proc_cmdline(pid) or []
        return out

    def health(self, pid):
        """health_problems() of the running forwarder ``pid`` ([] when unknown)."""
        if self.attachment is None or not pid:
            return []
        proc = {'xskmaps': sv.proc_map_ids(pid), 'netns': sv.proc_netns_inode(pid),
                'exe_replaced': sv.proc_exe_replaced(pid, self.p['binary'])}
        return health_problems(self.p['interface'], where(self.p.get('netns')), self.attachment,
                               proc)

    def rx_queues(self, ifname, netns):
        """RX queue indices of ``ifname`` from sysfs as seen inside its namespace."""
        qdir = '/sys/class/net/%s/queues' % ifname
        try:
            names = _netns.fs_op(self.module, netns, listdir=[qdir])['list'][qdir]
        except _netns.HelperError as e:
            return [], str(e)
        if names is None:
            return [], 'interface %s does not exist in %s' % (ifname, where(netns))
        return parse_rx_queues(names), None

    # ---- actions
    def stop(self, pid, start):
        if self.unit is not None:
            try:
                self.unit.stop()
            except RuntimeError as e:
                self.module.fail_json(msg=str(e))
        try:
            if pid:
                sv.terminate(pid, start, term_timeout=self.p['stop_timeout'])
            for orphan in self._orphans():
                st = sv.proc_stat(orphan)
                sv.terminate(orphan, (st or {}).get('start_time'),
                             term_timeout=self.p['stop_timeout'])
        except RuntimeError as e:
            self.module.fail_json(msg='could not stop forwarder %s: %s' % (self.p['name'], e))

    def start(self, argv, cpus):
        """Start the forwarder with ``argv`` (worker threads on ``cpus``): (pid, start_time, None) once it reports
        running, else (None, None, message) with nothing of it left running."""
        p = self.p
        try:
            if not os.path.isdir(self.paths.state_dir):
                os.makedirs(self.paths.state_dir, 0o755)
            sv.remove_files([self.paths.stats])
        except OSError as e:
            return None, None, ('cannot use state_dir %s: %s'
                                % (self.paths.state_dir, e.strerror or e))
        popen = None
        if self.unit is not None:
            try:
                pid = self.unit.start(argv, cpus, self.paths.log)
            except RuntimeError as e:
                return None, None, str(e)
        else:
            try:
                popen = sv.spawn_detached(argv, self.paths.log)
            except OSError as e:
                return None, None, 'could not start %s: %s' % (argv[0], e.strerror or e)
            pid = popen.pid
        st = sv.proc_stat(pid) if pid else None
        start = (st or {}).get('start_time')
        if pid and start is not None:
            sv.write_pidfile(self.paths.pid, pid, start)
        sv.write_json_atomic(self.paths.args, {
            'name': p['name'], 'argv': argv, 'supervisor': self.supervisor,
            'cpus': cpus, 'started_at': time.time(), 'pid': pid})
        stats, why = self.wait_running(pid, start, popen)
        if stats is not None:
            return pid, start, None
        try:
            if self.unit is not None:  # also stops systemd's Restart= retries
                self.unit.stop()
            if pid:
                sv.terminate(pid, start, term_timeout=self.p['stop_timeout'], popen=popen)
        except RuntimeError:
            pass
        sv.remove_files([self.paths.pid, self.paths.args, self.paths.stats])
        # only what this start wrote: an earlier run's last line would mislead
        lines = [ln for ln in sv.log_since_last_start(sv.log_tail(self.paths.log))
                 if ln.strip()]
        return None, None, '%s%s' % (why, (': ' + lines[-1]) if lines else '')

    def wait_running(self, pid, start, popen):
        deadline = time.monotonic() + self.p['start_timeout']
        while True:
            if popen is not None and popen.poll() is not None:
                return None, 'exited with status %d before its sockets were bound' % popen.returncode
            if popen is None and not (pid and sv.is_alive(pid, start)):
                return None, 'exited before its sockets were bound'
            stats = sv.read_json(self.paths.stats)
            if stats and stats.get('running') and stats.get('pid') in (None, pid):
                return stats, None
            if time.monotonic() >= deadline:
                return None, ('did not report running in its stats file within %.0f s'
                              % self.p['start_timeout'])
            time.sleep(0.1)


def config_view(argv, supervisor, cpus):
    if argv is None:
        return {}
    return {'argv': argv, 'supervisor': supervisor, 'cpus': list(cpus or [])}


def fail_start(module, fwd, result, action, current, why):
    """A start failed. After a restart the old forwarder was stopped: bring its
    configuration back when it had one, and say (changed=true) what runs now."""
    msg = 'forwarder %s %s' % (fwd.p['name'], why)
    old = (current or {}).get('argv') if action == 'restart' else None
    if action == 'restart' or (action == 'start' and current):
        result['changed'] = True  # something was stopped or cleaned up
    if old and old != result.get('argv'):
        pid, _start, why_old = fwd.start(old, current.get('cpus') or [])
        if pid:
            msg += ('; the previous configuration was started again (pid %d), the new one is '
                    'not in effect' % pid)
            result.update(running=True, pid=pid)
        else:
            msg += '; the previous configuration failed to start again too (%s): the ' \
                   'forwarder is DOWN' % why_old
            result['running'] = False
    elif action == 'restart':
        msg += ': the forwarder that ran before was stopped, it is DOWN'
        result['running'] = False
    else:
        result['running'] = False
    result['instances'] = sv.instance_names(fwd.paths.state_dir)
    module.fail_json(msg=msg, log_path=fwd.paths.log, log_tail=sv.log_tail(fwd.paths.log),
                     **result)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[('state', 'started', ['interface']),
                     ('state', 'restarted', ['interface'])],
        supports_check_mode=True,
    )
    p = module.params
    errors = validate_params(p, sv.online_cpus())
    if errors:
        module.fail_json(msg='invalid arguments: ' + '; '.join(errors), errors=errors)
    if p['state'] != 'stopped':
        require_pyroute2(module)  # reads the XDP attachment (health, owner of the pins)

    fwd = Forwarder(module)
    paths = fwd.paths
    result = dict(changed=False, name=p['name'], supervisor=fwd.supervisor,
                  paths=dict(pid=paths.pid, log=paths.log, stats=paths.stats, args=paths.args))

    status, pid, start, current = fwd.current()
    desired = None
    if p['state'] != 'stopped':
        argv = build_argv(p, paths.stats)
        desired = {'argv': argv, 'supervisor': fwd.supervisor, 'cpus': p['cpus']}
        result['argv'] = argv
        problems = fwd.prerequisite_errors()
        if problems:
            if module.check_mode:
                result['problems'] = problems
                for msg in problems:
                    module.warn(msg)
            else:
                module.fail_json(msg='cannot start forwarder %s: %s'
                                 % (p['name'], '; '.join(problems)), errors=problems, **result)
    unhealthy = fwd.health(pid) if status == 'running' and desired else []
    action = compute_plan(p['state'], status, current, desired, unhealthy)
    if unhealthy:
        result['restart_reasons'] = unhealthy
        module.warn('forwarder %s (pid %s) is restarted: %s' % (p['name'], pid, '; '.join(unhealthy)))
    result['operation'] = action
    result['changed'] = action != 'none'

    before = config_view((current or {}).get('argv'), (current or {}).get('supervisor'),
                         (current or {}).get('cpus')) if status == 'running' else {}
    after = config_view(desired['argv'], desired['supervisor'], desired['cpus']) if desired else {}
    if module._diff:
        result['diff'] = dict(before=before, after=after)

    if not module.check_mode:
        if action in ('stop', 'cleanup', 'restart') or (action == 'start' and status == 'dead'):
            fwd.stop(pid, start)
        if action in ('stop', 'cleanup'):
            result['removed'] = sv.remove_files(paths.all())
            prune_dir(paths.state_dir)  # the last instance's files were its content
            pid = None
        elif action in ('start', 'restart'):
            sv.remove_files([paths.pid, paths.args])
            pid, start, why = fwd.start(desired['argv'], desired['cpus'])
            if why:
                fail_start(module, fwd, result, action, current, why)
    elif action in ('stop', 'cleanup'):
        result['removed'] = paths.existing()
        pid = None

    result['instances'] = sv.instance_names(paths.state_dir)
    result['running'] = bool(pid)
    if pid:
        result['pid'] = pid
        stats = sv.read_json(paths.stats) or {}
        result['stats'] = stats
        result['bind_mode'] = stats.get('bind_mode')
        threads = sv.thread_affinity(pid)
        result['threads'] = threads
        result['cpus_in_effect'] = sv.effective_cpus(threads)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
