# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jumbo frames: when a packet needs more than one AF_XDP frame, and whether this kernel can
do XDP multi-buffer (``xdp.frags`` programs) and AF_XDP multi-buffer (``XDP_USE_SG``).

The probes are real: in a forked child with a network namespace of its own (``unshare``,
gone with the child, so nothing can be left behind) they create a veth pair with a jumbo
MTU, attach an XDP program loaded with ``BPF_F_XDP_HAS_FRAGS`` through a bpf link, and bind
an AF_XDP socket with ``XDP_USE_SG`` in copy mode. Used by kernel_preflight.
"""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import socket
import struct
import subprocess

from ansible_collections.kbypass.xdp.plugins.module_utils import _bpf

# The forwarder's numbers (files/forwarder/xsk_common.h, kb_single_frame_mtu): a copy-mode
# frame holds XDP_PACKET_HEADROOM, then the packet with Ethernet and two VLAN tags.
XDP_HEADROOM = 256
L2_OVERHEAD = 22
STANDARD_MTU = 1500
PROBE_MTU = 9000

BPF_F_XDP_HAS_FRAGS = 1 << 5
BPF_LINK_CREATE = 28
BPF_XDP = 37
SOL_XDP = 283
XDP_RX_RING, XDP_UMEM_REG, XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING = 2, 4, 5, 6
XDP_COPY, XDP_USE_SG = 1 << 1, 1 << 4
CLONE_NEWNET = 0x40000000

# names of the probes in kernel_preflight's RV(probes)
PROBES = ('xdp_multi_buffer', 'af_xdp_multi_buffer')
PROBE_TEXT = {
    'xdp_multi_buffer': 'attaching an xdp.frags program (BPF_F_XDP_HAS_FRAGS) to a veth '
                        'with MTU %d' % PROBE_MTU,
    'af_xdp_multi_buffer': 'binding an AF_XDP socket with XDP_USE_SG (copy mode)',
}


def single_frame_mtu(frame_size):
    """The largest MTU whose packets fit one frame of ``frame_size`` bytes."""
    return frame_size - XDP_HEADROOM - L2_OVERHEAD


def needs_multi_buffer(mtu, frame_size=4096):
    """True when an interface of this MTU delivers packets larger than one frame."""
    return mtu is not None and mtu > single_frame_mtu(frame_size)


def refusal_cause(probe, err):
    """Why a multi-buffer probe failed, and what to do (``err``: errno)."""
    name = errno.errorcode.get(err, str(err))
    if probe == 'xdp_multi_buffer':
        if err == errno.ERANGE:
            why = ('the kernel refuses XDP on a veth whose peer has MTU %d: this kernel cannot '
                   'run xdp.frags programs with a jumbo MTU on veth' % PROBE_MTU)
        elif err == errno.EINVAL:
            why = 'the kernel does not know BPF_F_XDP_HAS_FRAGS (needs kernel >= 5.18)'
        else:
            why = 'the kernel answered %s' % name
    else:
        if err == errno.EINVAL:
            why = 'the kernel does not know XDP_USE_SG (AF_XDP multi-buffer needs kernel >= 6.6)'
        elif err == errno.EOPNOTSUPP:
            why = 'the driver cannot do AF_XDP multi-buffer'
        else:
            why = 'the kernel answered %s' % name
    return '%s failed with %s: %s' % (PROBE_TEXT[probe], name, why)


def missing_for_mtu(mtu, frame_size, results):
    """Missing items (kernel_preflight's shape) when ``mtu`` needs multi-buffer and a probe
    said no. ``results``: {probe: (ok True/False/None, errno or None)}."""
    if not needs_multi_buffer(mtu, frame_size):
        return []
    out = []
    for probe in PROBES:
        ok, err = results.get(probe, (None, None))
        if ok is False:
            out.append({
                'item': probe,
                'runtime': True,
                'reason': ('MTU %d needs multi-buffer (a %d-byte frame holds an MTU of at most '
                           '%d) but %s. Use an MTU of at most %d (e.g. %d) on this host, or boot '
                           'a kernel >= 6.6 (XDP and AF_XDP multi-buffer in copy mode)'
                           % (mtu, frame_size, single_frame_mtu(frame_size),
                              refusal_cause(probe, err), single_frame_mtu(frame_size),
                              STANDARD_MTU))})
    return out


# --- the probes (a forked child in a namespace of its own) -------------------------------

def _load_xdp_pass(frags):
    insns = ctypes.create_string_buffer(_bpf._XDP_PASS_INSNS, len(_bpf._XDP_PASS_INSNS))
    lic = ctypes.create_string_buffer(b'GPL')
    # prog_type, insn_cnt, insns, license, log_level, log_size, log_buf, kern_version,
    # prog_flags, prog_name
    attr = struct.pack('=IIQQIIQII16s', _bpf.BPF_PROG_TYPE_XDP, 2, ctypes.addressof(insns),
                       ctypes.addressof(lic), 0, 0, 0, 0,
                       BPF_F_XDP_HAS_FRAGS if frags else 0, b'kbypass_mbprobe')
    return _bpf._bpf(_bpf.BPF_PROG_LOAD, attr, 'load an XDP program')[0]


def _attach(prog_fd, ifindex):
    attr = struct.pack('=IIII', prog_fd, ifindex, BPF_XDP, 0)
    return _bpf._bpf(BPF_LINK_CREATE, attr, 'attach XDP with a bpf link')[0]


def _bind_sg(ifindex, flags):
    """Bind an AF_XDP socket (one 64 KiB UMEM, small rings) to queue 0 with ``flags``."""
    sock = socket.socket(_bpf.AF_XDP, socket.SOCK_RAW, 0)
    area = mmap.mmap(-1, 16 * 4096)
    base = ctypes.addressof(ctypes.c_char.from_buffer(area))
    try:
        # xdp_umem_reg: addr, len, chunk_size, headroom, flags, tx_metadata_len
        sock.setsockopt(SOL_XDP, XDP_UMEM_REG,
                        struct.pack('=QQIIII', base, 16 * 4096, 4096, 0, 0, 0))
        for opt in (XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING, XDP_RX_RING):
            sock.setsockopt(SOL_XDP, opt, struct.pack('=I', 64))
        # sockaddr_xdp: family, flags, ifindex, queue_id, shared_umem_fd
        addr = ctypes.create_string_buffer(struct.pack('=HHIII', _bpf.AF_XDP, flags, ifindex, 0, 0))
        if _bpf._c().bind(sock.fileno(), addr, ctypes.c_uint(16)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        sock.close()
        try:
            area.close()
        except BufferError:
            pass


def _ip(*args):
    subprocess.run(['ip'] + list(args), check=True, capture_output=True, timeout=5)


def _child(frags, sg_flags):
    """In the child: the probes in a fresh network namespace; returns the results dict."""
    out = {}
    if _bpf._c().unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        return {'error': 'unshare(CLONE_NEWNET): %s' % os.strerror(err)}
    try:
        _ip('link', 'add', 'kbmb0', 'mtu', str(PROBE_MTU), 'type', 'veth', 'peer', 'name',
            'kbmb1', 'mtu', str(PROBE_MTU))
        _ip('link', 'set', 'kbmb0', 'up')
        _ip('link', 'set', 'kbmb1', 'up')
    except (OSError, subprocess.SubprocessError) as exc:
        return {'error': 'could not create a veth pair in the probe namespace: %s'
                % (getattr(exc, 'stderr', None) or exc)}
    ifindex = socket.if_nametoindex('kbmb0')
    link = None
    try:
        prog = _load_xdp_pass(frags)
        try:
            link = _attach(prog, ifindex)
            out['xdp_multi_buffer'] = (True, None)
        finally:
            os.close(prog)
    except OSError as exc:
        out['xdp_multi_buffer'] = (False, exc.errno)
    try:
        _bind_sg(ifindex, sg_flags)
        out['af_xdp_multi_buffer'] = (True, None)
    except OSError as exc:
        out['af_xdp_multi_buffer'] = (False, exc.errno)
    if link is not None:
        os.close(link)
    return out


def probe(frags=True, sg_flags=XDP_COPY | XDP_USE_SG):
    """{probe: (ok, errno)} for both probes, or {'error': text} when they could not run.

    ``frags``/``sg_flags`` are the probe's inputs; tests force them (a program without
    frags, an unknown bind flag) to see the real kernel refuse.
    """
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(rfd)
            try:
                res = _child(frags, sg_flags)
            except Exception as exc:  # pylint: disable=broad-except
                res = {'error': str(exc)}
            os.write(wfd, json.dumps(res).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    data = b''
    try:
        with os.fdopen(rfd, 'rb') as reader:
            data = reader.read()
    finally:
        os.waitpid(pid, 0)
    try:
        res = json.loads(data.decode() or '{}')
    except ValueError:
        res = {}
    if 'error' in res or not res:
        return {'error': res.get('error') or 'the probe process died'}
    return dict((k, tuple(v)) for k, v in res.items())
