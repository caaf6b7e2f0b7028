#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: xdp_capture
short_description: Capture the packets the XDP steering program sees, with the action it took
version_added: 0.2.0
description:
  - Steered packets never reach the kernel's packet taps, so C(tcpdump) on the interface
    under test shows none of them. This module captures at the XDP hook instead and writes
    a pcapng file (readable by C(tcpdump -r), C(tshark), Wireshark) whose per-packet comment
    is the action the steering program took (C(redirected), C(passed),
    C(redirect_missed) for a steered port with no AF_XDP socket on the queue).
  - I(state=present) swaps the capture build of the steering program
    (C(xdp_steer_capture.o)) onto the attachment's pins with the logic of
    M(kbypass.xdp.xdp_attach) (atomic replace, the same maps, so the AF_XDP sockets stay
    registered), reads its ring buffer until I(duration) or I(count) is reached, and swaps
    the normal program I(object) back, also when the capture fails or the module gets
    SIGINT, SIGTERM or SIGHUP.
  - I(state=absent) only makes sure the normal program is in place (for a playbook's
    C(always) section after an interrupted capture).
  - Sampling never blocks a packet. When the reader falls behind, samples are dropped and
    counted (C(dropped_samples)); the packets themselves are forwarded as usual.
author:
  - kbypass.xdp developers (@kbypass)
requirements:
  - The steering program attached by M(kbypass.xdp.xdp_attach) on I(interface).
  - The capture object built next to it (the kbypass.xdp.bpf_programs role builds both).
  - pyroute2 and bpftool on the target, as for M(kbypass.xdp.xdp_attach).
options:
  interface:
    description: Interface whose steering program is captured.
    type: str
    required: true
  netns:
    description: Named network namespace holding I(interface); omit for the root namespace.
    type: str
  pin_dir:
    description: bpffs directory of the attachment's pins; the M(kbypass.xdp.xdp_attach) default when omitted.
    type: path
  object:
    description: The normal steering object, put back after the capture.
    type: path
    default: /usr/local/lib/kbypass/bpf/xdp_steer.o
  capture_object:
    description: The capture build of the steering program.
    type: path
    default: /usr/local/lib/kbypass/bpf/xdp_steer_capture.o
  dest:
    description: pcapng file to write on the target (replaced atomically). Required for I(state=present).
    type: path
  duration:
    description: Longest capture in seconds.
    type: float
    default: 10
  count:
    description: Stop after this many captured (filtered) packets; 0 for no limit.
    type: int
    default: 1000
  filter:
    description:
      - Which packets to keep, a small subset of tcpdump's syntax - a protocol (C(udp),
        C(tcp), C(icmp) (ICMP and ICMPv6), C(arp)) and/or C(port N) (source or
        destination), e.g. C(udp port 4242). Empty keeps everything.
      - Applied by the reader; the program samples every packet.
    type: str
    default: ''
  state:
    description: C(present) captures; C(absent) only puts the normal program back if the capture build is attached.
    type: str
    choices: [present, absent]
    default: present
  bpftool:
    description: bpftool executable, as for M(kbypass.xdp.xdp_attach).
    type: str
    default: bpftool
attributes:
  check_mode:
    support: full
    description: Checks the attachment and the arguments; swaps nothing, captures nothing.
  diff_mode:
    support: none
    description: A capture has no before/after; the attached program is the same before and after.
