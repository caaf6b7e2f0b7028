#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: xdp_facts
short_description: XDP programs, their maps and the steering counters of chosen interfaces
version_added: 0.1.0
description:
  - For each listed interface (optionally inside a network namespace) reports the attached
    XDP programs and their attach mode (driver, generic, offload), program id, tag, name,
    JIT state and maps (type, key/value size, entries), taken from C(bpftool -j net show)
    (run inside the namespace - it uses netlink), C(bpftool -j prog show id) and
    C(bpftool -j map show id). No text output is parsed.
  - When the kbypass steering program's pins exist (C(/sys/fs/bpf/kbypass/<netns or
    init_net>/<name>/)), adds its per-CPU counters summed over CPUs (seen, matched,
    redirected, redirect_missed, passed) and the steered UDP ports, read with the bpf
    syscalls.
  - The kernel refuses user-space lookups of XSKMAP entries, so for an XSKMAP only its size
    is reported; whether sockets receive traffic shows in the C(redirected) counter.
  - Read-only.
author:
  - kbypass.xdp developers (@kbypass)
requirements:
  - bpftool and iproute2 on the target; bpffs mounted at /sys/fs/bpf for the counters
options:
  interfaces:
    description:
      - Interfaces to inspect; a name (then O(netns) applies) or a dict with C(name),
        optional C(netns) and optional C(pin_dir) (default the contract's pin directory).
    type: list
    elements: raw
    required: true
  netns:
    description: Default network namespace for items that do not name one.
    type: str
  ports:
    description: Also read the steered UDP ports from the C(steer_ports) pin (65536 lookups).
    type: bool
    default: true
  ignore_missing:
    description: Report a missing interface as C(exists=false) instead of failing.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes.
  facts:
    support: full
    description: Sets C(kbypass_xdp).
seealso:
  - module: kbypass.xdp.xdp_attach
  - module: kbypass.xdp.nic_facts
'''

EXAMPLES = r'''
- name: XDP state of the test bed
  kbypass.xdp.xdp_facts:
    interfaces:
      - {name: veth0, netns: ns1}
      - {name: veth1, netns: ns2}
  register: xdp

- name: Packets the steering program redirected to AF_XDP sockets
  ansible.builtin.debug:
    msg: "{{ ansible_facts.kbypass_xdp['ns1/veth0'].steer_stats.redirected.packets }}"
'''

RETURN = r'''
interfaces:
  description: One entry per requested interface, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Interface name., type: str, returned: always}
    netns: {description: Namespace or null., type: str, returned: always}
    exists: {description: Whether the interface was found., type: bool, returned: always}
    ifindex: {description: Interface index in its namespace., type: int, returned: when exists}
    attached: {description: Whether any XDP program is attached., type: bool, returned: when exists}
    mode: {description: 'Attach mode of the first program: driver, generic or offload.', type: str, returned: when exists}
    programs:
      description: Attached programs with their maps.
      type: list
      returned: when exists
      sample: [{"id": 101, "mode": "driver", "name": "xdp_steer", "tag": "548a968b70885879",
                "type": "xdp", "jited": true, "maps": [{"id": 25, "name": "xsks_map",
                "type": "xskmap", "max_entries": 64, "bytes_key": 4, "bytes_value": 4,
                "entries_readable": false}]}]
    pin_dir: {description: Pin directory looked at., type: str, returned: when exists}
    steer_stats:
      description: Steering counters summed over CPUs, null when not pinned.
      type: dict
      returned: when exists
      sample: {"seen": {"packets": 10, "bytes": 640}, "redirected": {"packets": 8, "bytes": 512}}
    steer_ports: {description: Steered UDP ports or null., type: list, returned: when exists}
ansible_facts:
  description: Facts set by the module.
  returned: always
  type: dict
  contains:
    kbypass_xdp:
      description: The same entries keyed by C(name) or C(netns/name).
      type: dict
      returned: always
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kbypass.xdp.plugins.module_utils import _bpf, _common, _netns
from ansible_collections.kbypass.xdp.plugins.module_utils._common import default_pin_dir

XSKMAP_NOTE = ('the kernel refuses user-space lookups of XSKMAP entries; '
               'see steer_stats.redirected for socket traffic')


def normalize_interfaces(items, default_netns=None):
    """Module input -> [{'name', 'netns', 'pin_dir'}]. Raises ValueError on bad input."""
    out = _common.normalize_interfaces(items, default_netns, extra=('pin_dir',))
    for entry in out:
        entry['pin_dir'] = entry['pin_dir'] or default_pin_dir(entry['name'], entry['netns'])
    return out


