#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: ovs_bridge
short_description: An Open vSwitch bridge with afxdp ports, its OpenFlow rules and PMD settings
version_added: "0.2.0"
description:
  - Reads the OVSDB (C(ovs-vsctl --format=json list)) and the bridge's flows, and changes
    only what differs, in one C(ovs-vsctl) transaction; flows with C(ovs-ofctl replace-flows)
    when C(ovs-ofctl diff-flows) finds a difference.
  - Built for the userspace datapath (O(datapath_type=netdev)) with C(afxdp) ports, whose
    options (C(xdp-mode), C(n_rxq), C(use-need-wakeup)) and C(other_config:pmd-rxq-affinity)
    are plain port options; C(pmd-cpu-mask) is a key of O(vswitch_other_config).
  - Refuses, before changing anything, an interface type this Open vSwitch lacks (one built
    without AF_XDP), an interface that does not exist, an unknown C(xdp-mode), a PMD mask or
    affinity that names a CPU this host does not have, and an interface that carries the
    kbypass steering program, another XDP program or a running kbypass forwarder.
  - When Open vSwitch cannot open a port as asked (e.g. C(xdp-mode=native-with-zerocopy) on
    a driver without zero-copy) the module puts the previous configuration back and fails
    with the reason Open vSwitch gives.
  - ovs-vswitchd opens its ports in the network namespace it runs in; interfaces are looked
    up there (the root namespace).
author:
  - kbypass.xdp developers (@kbypass)
attributes:
  check_mode:
    support: full
    description: Computes the transaction and the flow difference; changes nothing.
  diff_mode:
    support: full
    description: Returns the declared configuration (ports, flows, other_config) before and after.
options:
  name:
    description: Bridge name.
    type: str
    required: true
  state:
    description: C(present) creates or updates the bridge; C(absent) deletes it and removes
      the O(vswitch_other_config) keys.
    type: str
    choices: [present, absent]
    default: present
  datapath_type:
    description: C(netdev) (userspace, PMD threads) or C(system) (kernel module).
    type: str
    default: netdev
  ports:
    description: The bridge's ports, one interface each, named after the Linux interface.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Port and interface name.
        type: str
        required: true
      type:
        description: Interface type (C(afxdp), C(afxdp-nonpmd), C(system), C(internal), ...).
        type: str
        default: afxdp
      options:
        description: Interface C(options), e.g. C(xdp-mode), C(n_rxq), C(use-need-wakeup).
        type: dict
        default: {}
      other_config:
        description: Interface C(other_config), e.g. C(pmd-rxq-affinity).
        type: dict
        default: {}
      ofport_request:
        description: OpenFlow port number to ask for (stable numbers for flows).
        type: int
  purge_ports:
    description: Remove ports of the bridge that O(ports) does not list.
    type: bool
    default: true
  flows:
    description:
      - The complete OpenFlow table, one C(ovs-ofctl add-flow) line each. Omit to leave
        the flows alone.
    type: list
    elements: str
  vswitch_other_config:
    description: Keys of the Open_vSwitch record's C(other_config) to set, e.g. C(pmd-cpu-mask).
    type: dict
    default: {}
  settle_timeout:
    description: Seconds to wait for ovs-vswitchd to open (or refuse) changed ports.
    type: float
    default: 10
  forwarder_state_dir:
    description: Where kbypass forwarder instances keep their files (coexistence check).
    type: path
    default: /run/kbypass/forwarder
  timeout:
    description: Seconds ovs-vsctl may wait for the database.
    type: int
    default: 10
'''

EXAMPLES = r'''
- name: Userspace bridge with an afxdp port and a second port toward another namespace
  kbypass.xdp.ovs_bridge:
    name: br0
    ports:
      - name: veth2
        options: {xdp-mode: native, n_rxq: 1, use-need-wakeup: true}
        other_config: {pmd-rxq-affinity: "0:1"}
        ofport_request: 1
      - name: veth4
        ofport_request: 2
    flows:
      - priority=100,in_port=1,actions=output:2
      - priority=100,in_port=2,actions=output:1
    vswitch_other_config:
      pmd-cpu-mask: "0x2"

- name: Remove it
  kbypass.xdp.ovs_bridge:
    name: br0
    state: absent
    vswitch_other_config:
      pmd-cpu-mask: "0x2"
'''

RETURN = r'''
commands:
  description: The ovs-vsctl sub-commands run (or that would run in check mode).
  returned: always
  type: list
  elements: list
flows_diff:
  description: Lines of C(ovs-ofctl diff-flows) (C(+) missing, C(-) extra) before the change.
  returned: always
  type: list
  elements: str