notes:
  - Only the first 256 bytes of each packet are kept (the capture's snap length).
  - The capture build costs a ring buffer reservation and a copy per packet; the normal
    object is not changed by it (C(xdp_steer.o) is built from the same, untouched source).
  - Holds the interface's lock (shared with M(kbypass.xdp.xdp_attach)) from before the swap
    in until the normal program is back. On Ctrl-C C(ansible-playbook) returns at once while
    this module still swaps back; an attach or detach started right after waits for it
    instead of being undone by it.
'''

EXAMPLES = r'''
- name: Capture 10 seconds of UDP/4242 at the XDP hook of veth0 in ns1
  kbypass.xdp.xdp_capture:
    interface: veth0
    netns: ns1
    dest: /var/tmp/kbypass/observe-veth0.pcapng
    duration: 10
    filter: udp port 4242
  register: capture

- name: Make sure the normal steering program is back (e.g. in an always section)
  kbypass.xdp.xdp_capture:
    interface: veth0
    netns: ns1
    state: absent
'''

RETURN = r'''
dest:
  description: The pcapng file written.
  returned: state=present and not in check mode
  type: str
  sample: /var/tmp/kbypass/observe-veth0.pcapng
captured:
  description: Packets written to I(dest) (those that passed I(filter)).
  returned: state=present and not in check mode
  type: int
  sample: 52
samples:
  description: Samples read from the ring before filtering.
  returned: state=present and not in check mode
  type: int
  sample: 60
dropped_samples:
  description: Samples the program could not queue because the ring was full (the packets were not affected).
  returned: state=present and not in check mode
  type: int
  sample: 0
by_action:
  description: Captured packets by the action the steering program took.
  returned: state=present and not in check mode
  type: dict
  sample: {redirected: 50, passed: 2, redirect_missed: 0, other: 0}
seconds:
  description: How long the capture ran.
  returned: state=present and not in check mode
  type: float
  sample: 3.2
stopped_by:
  description: C(count), C(duration) or the signal's name.
  returned: state=present and not in check mode
  type: str
  sample: count
prog:
  description: The program attached after the task (the normal one), as M(kbypass.xdp.xdp_attach) reports it.
  returned: always
  type: dict
  sample: {id: 110, tag: 2979b2679cc921fd, name: xdp_steer, map_ids: [27, 28, 29]}
prog_before:
  description: The program attached before the task.
  returned: always
  type: dict
  sample: {id: 108, tag: 2979b2679cc921fd, name: xdp_steer, map_ids: [27, 28, 29]}
'''

import os
import signal
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kbypass.xdp.plugins.module_utils import _bpf, _capture, _xdp
from ansible_collections.kbypass.xdp.plugins.module_utils._common import (
    default_pin_dir,
    ifname_error,
    netns_error,
)
from ansible_collections.kbypass.xdp.plugins.module_utils._deps import require_pyroute2
from ansible_collections.kbypass.xdp.plugins.module_utils._lock import LockTimeout, module_lock
from ansible_collections.kbypass.xdp.plugins.module_utils._supervise import die_if_forked_helper

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_POLL = 0.02  # seconds between ring reads: a 1 MiB ring holds ~3700 samples


class Interrupted(Exception):
    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)


_LATE = []  # signals that came while the normal program was being put back


def _raise(signum, frame):
    if die_if_forked_helper(signum):
        return
    raise Interrupted(signum)


def _note(signum, frame):
    if not die_if_forked_helper(signum):
        _LATE.append(signum)


# --- pure logic ----------------------------------------------------------------------
def validate(params):
    """List of human messages about bad arguments (empty when all is well)."""
    errors = [m for m in (ifname_error(params['interface']), netns_error(params.get('netns')))
              if m]
    if params.get('state', 'present') == 'present':
        if not params.get('dest'):
            errors.append('dest (the pcapng file to write) is required for state=present')
        if not params.get('duration') or params['duration'] <= 0:
            errors.append('duration must be more than 0 seconds')
        if (params.get('count') or 0) < 0:
            errors.append('count must be 0 (no limit) or more')
        if _capture.parse_filter(params.get('filter'))[1]:
            errors.append(_capture.parse_filter(params.get('filter'))[1])
    return errors


# --- kernel access -------------------------------------------------------------------
def current_program(module, target):
    """Info of our attached program, failing the task when there is none."""
    try:
        link = _xdp.query(target['interface'], target['netns'])
    except _xdp.XdpError as e:
        module.fail_json(msg=str(e))
    if link is None:
        module.fail_json(msg='interface %r not found in %s' % (
            target['interface'], 'network namespace %r' % target['netns']
            if target['netns'] else 'the root namespace'))
    pinned = _bpf.pinned_prog_info(os.path.join(target['pin_dir'], _bpf.PROG_PIN))
    prog_id = link['xdp']['prog_id']
    if not prog_id or not pinned or pinned['id'] != prog_id:
        module.fail_json(msg='the steering program is not attached to %s with its pins in %s; '
                             'attach it first (kbypass.xdp.xdp_attach or the bpf_programs role)'
                             % (target['interface'], target['pin_dir']))
    return _bpf.prog_info_by_id(prog_id)


def restore(module, target, result):
    """Put the normal program back; True when it had to be swapped."""
    swap = _capture.swap_object(module, target, module.params['object'])
    result['prog'] = swap.get('prog')
    return swap.get('changed', False)


def capture(module, target, ring_maps, result):
    """Drain the ring into a temporary pcapng next to dest until a limit; returns its path."""
    p = module.params
    flt = _capture.parse_filter(p['filter'])[0]
    by_action = dict((a, 0) for a in _capture.ACTIONS)
    clock_offset = time.time_ns() - time.monotonic_ns()  # bpf_ktime_get_ns is CLOCK_MONOTONIC
    fd = _bpf.map_fd_by_id(ring_maps['ring']['id'])
    ring = _capture.Ring(fd, ring_maps['ring']['max_entries'])
    os.close(fd)  # the mappings keep the ring
    out_fd, tmp = tempfile.mkstemp(prefix='.kbypass-capture-', dir=os.path.dirname(p['dest']))
    start = time.monotonic()
    result.update(captured=0, samples=0, by_action=by_action, stopped_by='duration', dest=p['dest'])
    try:
        with os.fdopen(out_fd, 'wb') as out:
            out.write(_capture.pcapng_header(p['interface']))
            try:
                while time.monotonic() - start < p['duration']:
                    for raw in ring.drain():
                        result['samples'] += 1
                        s = _capture.decode_sample(raw)
                        if not _capture.matches(flt, s['data']):
                            continue
                        out.write(_capture.pcapng_packet(s['ts_ns'] + clock_offset, s['data'],
                                                         s['pkt_len'], _capture.comment_of(s)))
                        result['captured'] += 1
                        by_action[s['action']] += 1
                        if p['count'] and result['captured'] >= p['count']:
                            break
                    if p['count'] and result['captured'] >= p['count']:
                        result['stopped_by'] = 'count'
                        break
                    time.sleep(_POLL)
            finally:
                result['seconds'] = round(time.monotonic() - start, 3)
                result['dropped_samples'] = _capture.read_drops(ring_maps['drops']['id'])
    except BaseException:
        os.unlink(tmp)
        raise
    finally:
        ring.close()
    return tmp


def run_capture(module, target, result):
    """Swap in, capture, swap back (always); the pcapng goes to dest at the end."""
    tmp, interrupted, error = None, None, None
    old = dict((s, signal.signal(s, _raise)) for s in _SIGNALS)
    try:
        swap = _capture.swap_object(module, target, module.params['capture_object'])
        ring_maps = _capture.capture_maps(swap['prog']['id'])
        if set(ring_maps) != {'ring', 'drops'}:
            raise _capture.SwapFailed('%s is not the capture build of the steering program (no '
                                      '%s/%s maps)' % (module.params['capture_object'],
                                                       _capture.RING_MAP, _capture.DROPS_MAP))
        tmp = capture(module, target, ring_maps, result)
    except Interrupted as e:
        interrupted = str(e)
    except (_capture.SwapFailed, _bpf.BpfError, OSError) as e:
        error = 'capture on %s failed: %s' % (target['interface'], e)
    finally:
        # a signal now must not cut the swap back short: note it, act after
        for s in _SIGNALS:
            signal.signal(s, _note)
        try:
            restore(module, target, result)
        except (_capture.SwapFailed, _bpf.BpfError, OSError) as e:
            error = ('%s%s; the capture program may still be attached: run this module with '
                     'state=absent (or kbypass.xdp.xdp_attach with the normal object)'
                     % (error + '. Restoring failed too: ' if error else
                        'putting the normal program back failed: ', e))
        for s, handler in old.items():
            signal.signal(s, handler)
    interrupted = interrupted or (signal.Signals(_LATE[0]).name if _LATE else None)
    if error or interrupted:
        if tmp:
            os.unlink(tmp)
        module.fail_json(msg=error or 'capture interrupted by %s; the normal program is back'
                         % interrupted, **result)
    module.atomic_move(tmp, module.params['dest'])
    os.chmod(module.params['dest'], 0o644)
    result['changed'] = True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            interface=dict(type='str', required=True),
            netns=dict(type='str'),
            pin_dir=dict(type='path'),
            object=dict(type='path', default='/usr/local/lib/kbypass/bpf/xdp_steer.o'),
            capture_object=dict(type='path',
                                default='/usr/local/lib/kbypass/bpf/xdp_steer_capture.o'),
            dest=dict(type='path'),
            duration=dict(type='float', default=10),
            count=dict(type='int', default=1000),
            filter=dict(type='str', default=''),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            bpftool=dict(type='str', default='bpftool'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    errors = validate(p)
    for key in ('object', 'capture_object') if p['state'] == 'present' else ('object',):
        if not os.path.isfile(p[key]):
            errors.append('%s %s does not exist; build it first (the kbypass.xdp.bpf_programs '
                          'role installs both objects)' % (key, p[key]))
    if p['state'] == 'present' and p['dest'] and not os.path.isdir(os.path.dirname(p['dest'])):
        errors.append('the directory of dest %s does not exist' % p['dest'])
    if errors:
        module.fail_json(msg='; '.join(errors))
    require_pyroute2(module)

    target = {'interface': p['interface'], 'netns': p['netns'], 'bpftool': p['bpftool'],
              'pin_dir': p['pin_dir'] or default_pin_dir(p['interface'], p['netns'])}
    # held from before the swap in to after the swap back, also when the playbook has
    # exited on Ctrl-C and this process finishes on its own: an xdp_attach that follows
    # waits for it (see _lock)
    try:
        with module_lock(module.check_mode, p['interface'], p['netns']):
            work(module, target)
    except LockTimeout as e:
        module.fail_json(msg=str(e))


def work(module, target):
    """Check, then capture or restore; exits the module."""
    p = module.params
    before = current_program(module, target)
    target['ports'] = _bpf.read_steer_ports(target['pin_dir'])
    result = {'changed': False, 'prog_before': _bpf.prog_public(before), 'prog': _bpf.prog_public(before)}
    is_capture = bool(_capture.capture_maps(before['id']))
    if module.check_mode:
        result['changed'] = p['state'] == 'present' or is_capture
        module.exit_json(**result)
    if p['state'] == 'absent':
        if is_capture:
            try:
                result['changed'] = restore(module, target, result)
            except (_capture.SwapFailed, _bpf.BpfError, OSError) as e:
                module.fail_json(msg='putting the normal program back on %s failed: %s'
                                 % (p['interface'], e), **result)
        module.exit_json(**result)
    run_capture(module, target, result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
