#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: xdp_attach
short_description: Attach the XDP steering program to an interface, in any network namespace
version_added: 0.1.0
description:
  - Loads an XDP object with C(bpftool) (libbpf), pins its program and maps under a bpffs
    directory, fills the C(steer_ports) match map and attaches the program to an interface
    over rtnetlink, entering only the interface's network namespace.
  - Idempotent. When the attached program already is this object's program (same tag), in
    the same mode, with the pinned maps and the same ports, nothing changes. A new program
    in the same mode replaces the old one atomically (C(XDP_FLAGS_REPLACE) with the expected
    program), so the interface is never without a program; pinned maps are reused when
    compatible, so AF_XDP sockets registered in C(xsks_map) stay registered.
  - The kernel does not allow a native and a generic program at once, so a mode switch
    detaches and re-attaches (the old program is put back if the attach fails).
  - A program the verifier rejects fails the task with the verifier log and leaves the
    previously attached program in place.
  - I(state=absent) detaches only a program that is ours (pinned in I(pin_dir), or named
    I(program)) and removes the pins; somebody else's program is left alone unless
    I(force=true).
author:
  - kbypass.xdp developers (@kbypass)
requirements:
  - pyroute2 >= 0.9 on the target (the kbypass.xdp.toolchain role installs it)
  - bpftool (libbpf) on the target, for loading
  - bpffs mounted (at C(/sys/fs/bpf) or wherever I(pin_dir) lives)
options:
  interface:
    description: Interface to attach to.
    type: str
    required: true
    aliases: [ifname]
  netns:
    description: Named network namespace (as created by C(ip netns add)) holding I(interface); omit for the root namespace.
    type: str
  object:
    description: Compiled BPF object (ELF with BTF). Required for I(state=present).
    type: path
    default: /usr/local/lib/kbypass/bpf/xdp_steer.o
  program:
    description: Name of the program (function) in I(object) to attach.
    type: str
    default: xdp_steer
  mode:
    description:
      - C(native) (driver), C(generic) (skb), C(offload) (NIC hardware) or C(auto).
      - C(auto) attaches natively when the driver supports it and generically otherwise, and
        keeps the mode of a program of ours that is already attached. The result's C(mode)
        says which mode is in use.
    type: str
    choices: [native, generic, offload, auto]
    default: native
  state:
    description: C(present) attaches (or replaces), C(absent) detaches ours and removes the pins.
    type: str
    choices: [present, absent]
    default: present
  pin_dir:
    description:
      - bpffs directory for the pins C(prog), C(xsks_map), C(steer_ports), C(steer_stats).
      - Default C(/sys/fs/bpf/kbypass/<netns or init_net>/<interface>).
      - The pins are marked with the attachment they belong to (namespace and interface);
        a I(pin_dir) that holds another attachment's pins is refused, for I(state=absent)
        too, before anything is changed.
    type: path
  ports:
    description: UDP destination ports to steer into AF_XDP sockets (written into C(steer_ports)).
    type: list
    elements: int
    default: [4242]
  force:
    description: Replace or detach a program that is not ours.
    type: bool
    default: false
  bpftool:
    description: bpftool executable (looked up in PATH when not absolute); checked before
      anything is changed.
    type: str
    default: bpftool
attributes:
  check_mode:
    support: full
    description: >-
      Touches nothing (no staging directory, no load into the kernel). The object's
      content hash, recorded beside the pins by the last real run, tells whether the
      pinned program came from this object; a different object is reported as a
      replacement (the verifier runs only in a real run).
  diff_mode:
    support: full
    description: Before/after of the attached program, mode and ports.
notes:
  - Runs in the root mount namespace and enters only the network namespace, so the pins on
    C(/sys/fs/bpf) are reachable for every namespace (remounting C(/sys) would hide bpffs).
  - C(bpftool map dump) cannot show XSKMAP entries on current kernels; use the counters.
  - Changes to one interface are serialised with M(kbypass.xdp.xdp_capture) by a lock file
    in C(/run/kbypass/lock) (removed on release). A task waits, up to 300 s, while a capture
    on the same interface runs or puts the normal program back, then fails naming the
    holder's pid. Check mode does not wait.
'''

EXAMPLES = r'''
- name: Steer UDP/4242 on veth0 in ns1 into AF_XDP sockets (native XDP)
  kbypass.xdp.xdp_attach:
    interface: veth0
    netns: ns1
    mode: native
    ports: [4242]

