# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pyroute2 helpers shared by kbypass.xdp modules.

Everything here talks netlink through pyroute2 (no parsing of ``ip`` output).
A namespace is named the way ``ip netns`` names it; ``None`` is the network
namespace the module runs in (the root namespace on a normal host).

Callers must have checked pyroute2 is importable (``_deps.require_pyroute2``);
the import below is guarded so that the module_utils import cleanly without it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os

from ansible_collections.kbypass.xdp.plugins.module_utils._common import NETNS_RUN_DIR

try:
    from pyroute2 import IPRoute
    from pyroute2 import netns as _pr_netns
    from pyroute2.netlink.exceptions import NetlinkError
except ImportError:  # pragma: no cover - reported by _deps.require_pyroute2
    IPRoute = None
    _pr_netns = None

    class NetlinkError(Exception):  # type: ignore[no-redef]
        """Stand-in so ``except NetlinkError`` works without pyroute2."""

        code = 0

IFF_UP = 0x1
IFA_F_NODAD = 0x02
NSID_NOT_ASSIGNED = (-1, 0xFFFFFFFF)


class NetnsMissing(Exception):
    """Raised when a named network namespace does not exist."""

    def __init__(self, name):
        super().__init__('network namespace %r does not exist' % name)
        self.name = name


# --- namespaces -----------------------------------------------------------------------

def list_netns():
    """Names of the namespaces under /run/netns (exact names, sorted)."""
    try:
        return sorted(os.listdir(NETNS_RUN_DIR))
    except FileNotFoundError:
        return []


def netns_exists(name):
    """True when ``name`` is a named namespace (None, the current one, always exists)."""
    return name is None or name in list_netns()


def create_netns(name):
    """Create a named namespace the way ``ip netns add`` does."""
    _pr_netns.create(name)


def remove_netns(name):
    """Remove a named namespace; its virtual links disappear with it."""
    _pr_netns.remove(name)


@contextlib.contextmanager
def netns_fd(name):
    """Yield an open fd for namespace ``name`` (None: the caller's own namespace)."""
    path = '/proc/self/ns/net' if name is None else os.path.join(NETNS_RUN_DIR, name)
    fd = os.open(path, os.O_RDONLY)
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def netlink(netns=None, create=False):
    """Yield an IPRoute bound to ``netns`` (None: current namespace); always closed.

    A missing namespace raises NetnsMissing unless ``create`` is true (pyroute2 would
    otherwise create it silently, which a read must never do).
    """
    if netns is None:
        ipr = IPRoute()
    else:
        if not create and not netns_exists(netns):
            raise NetnsMissing(netns)
        ipr = IPRoute(netns=netns, flags=os.O_CREAT if create else 0)
    try:
        yield ipr
    finally:
        ipr.close()


def nsid_of(ipr, name):
    """The id under which ``ipr``'s namespace knows namespace ``name`` (None if none)."""
    with netns_fd(name) as fd:
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
