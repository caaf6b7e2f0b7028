# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small bpf(2) toolbox over ctypes: pinned objects, program/map info, map access.

Everything here talks to the kernel directly (no bpftool text parsing), so other
modules can read the steering program's state cheaply::

    from ansible_collections.kbypass.xdp.plugins.module_utils._bpf import read_steer_stats
    stats = read_steer_stats('/sys/fs/bpf/kbypass/ns1/veth0')
    stats['redirected']['packets']

Loading programs is left to bpftool (libbpf underneath): see ``bpftool_loadall``.
Names and layout of the steering program's maps are fixed in docs/contracts.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import os
import platform
import struct
import time

from ansible_collections.kbypass.xdp.plugins.module_utils._common import where

# --- constants (linux/bpf.h) ---------------------------------------------------------
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_OBJ_GET = 7
BPF_PROG_GET_FD_BY_ID = 13
BPF_MAP_GET_FD_BY_ID = 14
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_MAP_LOOKUP_BATCH = 24

BPF_ANY = 0
BPF_FS_MAGIC = 0xCAFE4A11

BPF_PROG_TYPE_XDP = 6
MAP_TYPE_NAMES = {1: 'hash', 2: 'array', 6: 'percpu_array', 17: 'xskmap', 27: 'ringbuf'}
PROG_TYPE_NAMES = {BPF_PROG_TYPE_XDP: 'xdp'}

_SYS_BPF = {'x86_64': 321, 'aarch64': 280, 'armv7l': 386, 'armv6l': 386, 'ppc64le': 361,
            's390x': 351, 'riscv64': 280, 'i686': 357, 'i386': 357, 'loongarch64': 280}
_ATTR_SIZE = 128  # larger than any attr we fill; the kernel checks that the tail is zero
_INFO_SIZE = 256

# --- the steering program's contract (docs/contracts.md) ----------------------------
STEER_PROG_NAME = 'xdp_steer'
# the ring buffer only the capture build (xdp_steer_capture.c) has: how it is told apart
CAPTURE_RING_MAP = 'kb_capture_ring'
STEER_MAPS = ('xsks_map', 'steer_ports', 'steer_stats')
PROG_PIN = 'prog'
# index order of enum steer_counter in files/bpf/steer_maps.h (a unit test checks it)
STEER_COUNTERS = ('seen', 'matched', 'redirected', 'redirect_missed', 'passed')


class BpfError(OSError):
    """A failed bpf(2) call, with the operation that failed in the message."""


_libc = None


def _syscall_nr():
    nr = _SYS_BPF.get(platform.machine())
    if nr is None:
        raise BpfError(errno.ENOSYS, 'bpf(2) syscall number unknown for %s' % platform.machine())
    return nr


def _c():
    global _libc  # pylint: disable=global-statement
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library('c') or None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc


def _bpf(cmd, attr, what):
    buf = ctypes.create_string_buffer(bytes(attr).ljust(_ATTR_SIZE, b'\0'), _ATTR_SIZE)
    ret = _c().syscall(ctypes.c_long(_syscall_nr()), ctypes.c_int(cmd), buf,
                       ctypes.c_uint(_ATTR_SIZE))
    if ret < 0:
        err = ctypes.get_errno()
        raise BpfError(err, '%s: %s' % (what, os.strerror(err)))
    return ret, buf


def _addr(buf):
    return ctypes.addressof(buf)


# --- bpffs and pinned objects -------------------------------------------------------
def is_bpffs(path):
    """True when ``path`` (which must exist) lives on a bpf filesystem."""
    class _Statfs(ctypes.Structure):  # only f_type matters; the rest is padding
        _fields_ = [('f_type', ctypes.c_long), ('rest', ctypes.c_byte * 256)]
    st = _Statfs()
    if _c().statfs(os.fsencode(path), ctypes.byref(st)) != 0:
        return False
    return (st.f_type & 0xFFFFFFFF) == BPF_FS_MAGIC


def bpffs_error(pin_dir):
    """Return a human message when ``pin_dir`` cannot hold pins, else None.

    The nearest existing ancestor of ``pin_dir`` must be on bpffs.
    """
    probe = os.path.abspath(pin_dir)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if is_bpffs(probe):
        return None
    return ('%s is not on a bpf filesystem (nearest existing directory %s is not bpffs). '
            'Mount it with "mount -t bpf bpf /sys/fs/bpf" (the kbypass.xdp.toolchain role '
            'does this) or choose a pin_dir below a bpffs mount.' % (pin_dir, probe))


