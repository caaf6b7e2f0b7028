# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attach, query, replace and detach XDP programs over rtnetlink (pyroute2).

Works from the root *mount* namespace and enters only the *network* namespace of
the link (pyroute2 opens its netlink socket there), so program fds from pinned
objects on /sys/fs/bpf stay usable.

Replacing a program in the same mode is atomic: the kernel swaps it under
``XDP_FLAGS_REPLACE`` with ``IFLA_XDP_EXPECTED_FD`` (no window without a program,
and it fails if someone changed the program since we looked). The kernel does
not allow a native and a generic program on one device at the same time, so a
mode switch is detach-then-attach (with a rollback if the attach fails).
"""

from __future__ import annotations

import contextlib
import errno
import os

from ansible_collections.kbypass.xdp.plugins.module_utils import _netlink, _netns
from ansible_collections.kbypass.xdp.plugins.module_utils._netlink import NetlinkError

XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_HW_MODE = 1 << 3
XDP_FLAGS_REPLACE = 1 << 4

MODE_FLAGS = {'native': XDP_FLAGS_DRV_MODE, 'generic': XDP_FLAGS_SKB_MODE,
              'offload': XDP_FLAGS_HW_MODE}
_ATTR_MODE = {'IFLA_XDP_DRV_PROG_ID': 'native', 'IFLA_XDP_SKB_PROG_ID': 'generic',
              'IFLA_XDP_HW_PROG_ID': 'offload'}
_ATTACHED = {'xdp': 'native', 'xdpgeneric': 'generic', 'xdpoffload': 'offload'}


class XdpError(Exception):
    """An XDP netlink operation failed; ``errno`` is the kernel's error code."""

    def __init__(self, msg, err=0):
        super().__init__(msg)
        self.errno = err


@contextlib.contextmanager
def open_netlink(netns=None):
    """IPRoute in ``netns`` (never creates the namespace); always closed."""
    try:
        with _netns.netlink(netns) as ipr:
            yield ipr
    except _netns.NetnsMissing as e:
        raise XdpError('network namespace %r does not exist (%s missing)'
                       % (netns, _netns.netns_path(netns)), errno.ENOENT) from e


def parse_xdp(attrs):
    """Turn the IFLA_XDP nested attributes into {'mode': .., 'prog_id': .., 'progs': {mode: id}}.

    Pure: takes a list of (name, value) pairs as pyroute2 decodes them.
    """
    attrs = dict(attrs or [])
    progs = {}
    for key, mode in _ATTR_MODE.items():
        if attrs.get(key):
            progs[mode] = attrs[key]
    attached = attrs.get('IFLA_XDP_ATTACHED')
    prog_id = attrs.get('IFLA_XDP_PROG_ID') or 0
    if attached in _ATTACHED and prog_id and not progs:
        progs[_ATTACHED[attached]] = prog_id
    if not progs:
        return {'mode': None, 'prog_id': None, 'progs': {}}
    if len(progs) == 1:
        mode, pid = next(iter(progs.items()))
        return {'mode': mode, 'prog_id': pid, 'progs': progs}
    return {'mode': 'multi', 'prog_id': prog_id or None, 'progs': progs}


def link_state(ipr, ifname):
    """{'ifindex', 'kind', 'xdp': parse_xdp(...)} or None when the link does not exist."""
    msg = _netlink.find_link(ipr, ifname)
    if msg is None:
        return None
    xdp = msg.get_attr('IFLA_XDP')
    return {'ifindex': msg['index'], 'kind': _netlink.link_kind(msg),
            'xdp': parse_xdp(xdp['attrs'] if xdp is not None else [])}


def query(ifname, netns=None):
    with open_netlink(netns) as ipr:
        return link_state(ipr, ifname)


def set_xdp(ipr, ifindex, fd, mode, expected_fd=None, noexist=False):
    """Attach ``fd`` (or detach with fd -1) in ``mode``.

    ``expected_fd``: replace (or detach) only if this program is the one attached.
    ``noexist``: fail instead of replacing an attached program.
    """
    flags = MODE_FLAGS[mode]
    attrs = [('IFLA_XDP_FD', fd)]
    if expected_fd is not None:
        flags |= XDP_FLAGS_REPLACE
        attrs.append(('IFLA_XDP_EXPECTED_FD', expected_fd))
    if noexist:
        flags |= XDP_FLAGS_UPDATE_IF_NOEXIST
    attrs.insert(1, ('IFLA_XDP_FLAGS', flags))
    try:
        ipr.link('set', index=ifindex, xdp={'attrs': attrs})
    except NetlinkError as e:
        raise XdpError(explain(e.code, mode, fd < 0), e.code) from e


def explain(err, mode, detach=False):
    """Actionable message for a failed IFLA_XDP request (the kernel's extack is not decoded)."""
    what = 'detach the XDP program' if detach else 'attach the XDP program in %s mode' % mode
    text = os.strerror(err) if err else 'unknown error'
    if err == errno.EOPNOTSUPP and mode == 'native':
        hint = ('the driver has no native XDP support; use mode "generic" or "auto"')
    elif mode == 'offload' and err in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENODEV):
        hint = ('the device cannot offload XDP programs (only a few SmartNICs can); '
                'use mode "native", "generic" or "auto"')
    elif err == errno.EEXIST:
        hint = ('another program is attached (a native and a generic program cannot '
                'coexist), or the attached program changed while we were working; re-run')
    elif err == errno.EBUSY:
        hint = 'the program is attached through a bpf_link (e.g. libxdp); detach it with its owner'
    elif err == errno.ERANGE:
        hint = 'the MTU is too large for XDP on this driver; lower it'
    else:
        hint = ''
    return 'failed to %s: %s%s' % (what, text, ('; ' + hint) if hint else '')


def replace(ipr, ifindex, new_fd, mode, old_fd):
    """Atomically swap the program attached in ``mode`` (must still be ``old_fd``'s)."""
    set_xdp(ipr, ifindex, new_fd, mode, expected_fd=old_fd)


def attach(ipr, ifindex, new_fd, mode):
    """Attach where nothing is attached. ``mode`` 'auto' = native, else generic.

    Returns the mode that was used.
    """
    if mode == 'auto':
        try:
            set_xdp(ipr, ifindex, new_fd, 'native', noexist=True)
            return 'native'
        except XdpError as e:
            if e.errno != errno.EOPNOTSUPP:
                raise
        mode = 'generic'
    set_xdp(ipr, ifindex, new_fd, mode, noexist=True)
    return mode


def detach(ipr, ifindex, mode, expected_fd=None):
    set_xdp(ipr, ifindex, -1, mode, expected_fd=expected_fd)


def switch_mode(ipr, ifindex, new_fd, new_mode, old_fd, old_mode):
    """Detach the program in ``old_mode`` and attach ``new_fd`` in ``new_mode``.

    The kernel refuses native and generic at once, so there is a short window with
    no program (packets then take the kernel path: nothing is lost). On failure the
    old program is put back. Returns the mode used.
    """
    detach(ipr, ifindex, old_mode, expected_fd=old_fd)
    try:
        return attach(ipr, ifindex, new_fd, new_mode)
    except XdpError:
        try:
            set_xdp(ipr, ifindex, old_fd, old_mode, noexist=True)
        except XdpError:
            pass
        raise
