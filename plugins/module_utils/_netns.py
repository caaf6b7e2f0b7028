# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way into a network namespace: run a command there, enter it, talk netlink
there, read or write its sysfs/procfs. Nothing else in the collection does any of it.

A namespace is named the way ``ip netns`` names it (``/run/netns/<name>``); ``None`` is
the network namespace the module runs in (the root namespace on a normal host).

Two ways to run a command, chosen by what it needs to see:

* ``ip netns exec`` (the default) also remounts ``/sys`` for the namespace, so sysfs
  shows that namespace's devices; bpffs is then not mounted in the command's view.
* ``keep_mounts=True`` (``nsenter --net``) switches only the network namespace, so the
  pins on ``/sys/fs/bpf`` stay reachable (bpftool loading for a device in a namespace).

pyroute2 is imported guarded; callers that use :func:`netlink`, :func:`create` or
:func:`remove` must have checked it (``_deps.require_pyroute2``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import socket as _socket
import sys

try:
    from pyroute2 import IPRoute
    from pyroute2 import netns as _pr_netns
except ImportError:  # pragma: no cover - reported by _deps.require_pyroute2
    IPRoute = None
    _pr_netns = None

NETNS_RUN_DIR = '/run/netns'
CLONE_NEWNET = 0x40000000


class NetnsMissing(Exception):
    """Raised when a named network namespace does not exist."""

    def __init__(self, name):
        super().__init__('network namespace %r does not exist' % name)
        self.name = name


class HelperError(Exception):
    """The sysfs/procfs helper could not run (namespace missing, interpreter error)."""


# --- names ------------------------------------------------------------------------------

def netns_path(name):
    """Path of a named namespace as ``ip netns`` creates it."""
    return os.path.join(NETNS_RUN_DIR, name)


def list_netns():
    """Names of the namespaces under /run/netns (exact names, sorted)."""
    try:
        return sorted(os.listdir(NETNS_RUN_DIR))
    except FileNotFoundError:
        return []


def netns_exists(name):
    """True for the current namespace (None or '') or an exact name under /run/netns
    (no substring or path tricks: 'ns1' does not match 'ns10')."""
    return not name or name in list_netns()


def create(name):
    """Create a named namespace the way ``ip netns add`` does."""
    _pr_netns.create(name)


def remove(name):
    """Remove a named namespace; its virtual links disappear with it."""
    _pr_netns.remove(name)


@contextlib.contextmanager
def open_fd(name):
    """Yield an open fd for namespace ``name`` (None: the caller's own namespace)."""
    path = '/proc/self/ns/net' if name is None else netns_path(name)
    fd = os.open(path, os.O_RDONLY)
    try:
        yield fd
    finally:
        os.close(fd)


# --- netlink ----------------------------------------------------------------------------

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


# --- commands ---------------------------------------------------------------------------

def argv_in(argv, netns=None, keep_mounts=False):
    """``argv`` wrapped to run inside ``netns`` (unchanged for the current namespace)."""
    if not netns:
        return list(argv)
    if keep_mounts:
        return ['nsenter', '--net=%s' % netns_path(netns)] + list(argv)
    return ['ip', 'netns', 'exec', netns] + list(argv)


def run(module, argv, netns=None, keep_mounts=False, **kwargs):
    """``module.run_command`` of ``argv`` inside ``netns``; returns (rc, out, err)."""
    return module.run_command(argv_in(argv, netns, keep_mounts), **kwargs)


def run_json(module, argv, netns=None):
    """Run a command that prints JSON (bpftool -j, ip -j, ethtool --json) in ``netns``.

    Returns (data, None) or (None, error message); bpftool's own {"error": ...} counts
    as an error.
    """
    rc, out, err = run(module, argv, netns)
    try:
        data = json.loads(out) if out.strip() else None
    except ValueError as exc:
        data, bad = None, str(exc)
    else:
        bad = None
    if isinstance(data, dict) and 'error' in data:
        return None, data['error']
    if rc != 0 or data is None:
        return None, (err or out).strip() or bad or 'rc=%s' % rc
    return data, None


# --- entering (this thread only) --------------------------------------------------------

def _setns(fd):
    # Python 3.11 has no os.setns
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def entered(name):
    """Switch this thread's network namespace for the duration of a with block.

    Sockets created inside keep living in that namespace after the switch back.
    """
    if not name:
        yield
        return
    orig = os.open('/proc/self/ns/net', os.O_RDONLY)
    try:
        with open_fd(name) as target:
            _setns(target)
        try:
            yield
        finally:
            _setns(orig)
    finally:
        os.close(orig)


def socket(netns, family, kind):
    """A socket that lives in ``netns``."""
    with entered(netns):
        return _socket.socket(family, kind)


def ifindex(netns, ifname):
    """Index of ``ifname`` in ``netns``, or None when there is no such link."""
    with entered(netns):
        try:
            return _socket.if_nametoindex(ifname)
        except OSError:
            return None


def proc_net(netns, table):
    """Rows (header dropped) of ``/proc/net/<table>`` as ``netns`` sees it."""
    with entered(netns):
        with open('/proc/thread-self/net/' + table) as fh:
            return fh.read().splitlines()[1:]


# --- sysfs and procfs -------------------------------------------------------------------

# Runs under `ip netns exec` (which remounts /sys for the namespace; /proc/sys/net is the
# namespace's), or directly for the current namespace, so both paths behave the same.
# Reads a list of paths, lists directories, writes (path, value) pairs in order, and
# describes a net device's sysfs node. One JSON object in on argv[1], one out on stdout.
# Errors are reported per item.
_HELPER = r'''
import json, os, sys
req = json.loads(sys.argv[1])
out = {"read": {}, "list": {}, "write": [], "dev": None}
for p in req.get("read", []):
    try:
        with open(p) as f:
            out["read"][p] = f.read().strip()
    except OSError as e:
        out["read"][p] = None
for p in req.get("list", []):
    try:
        out["list"][p] = sorted(os.listdir(p))
    except OSError as e:
        out["list"][p] = None
for p, v in req.get("write", []):
    try:
        with open(p, "w") as f:
            f.write(str(v))
        out["write"].append([p, None])
    except OSError as e:
        out["write"].append([p, "%s: %s" % (type(e).__name__, e.strerror or e)])
dev = req.get("dev")
if dev:
    base = "/sys/class/net/" + dev
    info = {"exists": os.path.isdir(base), "device_path": None, "device_name": None,
            "msi_irqs": [], "numa_node": None, "driver_module": None}
    d = base + "/device"
    if os.path.exists(d):
        real = os.path.realpath(d)
        info["device_path"] = real
        info["device_name"] = os.path.basename(real)
        cur = real
        # virtio_net: the netdev's device is virtioN, whose parent is the PCI function.
        for _ in range(3):
            m = cur + "/msi_irqs"
            if os.path.isdir(m):
                info["msi_irqs"] = sorted(int(x) for x in os.listdir(m) if x.isdigit())
                break
            cur = os.path.dirname(cur)
        for cand in (real, os.path.dirname(real)):
            try:
                with open(cand + "/numa_node") as f:
                    node = int(f.read().strip())
                info["numa_node"] = node if node >= 0 else None
                break
            except (OSError, ValueError):
                pass
        drv = d + "/driver/module"
        if os.path.exists(drv):
            info["driver_module"] = os.path.basename(os.path.realpath(drv))
    out["dev"] = info
sys.stdout.write(json.dumps(out))
'''


def fs_op(module, netns=None, read=None, write=None, dev=None, listdir=None):
    """Read paths, list directories, write (path, value) pairs, describe a net device —
    as ``netns`` sees sysfs and procfs.

    Returns the helper's dict: ``read`` {path: value or None}, ``list`` {dir: [names] or
    None}, ``write`` [[path, error or None]], ``dev`` (see _HELPER). Raises HelperError
    when the helper itself fails.
    """
    req = {'read': list(read or []), 'list': list(listdir or []),
           'write': [list(x) for x in (write or [])], 'dev': dev}
    rc, out, err = run(module, [sys.executable, '-c', _HELPER, json.dumps(req)], netns)
    if rc != 0:
        raise HelperError('reading/writing sysfs%s failed (rc=%s): %s'
                          % (' in netns %s' % netns if netns else '', rc, (err or out).strip()))
    try:
        return json.loads(out)
    except ValueError:
        raise HelperError('unexpected output from the sysfs helper: %r' % out[:200])
