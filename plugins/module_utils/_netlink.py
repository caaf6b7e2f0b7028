# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pyroute2 helpers shared by kbypass.xdp modules.

Everything here talks netlink through pyroute2 (no parsing of ``ip`` output) on an
IPRoute that ``_netns.netlink`` opened in the right namespace.

Callers must have checked pyroute2 is importable (``_deps.require_pyroute2``);
the import below is guarded so that the module_utils import cleanly without it.
"""

from __future__ import annotations

import ipaddress
import os

from ansible_collections.kbypass.xdp.plugins.module_utils import _netns

try:
    from pyroute2.netlink.exceptions import NetlinkError
except ImportError:  # pragma: no cover - reported by _deps.require_pyroute2

    class NetlinkError(Exception):  # type: ignore[no-redef]
        """Stand-in so ``except NetlinkError`` works without pyroute2."""

        code = 0

IFF_UP = 0x1
IFA_F_NODAD = 0x02
NSID_NOT_ASSIGNED = (-1, 0xFFFFFFFF)


def nsid_of(ipr, name):
    """The id under which ``ipr``'s namespace knows namespace ``name`` (None if none)."""
    with _netns.open_fd(name) as fd:
        reply = ipr.get_netnsid(fd=fd)
    nsid = (reply or {}).get('nsid')
    if nsid is None or nsid in NSID_NOT_ASSIGNED:
        return None
    return nsid


# --- links ----------------------------------------------------------------------------

def find_link(ipr, ifname):
    """Return the RTM_NEWLINK message of ``ifname`` or None when there is no such link."""
    try:
        msgs = ipr.link('get', ifname=ifname)
    except NetlinkError as exc:
        if exc.code == 19:  # ENODEV
            return None
        raise
    return msgs[0] if msgs else None


def link_kind(msg):
    """IFLA_INFO_KIND of a link ('veth', 'bridge', ...) or None (e.g. a physical NIC)."""
    info = msg.get_attr('IFLA_LINKINFO')
    if info is None:
        return None
    return info.get_attr('IFLA_INFO_KIND')


def link_info(msg):
    """Plain-data view of a link message."""
    mac = msg.get_attr('IFLA_ADDRESS')
    return {
        'ifname': msg.get_attr('IFLA_IFNAME'),
        'ifindex': msg['index'],
        'kind': link_kind(msg),
        'mtu': msg.get_attr('IFLA_MTU'),
        'mac': mac.lower() if mac else None,
        'up': bool(msg['flags'] & IFF_UP),
        'rx_queues': msg.get_attr('IFLA_NUM_RX_QUEUES'),
        'tx_queues': msg.get_attr('IFLA_NUM_TX_QUEUES'),
        'peer_ifindex': msg.get_attr('IFLA_LINK'),
        'peer_nsid': msg.get_attr('IFLA_LINK_NETNSID'),
    }


def is_link_local(cidr):
    iface = ipaddress.ip_interface(cidr)
    return iface.version == 6 and iface.ip.is_link_local


def link_addresses(ipr, ifindex, include_link_local=False):
    """Addresses on a link as normalised CIDR strings, IPv4 first, sorted."""
    out = []
    for msg in ipr.addr('dump', index=ifindex):
        addr = msg.get_attr('IFA_ADDRESS') if msg['family'] == 10 else (
            msg.get_attr('IFA_LOCAL') or msg.get_attr('IFA_ADDRESS'))
        if addr is None:
            continue
        cidr = str(ipaddress.ip_interface('%s/%d' % (addr, msg['prefixlen'])))
        if not include_link_local and is_link_local(cidr):
            continue
        out.append(cidr)
    return sort_addresses(out)


def sort_addresses(cidrs):
    """Deterministic order: IPv4 before IPv6, then numerically."""
    ifs = sorted({ipaddress.ip_interface(c) for c in cidrs},
                 key=lambda i: (i.version, int(i.ip), i.network.prefixlen))
    return [str(i) for i in ifs]


def add_address(ipr, ifindex, cidr, nodad=True):
    """Add ``cidr``; IPv6 addresses skip duplicate address detection when ``nodad``."""
    iface = ipaddress.ip_interface(cidr)
    kwargs = {'index': ifindex, 'address': str(iface.ip), 'prefixlen': iface.network.prefixlen}
    if iface.version == 6 and nodad:
        kwargs['flags'] = IFA_F_NODAD
    ipr.addr('add', **kwargs)


def del_address(ipr, ifindex, cidr):
    iface = ipaddress.ip_interface(cidr)
    ipr.addr('del', index=ifindex, address=str(iface.ip), prefixlen=iface.network.prefixlen)


def set_link_up(ipr, ifname, up=True):
    """Bring ``ifname`` up or down; return True when its state changed."""
    msg = find_link(ipr, ifname)
    if msg is None:
        raise NetlinkError(19, 'No such device: %s' % ifname)
    if bool(msg['flags'] & IFF_UP) == bool(up):
        return False
    ipr.link('set', index=msg['index'], state='up' if up else 'down')
    return True


def error_text(exc):
    """A kernel error as words ('Numerical result out of range'), without Python's tuple
    or ``[Errno n]`` rendering; other exceptions as their message."""
    code = exc.code if isinstance(exc, NetlinkError) else getattr(exc, 'errno', None)
    if isinstance(code, int) and code > 0:
        return os.strerror(code)
    return str(exc)