def obj_get(path):
    """fd of a pinned object (program or map)."""
    p = ctypes.create_string_buffer(os.fsencode(path))
    fd = _bpf(BPF_OBJ_GET, struct.pack('=QII', _addr(p), 0, 0), 'open pin %s' % path)[0]
    return fd


def prog_fd_by_id(prog_id):
    fd = _bpf(BPF_PROG_GET_FD_BY_ID, struct.pack('=III', prog_id, 0, 0),
              'open program id %d' % prog_id)[0]
    return fd


def map_fd_by_id(map_id):
    fd = _bpf(BPF_MAP_GET_FD_BY_ID, struct.pack('=III', map_id, 0, 0),
              'open map id %d' % map_id)[0]
    return fd


def _get_info(fd, prefill=b''):
    info = ctypes.create_string_buffer(prefill.ljust(_INFO_SIZE, b'\0'), _INFO_SIZE)
    _bpf(BPF_OBJ_GET_INFO_BY_FD, struct.pack('=IIQ', fd, _INFO_SIZE, _addr(info)),
         'get info of fd %d' % fd)
    return info.raw


def _cstr(raw):
    return raw.split(b'\0', 1)[0].decode('ascii', 'replace')


def prog_info(fd):
    """dict(id, tag, name, type, map_ids) of the program behind ``fd``."""
    ids = (ctypes.c_uint32 * 16)()
    prefill = bytearray(_INFO_SIZE)
    struct.pack_into('=I', prefill, 52, 16)          # nr_map_ids
    struct.pack_into('=Q', prefill, 56, _addr(ids))  # map_ids
    raw = _get_info(fd, bytes(prefill))
    ptype, pid = struct.unpack_from('=II', raw, 0)
    nr_maps = struct.unpack_from('=I', raw, 52)[0]
    return {
        'id': pid,
        'tag': raw[8:16].hex(),
        'name': _cstr(raw[64:80]),
        'type': PROG_TYPE_NAMES.get(ptype, str(ptype)),
        'map_ids': sorted(ids[i] for i in range(min(nr_maps, 16))),
    }


def map_info(fd):
    """dict(id, name, type, key_size, value_size, max_entries, flags) of a map fd."""
    raw = _get_info(fd)
    mtype, mid, key_size, value_size, max_entries, flags = struct.unpack_from('=6I', raw, 0)
    return {'id': mid, 'name': _cstr(raw[24:40]), 'type': MAP_TYPE_NAMES.get(mtype, str(mtype)),
            'key_size': key_size, 'value_size': value_size, 'max_entries': max_entries,
            'flags': flags}


def _with_fd(fd, fn):
    try:
        return fn(fd)
    finally:
        os.close(fd)


def prog_info_by_id(prog_id):
    return _with_fd(prog_fd_by_id(prog_id), prog_info)


def prog_public(info):
    """The fields of ``prog_info`` a module returns: id, tag, name, map_ids (or None)."""
    return dict((k, info.get(k)) for k in ('id', 'tag', 'name', 'map_ids')) if info else None


def pinned_prog_info(path):
    """Program info of a pin, or None when there is no such pin."""
    return _with_fd(obj_get(path), prog_info) if os.path.exists(path) else None


def pinned_map_info(path):
    """Map info of a pin, or None when there is no such pin."""
    return _with_fd(obj_get(path), map_info) if os.path.exists(path) else None


def read_pins(pin_dir):
    """What one attachment's pin directory holds: {'prog': info|None, 'maps': {name: info|None}}."""
    return {
        'prog': pinned_prog_info(os.path.join(pin_dir, PROG_PIN)),
        'maps': dict((m, pinned_map_info(os.path.join(pin_dir, m))) for m in STEER_MAPS),
    }


