#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: ovs_service
short_description: Start or stop the Open vSwitch daemons (ovsdb-server, ovs-vswitchd)
version_added: "0.2.0"
description:
  - Starts C(ovsdb-server) and C(ovs-vswitchd) through systemd where systemd is PID 1,
    otherwise with the distribution's C(ovs-ctl), which runs them with their own pidfiles
    under a monitor process; then waits until C(ovs-vsctl) answers and C(ovs-vswitchd) runs.
  - Remembers that it started them (a marker under O(state_dir)), and which Open vSwitch
    files did not exist before (database, system id). O(state=stopped) stops only daemons
    this module started (unless O(force)) and removes those files again, so nothing of ours
    stays behind. Daemons someone else started are left alone.
  - PMD threads of the userspace datapath spin a CPU core, so stop the daemons when done.
author:
  - kbypass.xdp developers (@kbypass)
attributes:
  check_mode:
    support: full
    description: Reports what would be started or stopped; starts and stops nothing.
  diff_mode:
    support: full
    description: Returns whether the daemons run before and after.
options:
  state:
    description: C(started) or C(stopped).
    type: str
    choices: [started, stopped]
    default: started
  manager:
    description:
      - How to run the daemons. C(auto) uses systemd when it is PID 1, else C(ovs-ctl).
    type: str
    choices: [auto, systemd, ovs-ctl]
    default: auto
  service:
    description: The systemd unit (Debian/Ubuntu C(openvswitch-switch), RHEL C(openvswitch)).
    type: str
    default: openvswitch-switch
  ovs_ctl:
    description: Path of C(ovs-ctl).
    type: path
    default: /usr/share/openvswitch/scripts/ovs-ctl
  run_dir:
    description: Where the daemons keep their pidfiles and sockets.
    type: path
    default: /var/run/openvswitch
  db_dir:
    description: Where the OVSDB file and the system id live.
    type: path
    default: /etc/openvswitch
  log_dir:
    description: Where the daemons log (quoted in failures).
    type: path
    default: /var/log/openvswitch
  state_dir:
    description: Where this module keeps its marker.
    type: path
    default: /run/kbypass/ovs
  timeout:
    description: Seconds to wait for the daemons to answer or to exit.
    type: int
    default: 30
  mlockall:
    description:
      - Let C(ovs-vswitchd) lock all its memory (C(ovs-ctl) only). Off by default because a
        capped RLIMIT_MEMLOCK (containers, CI) makes later allocations fail.
    type: bool
    default: false
  force:
    description: With O(state=stopped), also stop daemons this module did not start.
    type: bool
    default: false
  adopt:
    description:
      - With O(state=started), count daemons that already run as started by this module,
        so O(state=stopped) stops them. For a package installation that has just started
        them itself (Debian's postinst on a systemd host).
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Start Open vSwitch (systemd where it is PID 1, else ovs-ctl)
  kbypass.xdp.ovs_service:
    state: started

- name: Stop the daemons we started (PMD threads spin a core)
  kbypass.xdp.ovs_service:
    state: stopped
'''

RETURN = r'''
running:
  description: Whether ovs-vswitchd runs and ovs-vsctl answers after the task.
  returned: always
  type: bool
ours:
  description: Whether the running daemons were started by this module.
  returned: always
  type: bool
manager:
  description: C(systemd) or C(ovs-ctl), the way the daemons were (or would be) run.
  returned: always
  type: str
removed:
  description: Open vSwitch files removed on stop because this module's start created them.
  returned: when state is stopped
  type: list
  elements: str
'''

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kbypass.xdp.plugins.module_utils import _supervise as sv
from ansible_collections.kbypass.xdp.plugins.module_utils._common import prune_dir
from ansible_collections.kbypass.xdp.plugins.module_utils._ovs import OVS_MISSING

DAEMONS = ('ovs-vswitchd', 'ovsdb-server')
# files a first start creates (ovs-ctl --system-id=random, an empty database)
CREATED_ON_START = ('conf.db', '.conf.db.~lock~', 'system-id.conf')


class Service(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.marker = os.path.join(self.p['state_dir'], 'service.json')

    # --- reading ----------------------------------------------------------------------
    def pid(self, daemon):
        pid, _start = sv.read_pidfile(os.path.join(self.p['run_dir'], '%s.pid' % daemon))
        return pid if pid and sv.is_alive(pid, exe_name=daemon) else None

    def answers(self):
        if not self.module.get_bin_path('ovs-vsctl'):
            return False
        rc, _out, _err = self.module.run_command(
            ['ovs-vsctl', '--timeout=2', '--no-wait', 'get', 'Open_vSwitch', '.', 'ovs_version'])
        return rc == 0

    def running(self):
        return bool(self.pid('ovs-vswitchd')) and self.answers()

    def read_marker(self):
        return sv.read_json(self.marker)

    def choose_manager(self):
        if self.p['manager'] != 'auto':
            return self.p['manager']
        return 'systemd' if sv.systemd_is_pid1() else 'ovs-ctl'

    # --- acting ---------------------------------------------------------------------
    def run(self, argv, what):
        rc, out, err = self.module.run_command(argv, cwd='/')
        if rc != 0:
            self.module.fail_json(msg='%s failed (rc=%d): %s%s' % (
                what, rc, (err or out).strip()[-800:], self.log_hint()))

    def log_hint(self):
        tail = sv.log_tail(os.path.join(self.p['log_dir'], 'ovs-vswitchd.log'), lines=5)
        return ('; last ovs-vswitchd log lines: %s' % ' | '.join(tail.splitlines())) if tail else ''

    def start(self, manager):
        if manager == 'systemd':
            self.run(['systemctl', 'start', self.p['service']],
                     'systemctl start %s' % self.p['service'])
            return
        if not os.path.exists(self.p['ovs_ctl']):
            self.module.fail_json(msg='%s is missing: Open vSwitch is installed without its '
                                      'control script (package openvswitch-switch on '
                                      'Debian/Ubuntu, openvswitch on RHEL)' % self.p['ovs_ctl'])
        argv = [self.p['ovs_ctl'], '--system-id=random', '--no-record-hostname']
        if not self.p['mlockall']:
            argv.append('--no-mlockall')
        self.run(argv + ['start'], 'ovs-ctl start')

    def stop(self, manager):
        pids = [self.pid(d) for d in DAEMONS]
        if manager == 'systemd':
            self.run(['systemctl', 'stop', self.p['service']],
                     'systemctl stop %s' % self.p['service'])
        elif os.path.exists(self.p['ovs_ctl']):
            self.run([self.p['ovs_ctl'], 'stop'], 'ovs-ctl stop')
        for pid in pids:
            # ovs-ctl stop waits already; this also covers a removed package
            if pid and sv.is_alive(pid):
                sv.terminate(pid, None, term_timeout=self.p['timeout'], kill_timeout=3.0)

    def wait_running(self):
        deadline = time.time() + self.p['timeout']
        while time.time() < deadline:
            if self.running():
                return
            time.sleep(0.2)
        self.module.fail_json(msg='Open vSwitch did not answer within %d s: ovs-vsctl gets no '
                                  'reply or ovs-vswitchd is not running%s'
                                  % (self.p['timeout'], self.log_hint()))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type='str', choices=['started', 'stopped'], default='started'),
            manager=dict(type='str', choices=['auto', 'systemd', 'ovs-ctl'], default='auto'),
            service=dict(type='str', default='openvswitch-switch'),
            ovs_ctl=dict(type='path', default='/usr/share/openvswitch/scripts/ovs-ctl'),
            run_dir=dict(type='path', default='/var/run/openvswitch'),
            db_dir=dict(type='path', default='/etc/openvswitch'),
            log_dir=dict(type='path', default='/var/log/openvswitch'),
            state_dir=dict(type='path', default='/run/kbypass/ovs'),
            timeout=dict(type='int', default=30),
            mlockall=dict(type='bool', default=False),
            force=dict(type='bool', default=False),
            adopt=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    svc = Service(module)
    marker = svc.read_marker()
    running = svc.running()
    result = dict(changed=False, running=running, ours=bool(marker and running))
    if module.params['state'] == 'started':
        manager = (marker or {}).get('manager') or svc.choose_manager()
        result['manager'] = manager
        if running and not marker and module.params['adopt']:
            result.update(changed=True, ours=True)
            if not module.check_mode:
                os.makedirs(module.params['state_dir'], exist_ok=True)
                sv.write_json_atomic(svc.marker, {'manager': manager, 'created': [],
                                                  'started_at': time.time()})
        if not running:
            if not module.get_bin_path('ovs-vsctl') or not module.get_bin_path('ovs-vswitchd'):
                module.fail_json(msg=OVS_MISSING)
            result.update(changed=True, running=True, ours=True)
            if not module.check_mode:
                db_dir = module.params['db_dir']
                created = [os.path.join(db_dir, f) for f in CREATED_ON_START
                           if not os.path.lexists(os.path.join(db_dir, f))]
                created += (marker or {}).get('created') or []
                svc.start(manager)
                svc.wait_running()
                os.makedirs(module.params['state_dir'], exist_ok=True)
                sv.write_json_atomic(svc.marker, {'manager': manager, 'created': created,
                                                  'started_at': time.time()})
    else:
        manager = (marker or {}).get('manager') or svc.choose_manager()
        result.update(manager=manager, removed=[])
        ours = marker is not None
        if running and not ours and not module.params['force']:
            module.warn('Open vSwitch runs but was not started by kbypass.xdp: left running '
                        '(force=true stops it)')
        elif ours or (running and module.params['force']):
            result.update(changed=True, running=False, ours=False)
            if not module.check_mode:
                if running or any(svc.pid(d) for d in DAEMONS):
                    svc.stop(manager)
                result['removed'] = sv.remove_files((marker or {}).get('created') or [])
                sv.remove_files([svc.marker])
                prune_dir(module.params['state_dir'])
    if module._diff:
        result['diff'] = {'before': {'running': running},
                          'after': {'running': result['running']}}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