def xdp_attachments(net_show, ifname):
    """``bpftool -j net show`` output -> [{mode, id}] for ``ifname``."""
    out = []
    for block in net_show or []:
        for ent in block.get('xdp') or []:
            if ent.get('devname') == ifname:
                out.append({'mode': ent.get('mode'), 'id': ent.get('id')})
    return out


def describe_program(prog, maps, mode):
    """Merge ``bpftool -j prog show`` and ``map show`` objects into our shape."""
    out = {
        'id': prog.get('id'), 'mode': mode, 'name': prog.get('name'), 'tag': prog.get('tag'),
        'type': prog.get('type'), 'jited': bool(prog.get('jited')),
        'bytes_jited': prog.get('bytes_jited'), 'bytes_xlated': prog.get('bytes_xlated'),
        'loaded_at': prog.get('loaded_at'), 'btf_id': prog.get('btf_id'),
        'map_ids': prog.get('map_ids') or [],
        'dispatcher': prog.get('name') == 'xdp_dispatcher',
        'maps': [],
    }
    for m in maps:
        item = dict((k, m.get(k)) for k in ('id', 'name', 'type', 'max_entries', 'bytes_key',
                                            'bytes_value', 'flags'))
        if m.get('type') == 'xskmap':
            item['entries_readable'] = False
            item['note'] = XSKMAP_NOTE
        out['maps'].append(item)
    return out


class Inspector(object):
    def __init__(self, module):
        self.module = module
        self.bpftool = module.get_bin_path('bpftool', required=True)
        self.ip = module.get_bin_path('ip', required=True)

    def _json(self, cmd, netns=None):
        return _netns.run_json(self.module, cmd, netns)

    def link(self, name, netns):
        data, err = self._json([self.ip, '-j', 'link', 'show', 'dev', name], netns)
        return (data[0] if data else None), err

    def interface(self, item, want_ports):
        name, netns = item['name'], item['netns']
        entry = {'name': name, 'netns': netns, 'exists': False}
        found = _netns.netns_exists(netns)
        link = self.link(name, netns)[0] if found else None
        if link is None:
            entry['error'] = _common.missing_error(name, netns, found)
            return entry
        entry.update({'exists': True, 'ifindex': link.get('ifindex')})
        net, err = self._json([self.bpftool, '-j', 'net', 'show', 'dev', name], netns)
        if err:
            self.module.fail_json(msg='bpftool net show dev %s failed: %s' % (name, err))
        programs = []
        for att in xdp_attachments(net, name):
            prog, err = self._json([self.bpftool, '-j', 'prog', 'show', 'id', str(att['id'])])
            if prog is None:
                # detached between the two calls (teardown is asynchronous)
                continue
            maps = []
            for mid in prog.get('map_ids') or []:
                m, err = self._json([self.bpftool, '-j', 'map', 'show', 'id', str(mid)])
                if m:
                    maps.append(m)
            programs.append(describe_program(prog, maps, att['mode']))
        entry['programs'] = programs
        entry['attached'] = bool(programs)
        entry['mode'] = programs[0]['mode'] if programs else None
        entry['pin_dir'] = item['pin_dir']
        entry['steer_stats'] = None
        entry['steer_ports'] = None
        entry['pin_errors'] = {}
        if os.path.exists(os.path.join(item['pin_dir'], 'steer_stats')):
            try:
                entry['steer_stats'] = _bpf.read_steer_stats(item['pin_dir'])
            except OSError as exc:
                entry['pin_errors']['steer_stats'] = str(exc)
        if want_ports and os.path.exists(
                os.path.join(item['pin_dir'], 'steer_ports')):
            try:
                entry['steer_ports'] = _bpf.read_steer_ports(item['pin_dir'])
            except OSError as exc:
                entry['pin_errors']['steer_ports'] = str(exc)
        return entry


def main():
    module = AnsibleModule(
        argument_spec=dict(_common.FACTS_SPEC, ports=dict(type='bool', default=True)),
        supports_check_mode=True,
    )
    try:
        items = normalize_interfaces(module.params['interfaces'], module.params['netns'])
    except ValueError as exc:
        module.fail_json(msg='bad input: %s' % exc)
    insp = Inspector(module)
    _common.exit_interface_facts(
        module, items, lambda it: insp.interface(it, module.params['ports']), 'kbypass_xdp')


if __name__ == '__main__':
    main()
