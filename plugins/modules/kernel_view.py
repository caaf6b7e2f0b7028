#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: kernel_view
short_description: What the kernel sees of the kernel-bypass path, in one JSON document
version_added: 0.2.0
description:
  - Collects the kernel-level observation steps of an AF_XDP bench in one place, per host -
    the network namespaces; per namespace its links with counters (C(ip -j -s link show)),
    their XDP attachments (C(bpftool -j net show)) and C(ethtool -S) counters; the XDP
    programs attached there and their maps (C(bpftool -j prog show), C(bpftool -j map show));
    the forwarders' stats files and, from them, which queues have AF_XDP sockets
    registered (user space cannot read socket fds out of an XSKMAP).
  - Returns C(note), a short Markdown text that explains why C(tcpdump) on the device under
    test shows no steered packets and which commands show them instead, for a report.
  - Read-only.
author:
  - kbypass.xdp developers (@kbypass)
requirements:
  - bpftool, iproute2 and ethtool on the target
options:
  namespaces:
    description:
      - Named network namespaces to look into; the root namespace is always included.
        Default all of them (C(/run/netns)).
    type: list
    elements: str
  forwarder_state_dir:
    description: Directory of the forwarders' C(<instance>.stats.json) files.
    type: path
    default: /run/kbypass/forwarder
  bpftool:
    description: bpftool executable.
    type: str
    default: bpftool
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes.
'''

EXAMPLES = r'''
- name: What the kernel sees, for the report
  kbypass.xdp.kernel_view:
    namespaces: [ns1, ns2]
  register: kernel

- name: Show which queues have AF_XDP sockets
  ansible.builtin.debug:
    var: kernel.view.xsk_registrations
'''

RETURN = r'''
view:
  description: The collected state.
  returned: always
  type: dict
  contains:
    namespaces:
      description: Per namespace (C(init_net) for the root one) C(links), C(xdp) (bpftool net show) and C(ethtool_stats) by interface.
      type: dict
    programs:
      description: The XDP programs attached in those namespaces (bpftool prog show).
      type: list
    maps:
      description: Their maps (bpftool map show).
      type: list
    forwarders:
      description: Forwarder stats files by instance name.
      type: dict
    xsk_registrations:
      description: Per forwarder instance the interface, namespace and queues whose XSKMAP entries it registered.
      type: list
    errors:
      description: Commands that failed (a missing tool, a vanished namespace), with their message.
      type: list
  sample: {namespaces: {ns1: {links: [], xdp: [], ethtool_stats: {veth0: {rx_queue_0_xdp_packets: 10}}}}}
note:
  description: Markdown - why tcpdump on the device under test shows no steered packets.
  returned: always
  type: str
'''

import glob
import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kbypass.xdp.plugins.module_utils import _ethtool, _netns
from ansible_collections.kbypass.xdp.plugins.module_utils._report import KERNEL_NOTE

ROOT_NS = 'init_net'

NOTE = KERNEL_NOTE  # one text: the verify report renders the same note


# --- pure logic ----------------------------------------------------------------------
def attached_prog_ids(net_show):
    """Program ids of the XDP attachments in one ``bpftool -j net show`` document."""
    ids = set()
    for section in net_show or []:
        for att in section.get('xdp', []):
            for prog in att.get('multi_attachments') or [att]:
                if prog.get('id'):
                    ids.add(prog['id'])
    return ids


def xsk_registrations(forwarders):
    """Which queues each forwarder bound an AF_XDP socket to (its own registration)."""
    out = []
    for name, st in sorted(forwarders.items()):
        for iface in (st.get('iface'), st.get('iface2')):
            if iface:
                out.append({'instance': name, 'iface': iface, 'netns': st.get('netns'),
                            'queues': st.get('queues'), 'running': st.get('running'),
                            'bind_mode': st.get('bind_mode')})
    return out


# --- the machine ---------------------------------------------------------------------
def collect_netns(module, netns, errors):
    label = netns or ROOT_NS
    links, err = _netns.run_json(module, ['ip', '-j', '-s', 'link', 'show'], netns)
    if err:
        errors.append({'netns': label, 'command': 'ip -s link show', 'error': err})
    xdp, err = _netns.run_json(module, [module.params['bpftool'], '-j', 'net', 'show'], netns)
    if err:
        errors.append({'netns': label, 'command': 'bpftool net show', 'error': err})
    stats = {}
    for link in links or []:
        name = link.get('ifname')
        if not name or link.get('link_type') == 'loopback':
            continue
        rc, out, err = _netns.run(module, ['ethtool', '-S', name], netns)
        if rc == 0:
            stats[name] = _ethtool.parse_stats(out)
    return {'links': links or [], 'xdp': xdp or [], 'ethtool_stats': stats}


def read_forwarders(state_dir, errors):
    out = {}
    for path in sorted(glob.glob(os.path.join(state_dir, '*.stats.json'))):
        try:
            with open(path) as f:
                out[os.path.basename(path)[:-len('.stats.json')]] = json.load(f)
        except (OSError, ValueError) as e:
            errors.append({'file': path, 'error': str(e)})
    return out


def main():
    module = AnsibleModule(
        argument_spec=dict(
            namespaces=dict(type='list', elements='str'),
            forwarder_state_dir=dict(type='path', default='/run/kbypass/forwarder'),
            bpftool=dict(type='str', default='bpftool'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    names = p['namespaces']
    if names is None:
        names = sorted(os.listdir('/run/netns')) if os.path.isdir('/run/netns') else []
    missing = [n for n in names if not _netns.netns_exists(n)]
    if missing:
        module.fail_json(msg='network namespace(s) %s do not exist' % ', '.join(missing))
    errors = []
    spaces = dict(((n or ROOT_NS), collect_netns(module, n, errors)) for n in [None] + names)
    ids = set()
    for ns in spaces.values():
        ids |= attached_prog_ids(ns['xdp'])
    progs, err = _netns.run_json(module, [p['bpftool'], '-j', 'prog', 'show'])
    if err:
        errors.append({'command': 'bpftool prog show', 'error': err})
    progs = [pr for pr in progs or [] if pr.get('id') in ids]
    map_ids = set(m for pr in progs for m in pr.get('map_ids', []))
    maps, err = _netns.run_json(module, [p['bpftool'], '-j', 'map', 'show'])
    if err:
        errors.append({'command': 'bpftool map show', 'error': err})
    forwarders = read_forwarders(p['forwarder_state_dir'], errors)
    view = {'namespaces': spaces, 'programs': progs,
            'maps': [m for m in maps or [] if m.get('id') in map_ids],
            'forwarders': forwarders, 'xsk_registrations': xsk_registrations(forwarders),
            'errors': errors}
    module.exit_json(changed=False, view=view, note=NOTE)


if __name__ == '__main__':
    main()