def remove_pins(pin_dir, stop_at=None):
    """Unlink our pins in ``pin_dir`` and the directory (and empty parents up to ``stop_at``).

    Returns the list of removed paths.
    """
    removed = []
    for name in (PROG_PIN,) + STEER_MAPS:
        path = os.path.join(pin_dir, name)
        if os.path.lexists(path):
            os.unlink(path)
            removed.append(path)
    for name in _marks(pin_dir):
        os.rmdir(os.path.join(pin_dir, name))
    cur = os.path.abspath(pin_dir)
    stop = os.path.abspath(stop_at) if stop_at else None
    while cur and cur != stop and cur != '/' and os.path.isdir(cur):
        if stop and not cur.startswith(stop + '/'):
            break
        try:
            os.rmdir(cur)
        except OSError:
            break
        removed.append(cur)
        cur = os.path.dirname(cur)
    return removed


def remove_tree(path):
    """Unlink every pin below ``path`` and the directories (bpffs has no rmtree)."""
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            os.rmdir(os.path.join(root, name))
    os.rmdir(path)


STAGING_PREFIX = 'staging_'
DIGEST_PREFIX = 'objsha256_'
OWNER_PREFIX = 'owner_'


# --- marks beside the pins -------------------------------------------------------------
# bpffs holds no regular files, so facts about the pins are names of empty directories
# beside them: the object's content hash (a run learns the pinned program's tag without
# loading the object again, and check mode needs no staging at all) and the attachment
# that owns the pins (netns and interface, hex-encoded: bpffs refuses dots in names).
def object_digest(path):
    """sha256 of a BPF object file (hex)."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 16), b''):
            h.update(chunk)
    return h.hexdigest()


def _marks(pin_dir, prefix=None):
    try:
        names = os.listdir(pin_dir)
    except OSError:
        return []
    return [n for n in names if n.startswith(prefix or (DIGEST_PREFIX, OWNER_PREFIX))]


def _read_mark(pin_dir, prefix):
    marks = _marks(pin_dir, prefix)
    return marks[0][len(prefix):] if len(marks) == 1 else None


def _write_mark(pin_dir, prefix, value):
    if _read_mark(pin_dir, prefix) == value:
        return
    for name in _marks(pin_dir, prefix):
        os.rmdir(os.path.join(pin_dir, name))
    os.mkdir(os.path.join(pin_dir, prefix + value))


def pinned_digest(pin_dir):
    """The object hash recorded beside the pins, or None."""
    return _read_mark(pin_dir, DIGEST_PREFIX)


def record_digest(pin_dir, digest):
    """Record ``digest`` as the object the pins in ``pin_dir`` came from."""
    _write_mark(pin_dir, DIGEST_PREFIX, digest)


def pinned_owner(pin_dir):
    """(netns or None, ifname) of the attachment that owns the pins, or None when unknown."""
    mark = _read_mark(pin_dir, OWNER_PREFIX)
    try:
        ns, ifname = bytes.fromhex(mark or '').decode('utf-8').split('/', 1)
    except ValueError:  # no mark (pins of an older release), or not ours
        return None
    return ns or None, ifname


def record_owner(pin_dir, netns, ifname):
    """Mark the pins in ``pin_dir`` as belonging to ``ifname`` in ``netns``."""
    _write_mark(pin_dir, OWNER_PREFIX, ('%s/%s' % (netns or '', ifname)).encode('utf-8').hex())


def owner_error(pin_dir, netns, ifname):
    """A message when the pins in ``pin_dir`` belong to another attachment, else None."""
    owner = pinned_owner(pin_dir)
    if owner is None or owner == (netns or None, ifname):
        return None
    return ('pin_dir %s holds the pins of %s in %s, not of %s in %s; choose another pin_dir '
            '(the default is one per interface)'
            % (pin_dir, owner[1], where(owner[0]), ifname, where(netns)))


def sweep_staging(parent, max_age=600.0, now=None):
    """Remove staging directories that a killed run left in ``parent`` (older than
    ``max_age`` seconds), so their programs and maps are freed. Returns what was removed."""
    now = time.time() if now is None else now
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        path = os.path.join(parent, name)
        if not name.startswith(STAGING_PREFIX) or not os.path.isdir(path):
            continue
        try:
            if now - os.stat(path).st_mtime > max_age:
                remove_tree(path)
                removed.append(path)
        except OSError:
            pass  # a concurrent run cleaned it up
    return removed


# --- map access ---------------------------------------------------------------------
def possible_cpus():
    """Number of possible CPUs (per-CPU map values have one slot per possible CPU)."""
    with open('/sys/devices/system/cpu/possible') as f:
        spec = f.read().strip()
    last = 0
    for part in spec.split(','):
        last = max(last, int(part.split('-')[-1]))
    return last + 1


def map_lookup(fd, key, value_size):
    """Raw value bytes for ``key`` (bytes) or None when the key is absent."""
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value_size)
    try:
        _bpf(BPF_MAP_LOOKUP_ELEM, struct.pack('=IIQQQ', fd, 0, _addr(k), _addr(v), 0),
             'map lookup')
    except BpfError as e:
        if e.errno == errno.ENOENT:
            return None
        raise
    return v.raw


def map_update(fd, key, value, flags=BPF_ANY):
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value, len(value))
    _bpf(BPF_MAP_UPDATE_ELEM, struct.pack('=IIQQQ', fd, 0, _addr(k), _addr(v), flags),
         'map update')


def _array_values(fd, max_entries, value_size):
    """All values of an ARRAY map as one bytes object, batched when the kernel allows."""
    keys = ctypes.create_string_buffer(4 * max_entries)
    values = ctypes.create_string_buffer(value_size * max_entries)
    out_batch = ctypes.create_string_buffer(4)
    try:
        attr = _bpf(BPF_MAP_LOOKUP_BATCH,
                    struct.pack('=QQQQIIQQ', 0, _addr(out_batch), _addr(keys), _addr(values),
                                max_entries, fd, 0, 0), 'map lookup batch')[1]
        count = struct.unpack_from('=I', attr.raw, 32)[0]
        if count == max_entries:
            return values.raw
    except BpfError as e:
        if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOENT, 524):  # 524: ENOTSUPP
            raise
    chunks = []
    for i in range(max_entries):
        chunks.append(map_lookup(fd, struct.pack('=I', i), value_size) or b'\0' * value_size)
    return b''.join(chunks)


def read_steer_ports(pin_dir):
    """Sorted list of UDP ports set in the pinned ``steer_ports`` map."""
    fd = obj_get(os.path.join(pin_dir, 'steer_ports'))
    try:
        info = map_info(fd)
        vals = _array_values(fd, info['max_entries'], info['value_size'])
    finally:
        os.close(fd)
    size = info['value_size']
    return [i for i in range(info['max_entries']) if vals[i * size] != 0]


def write_steer_ports(pin_dir, ports, current=None):
    """Make the pinned ``steer_ports`` hold exactly ``ports``.

    New ports are added before stale ones are cleared, so a port that stays wanted
    never drops out. Returns (added, removed).
    """
    if current is None:
        current = read_steer_ports(pin_dir)
    want = set(ports)
    added = sorted(want - set(current))
    removed = sorted(set(current) - want)
    fd = obj_get(os.path.join(pin_dir, 'steer_ports'))
    try:
        for p in added:
            map_update(fd, struct.pack('=I', p), b'\x01')
        for p in removed:
            map_update(fd, struct.pack('=I', p), b'\x00')
    finally:
        os.close(fd)
    return added, removed


def read_percpu_counters(path, names):
    """Sum a pinned PERCPU_ARRAY of ``struct {u64 packets, bytes}`` over all CPUs."""
    fd = obj_get(path)
    try:
        info = map_info(fd)
        ncpu = possible_cpus()
        slot = (info['value_size'] + 7) // 8 * 8
        out = {}
        for idx, name in enumerate(names[:info['max_entries']]):
            raw = map_lookup(fd, struct.pack('=I', idx), slot * ncpu) or b''
            pkts = byts = 0
            for cpu in range(ncpu):
                p, b = struct.unpack_from('=QQ', raw, cpu * slot) if raw else (0, 0)
                pkts += p
                byts += b
            out[name] = {'packets': pkts, 'bytes': byts}
        return out
    finally:
        os.close(fd)


def read_steer_stats(pin_dir):
    """Counters of one attachment, summed over CPUs.

    Returns ``{'seen': {'packets': n, 'bytes': n}, 'matched': ..., 'redirected': ...,
    'redirect_missed': ..., 'passed': ...}``. Raises BpfError (errno ENOENT) when the
    pin does not exist.
    """
    return read_percpu_counters(os.path.join(pin_dir, 'steer_stats'), STEER_COUNTERS)


def packets_of(value):
    """Counter value as an int: accepts ``{'packets': n, 'bytes': m}`` or a bare number."""
    if isinstance(value, dict):
        value = value.get('packets', 0)
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def steer_delta(before, after):
    """Packets per steering counter between two read_steer_stats() snapshots.

    Values may be ``{'packets', 'bytes'}`` or ints. None when either snapshot is missing
    (program not attached / not pinned)."""
    if before is None or after is None:
        return None
    return dict((name, packets_of(after.get(name)) - packets_of(before.get(name)))
                for name in STEER_COUNTERS)


# --- loading (bpftool / libbpf) -----------------------------------------------------
def bpftool_loadall_cmd(bpftool, obj, progs_dir, pinmaps_dir=None, reuse_maps=None,
                        offload_dev=None):
    """argv of ``bpftool prog loadall``: pins every program in ``progs_dir/<name>``.

    ``reuse_maps``: {map name: pinned path} to load against existing maps (the
    forwarder's sockets stay registered); ``pinmaps_dir``: pin fresh maps there.
    """
    cmd = [bpftool, '-d', 'prog', 'loadall', obj, progs_dir, 'type', 'xdp']
    for name in sorted(reuse_maps or {}):
        cmd += ['map', 'name', name, 'pinned', reuse_maps[name]]
    if offload_dev:
        cmd += ['dev', offload_dev]
    if pinmaps_dir:
        cmd += ['pinmaps', pinmaps_dir]
    return cmd


def verifier_log(stderr):
    """The interesting part of bpftool/libbpf's debug output for a failed load."""
    lines = stderr.splitlines()
    begin = [i for i, l in enumerate(lines) if 'BEGIN PROG LOAD LOG' in l]
    end = [i for i, l in enumerate(lines) if 'END PROG LOAD LOG' in l]
    if begin and end and end[-1] > begin[-1]:
        body = lines[begin[-1] + 1:end[-1]]
        tail = [line for line in lines[end[-1] + 1:]
                if line.startswith('Error:') or 'failed' in line.lower()]
        return '\n'.join(body + tail).strip()
    keep = [line for line in lines if not line.startswith('libbpf: elf:')]
    return '\n'.join(keep[-40:]).strip()


# --- can this process use bpf() and AF_XDP at all? (kernel_preflight) ---------------
BPF_MAP_CREATE = 0
BPF_PROG_LOAD = 5
BPF_MAP_TYPE_XSKMAP = 17
AF_XDP = 44
# r0 = XDP_PASS; exit
_XDP_PASS_INSNS = struct.pack('=BBhiBBhi', 0xb7, 0, 0, 2, 0x95, 0, 0, 0)


def load_xdp_pass():
    """Load (and close) the smallest XDP program there is."""
    insns = ctypes.create_string_buffer(_XDP_PASS_INSNS, len(_XDP_PASS_INSNS))
    lic = ctypes.create_string_buffer(b'GPL')
    attr = struct.pack('=IIQQIIQII16s', BPF_PROG_TYPE_XDP, 2, _addr(insns), _addr(lic),
                       0, 0, 0, 0, 0, b'kbypass_probe')
    os.close(_bpf(BPF_PROG_LOAD, attr, 'load a trivial XDP program')[0])


def create_xskmap():
    """Create (and close) a one-entry XSKMAP, the map AF_XDP redirects through."""
    attr = struct.pack('=IIIII', BPF_MAP_TYPE_XSKMAP, 4, 4, 1, 0)
    os.close(_bpf(BPF_MAP_CREATE, attr, 'create an XSKMAP')[0])


def open_xdp_socket():
    """Open (and close) an AF_XDP socket."""
    import socket  # pylint: disable=import-outside-toplevel
    socket.socket(AF_XDP, socket.SOCK_RAW, 0).close()


def probe_afxdp_steps():
    """Try each thing the bench needs from the kernel, in order.

    Returns [(step, errno or None)] for 'prog_load', 'xskmap', 'xdp_socket'.
    """
    results = []
    for step, call in (('prog_load', load_xdp_pass), ('xskmap', create_xskmap),
                       ('xdp_socket', open_xdp_socket)):
        try:
            call()
            results.append((step, None))
        except OSError as exc:
            results.append((step, exc.errno or errno.EIO))
    return results