ports:
  description: Per port after the task, C(ofport), C(type), C(error) and, for afxdp ports,
    the datapath's view (C(xdp-mode-in-use) in C(datapath.config)).
  returned: when state is present
  type: dict
ovs_version:
  description: The Open vSwitch version.
  returned: always
  type: str
'''

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kbypass.xdp.plugins.module_utils import _ovs
from ansible_collections.kbypass.xdp.plugins.module_utils._supervise import online_cpus


def validate(module, cli, vswitch, ports):
    """Every reason to refuse, before anything changes."""
    p = module.params
    errors = []
    if p['datapath_type'] not in (vswitch.get('datapath_types') or []):
        errors.append('this Open vSwitch has no datapath type %r (it has %s)' % (
            p['datapath_type'], ', '.join(vswitch.get('datapath_types') or []) or 'none'))
    errors += _ovs.check_ports(ports, set(vswitch.get('iface_types') or []),
                               set(os.listdir('/sys/class/net')))
    errors += _ovs.check_cpus(p['vswitch_other_config'], ports, online_cpus())
    current = cli.bridge(p['name'])
    argvs = _ovs.read_forwarder_argvs(p['forwarder_state_dir'])
    for name, port in sorted(ports.items()):
        if port['type'] not in _ovs.AFXDP_TYPES or not os.path.exists('/sys/class/net/' + name):
            continue
        ours = name in current['ports'] and not current['ports'][name].get('error')
        errors += _ovs.xdp_owner_errors(
            name, None if ours else xdp_program(module, name),
            os.path.isdir(_ovs.default_root_pin_dir(name)), _ovs.forwarders_on(argvs, name))
    if errors:
        module.fail_json(msg='; '.join(errors), errors=errors)


def xdp_program(module, ifname):
    """``{'id', 'name'}`` of the XDP program on ``ifname`` (root namespace), or None."""
    rc, out, _err = module.run_command(['ip', '-d', '-j', 'link', 'show', 'dev', ifname])
    try:
        link = module.from_json(out)[0] if rc == 0 else {}
    except (ValueError, IndexError):
        link = {}
    prog = (link.get('xdp') or {}).get('prog')
    if not prog:
        progs = [a.get('prog') for a in (link.get('xdp') or {}).get('attached') or []]
        prog = next((x for x in progs if x), None)
    return {'id': prog.get('id'), 'name': prog.get('name')} if prog else None


def desired_ports(module):
    return dict((spec['name'], _ovs.desired_port(spec)) for spec in module.params['ports'])


def read_flows(cli, state, flows):
    """(current flows or None, diff-flows lines) for the declared ``flows``."""
    if flows is None:
        return None, []
    if not state['exists']:
        return [], ['+' + f for f in flows]
    return cli.dump_flows(state['name']), cli.flows_differ(state['name'], flows)


def settled(port, want, dp):
    """True when ovs-vswitchd refused ``port`` or runs it as ``want`` says."""
    if port is None or port.get('error'):
        return True
    if want['type'] not in _ovs.AFXDP_TYPES:
        return bool(port.get('ofport'))
    config = (dp or {}).get('config') or {}
    # the datapath lists an afxdp port with its options once it reconfigured it
    return bool(config.get('xdp-mode-in-use')) and all(
        config.get(k) == v for k, v in want['options'].items()
        if k in ('xdp-mode', 'n_rxq', 'use-need-wakeup'))


def settle(module, cli, ports):
    """Wait until ovs-vswitchd opened or refused every port; afxdp ports are reconfigured
    by the datapath after ovs-vsctl returns, so a refusal shows up a little later."""
    deadline = time.time() + module.params['settle_timeout']
    while True:
        state = cli.bridge(module.params['name'])
        dp = _ovs.parse_dpctl_show(cli.appctl('dpctl/show'))
        if all(settled(state['ports'].get(n), want, dp.get(n)) for n, want in ports.items()) \
                or time.time() > deadline:
            return state
        time.sleep(0.1)


def refused(state, ports):
    """Messages for ports ovs-vswitchd could not open as configured."""
    out = []
    for name in sorted(ports):
        port = state['ports'].get(name) or {}
        if port.get('error') or (port.get('ofport') or 0) < 0:
            mode = ports[name]['options'].get('xdp-mode')
            hint = ''
            if mode and mode != 'best-effort':
                hint = (' — xdp-mode %s was forced: the interface or its driver cannot do it '
                        '(veth has no zero-copy); xdp-mode best-effort picks the best mode '
                        'that works and reports it' % mode)
            out.append('Open vSwitch refused port %s: %s%s' % (name, port.get('error'), hint))
    return out


def rollback(module, cli, before, other_before):
    """Put the previous bridge and other_config back after a refused change."""
    p = module.params
    now = cli.bridge(p['name'])
    cmds = _ovs.plan_bridge(now, p['name'], 'present' if before['exists'] else 'absent',
                            before['datapath_type'], before['ports'], purge=True)
    restore = dict((k, other_before[k]) for k in p['vswitch_other_config'] if k in other_before)
    added = dict((k, v) for k, v in p['vswitch_other_config'].items() if k not in other_before)
    cmds += _ovs.plan_other_config(other_before, restore, 'present')
    cmds += _ovs.plan_other_config(p['vswitch_other_config'], added, 'absent')
    if cmds:
        cli.vsctl(cmds)


def port_report(cli, state):
    dp = _ovs.parse_dpctl_show(cli.appctl('dpctl/show')) if state['exists'] else {}
    return dict((name, {'ofport': port['ofport'], 'type': port['type'], 'error': port['error'],
                        'datapath': dp.get(name)})
                for name, port in state['ports'].items())


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            datapath_type=dict(type='str', default='netdev'),
            ports=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                type=dict(type='str', default='afxdp'),
                options=dict(type='dict', default={}),
                other_config=dict(type='dict', default={}),
                ofport_request=dict(type='int'),
            )),
            purge_ports=dict(type='bool', default=True),
            flows=dict(type='list', elements='str'),
            vswitch_other_config=dict(type='dict', default={}),
            settle_timeout=dict(type='float', default=10),
            forwarder_state_dir=dict(type='path', default='/run/kbypass/forwarder'),
            timeout=dict(type='int', default=10),
        ),
        supports_check_mode=True,
    )
    p = module.params
    p['vswitch_other_config'] = _ovs.ovs_map(p['vswitch_other_config'])
    absent = p['state'] == 'absent'
    if absent and not module.get_bin_path('ovs-vsctl'):
        module.exit_json(changed=False, commands=[], flows_diff=[], ovs_version=None,
                         msg='Open vSwitch is not installed: no bridge to delete')
    try:
        cli = _ovs.OvsCli(module, p['timeout'])
        if absent and not cli.answers():
            module.exit_json(changed=False, commands=[], flows_diff=[], ovs_version=None,
                             msg='Open vSwitch does not run: no bridge to delete')
        if not cli.answers():
            module.fail_json(msg='Open vSwitch does not answer (ovsdb-server not running?): '
                                 'start it with kbypass.xdp.ovs_service or the kbypass.xdp.ovs '
                                 'role')
        vswitch = cli.vswitch()
        ports = desired_ports(module)
        if p['state'] == 'present':
            validate(module, cli, vswitch, ports)
        before = cli.bridge(p['name'])
        before['name'] = p['name']
        other_before = dict(vswitch.get('other_config') or {})
        flows = p['flows'] if p['state'] == 'present' else None
        before['flows'], flows_diff = read_flows(cli, before, flows)
        cmds = _ovs.plan_bridge(before, p['name'], p['state'], p['datapath_type'], ports,
                                p['purge_ports'])
        cmds += _ovs.plan_other_config(other_before, p['vswitch_other_config'], p['state'])
        changed = bool(cmds or flows_diff)
        result = dict(changed=changed, commands=cmds, flows_diff=flows_diff,
                      ovs_version=vswitch.get('ovs_version'))
        after = before
        if changed and not module.check_mode:
            if cmds:
                cli.vsctl(cmds)
            after = settle(module, cli, ports) if p['state'] == 'present' else \
                cli.bridge(p['name'])
            errors = refused(after, ports)
            if errors:
                rollback(module, cli, before, other_before)
                module.fail_json(msg='; '.join(errors) + ' (previous configuration restored)',
                                 errors=errors, commands=cmds)
            if flows_diff:
                cli.replace_flows(p['name'], flows)
            after['flows'] = cli.dump_flows(p['name']) if flows is not None else None
        elif changed:
            after = dict(before, exists=p['state'] == 'present', datapath_type=p['datapath_type'],
                         ports=ports if p['purge_ports'] else dict(before['ports'], **ports),
                         flows=flows)
        if p['state'] == 'present' and not changed and refused(before, ports):
            # configured as asked, but ovs-vswitchd could not open it
            module.fail_json(msg='; '.join(refused(before, ports)), commands=[])
        if p['state'] == 'present':
            result['ports'] = port_report(cli, after) if not module.check_mode or \
                not changed else {}
        if module._diff:
            before['vswitch_other_config'] = dict((k, other_before.get(k))
                                                  for k in p['vswitch_other_config'])
            after['vswitch_other_config'] = (dict((k, None) for k in p['vswitch_other_config'])
                                             if p['state'] == 'absent'
                                             else dict(p['vswitch_other_config']))
            result['diff'] = {'before': _ovs.config_view(before),
                              'after': _ovs.config_view(after)}
    except _ovs.OvsError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