- name: Native when possible, generic otherwise
  kbypass.xdp.xdp_attach:
    interface: eth1
    mode: auto
  register: steer

- name: Show which mode was used
  ansible.builtin.debug:
    msg: "{{ steer.prog.name }} id {{ steer.prog.id }} in {{ steer.mode }} mode"

- name: Detach (only our program) and remove the pins
  kbypass.xdp.xdp_attach:
    interface: veth0
    netns: ns1
    state: absent
'''

RETURN = r'''
interface:
  description: Interface name.
  returned: always
  type: str
  sample: veth0
netns:
  description: Network namespace, null for the root namespace.
  returned: always
  type: str
  sample: ns1
mode:
  description: Mode the program is attached in (null when nothing is attached).
  returned: always
  type: str
  sample: native
prog:
  description: The attached program (null when none).
  returned: always
  type: dict
  sample: {id: 110, tag: 2979b2679cc921fd, name: xdp_steer, map_ids: [27, 28, 29]}
ports:
  description: UDP ports in C(steer_ports) after the task.
  returned: when state=present
  type: list
  elements: int
  sample: [4242]
pin_dir:
  description: bpffs directory of the pins.
  returned: always
  type: str
  sample: /sys/fs/bpf/kbypass/ns1/veth0
pins:
  description: Pin paths by object name.
  returned: when state=present
  type: dict
  sample: {prog: /sys/fs/bpf/kbypass/ns1/veth0/prog, xsks_map: /sys/fs/bpf/kbypass/ns1/veth0/xsks_map}
counters:
  description: Steering counters summed over CPUs (seen, matched, redirected, redirect_missed, passed).
  returned: when state=present and not in check mode
  type: dict
  sample: {seen: {packets: 10, bytes: 980}, matched: {packets: 4, bytes: 392}}
plan:
  description: What the module did or would do (action none/attach/replace/switch_mode/detach, map handling, reasons).
  returned: always
  type: dict
  sample: {action: replace, maps: reuse, ports: false, reasons: [program tag differs]}
verifier_log:
  description: The verifier's log when the kernel rejected the program.
  returned: on load failure
  type: str
  sample: "invalid access to packet, off=12 size=1"
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kbypass.xdp.plugins.module_utils import _bpf
from ansible_collections.kbypass.xdp.plugins.module_utils._attach import Attachment
from ansible_collections.kbypass.xdp.plugins.module_utils._common import (
    default_pin_dir,
    ifname_error,
    netns_error,
)
from ansible_collections.kbypass.xdp.plugins.module_utils._deps import require_pyroute2


# --- pure logic ----------------------------------------------------------------------
def validate(params):
    """List of human messages about bad arguments (empty when all is well)."""
    errors = []
    for msg in (ifname_error(params['interface']), netns_error(params.get('netns'))):
        if msg:
            errors.append(msg)
    bad = [p for p in params.get('ports') or [] if not 1 <= p <= 65535]
    if bad:
        errors.append('ports must be between 1 and 65535, got %s' % bad)
    if params.get('state', 'present') == 'present' and not params.get('ports'):
        errors.append('ports must list at least one UDP port for state=present')
    pin_dir = params.get('pin_dir')
    if pin_dir and not os.path.isabs(pin_dir):
        errors.append('pin_dir must be an absolute path, got %r' % pin_dir)
    if not errors:
        path = pin_dir or default_pin_dir(params['interface'], params.get('netns'))
        if '.' in path:
            errors.append('bpffs does not allow "." in file names, so %r cannot hold pins; '
                          'set pin_dir to a path without dots' % path)
    if not params.get('program'):
        errors.append('program must name a program in the object')
    return errors


def main():
    module = AnsibleModule(
        argument_spec=dict(
            interface=dict(type='str', required=True, aliases=['ifname']),
            netns=dict(type='str'),
            object=dict(type='path', default='/usr/local/lib/kbypass/bpf/xdp_steer.o'),
            program=dict(type='str', default=_bpf.STEER_PROG_NAME),
            mode=dict(type='str', default='native',
                      choices=['native', 'generic', 'offload', 'auto']),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            pin_dir=dict(type='path'),
            ports=dict(type='list', elements='int', default=[4242]),
            force=dict(type='bool', default=False),
            bpftool=dict(type='str', default='bpftool'),
        ),
        supports_check_mode=True,
    )
    errors = validate(module.params)
    if errors:
        module.fail_json(msg='; '.join(errors))
    require_pyroute2(module)

    Attachment(module).run()


if __name__ == '__main__':
    main()
