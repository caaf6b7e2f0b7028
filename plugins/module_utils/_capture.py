# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Capture at the XDP hook: the work behind kbypass.xdp.xdp_capture.

files/bpf/xdp_steer_capture.o is the steering program plus a sampler: after its verdict
it puts the first bytes of the frame and the action into the BPF ring buffer
``kb_capture_ring`` (a full ring drops the sample and counts it in ``kb_capture_drops``,
the packet is never held). This module swaps that object in on the steering program's
pins (the kbypass.xdp.xdp_attach logic: atomic replace, same maps, so AF_XDP sockets stay
registered), drains the ring through mmap and writes pcapng with the action of each
packet as its comment, then swaps the normal object back.

Pure parts (filter, frame classification, sample decoding, pcapng blocks) are unit
tested; ``Ring`` and the swap need the kernel.
"""

from __future__ import annotations

import mmap
import os
import struct

from ansible_collections.kbypass.xdp.plugins.module_utils import _bpf, _xdp
from ansible_collections.kbypass.xdp.plugins.module_utils._attach import Attachment

# --- the capture program's contract (files/bpf/xdp_steer_capture.c) -------------------
RING_MAP = _bpf.CAPTURE_RING_MAP
DROPS_MAP = 'kb_capture_drops'[:15]  # the kernel keeps 15 characters of a map name
SNAPLEN = 256
SAMPLE_HDR = struct.Struct('=QIIII')  # ts_ns, pkt_len, cap_len, action, rx_queue
ACTIONS = ('passed', 'redirected', 'redirect_missed', 'other')  # enum kb_capture_action
PROTOS = ('udp', 'tcp', 'icmp', 'arp')

_RB_BUSY = 1 << 31
_RB_DISCARD = 1 << 30
_RB_HDR = 8


# --- filter --------------------------------------------------------------------------
def parse_filter(text):
    """``(filter, error)`` from a tcpdump-like expression: an optional protocol (udp, tcp,
    icmp, arp) and an optional ``port N``, joined by spaces or ``and``. Empty: all."""
    words = [w for w in (text or '').lower().split() if w != 'and']
    flt = {'proto': None, 'port': None}
    i = 0
    while i < len(words):
        w = words[i]
        if w in PROTOS and flt['proto'] is None:
            flt['proto'] = w
        elif w == 'port' and flt['port'] is None and i + 1 < len(words):
            i += 1
            if not words[i].isdigit() or not 1 <= int(words[i]) <= 65535:
                return None, 'filter: port must be a number between 1 and 65535, got %r' % words[i]
            flt['port'] = int(words[i])
        else:
            return None, ('filter %r is not understood at %r; use a protocol (%s), "port N" '
                          'or both, e.g. "udp port 4242"' % (text, w, ', '.join(PROTOS)))
        i += 1
    if flt['port'] is not None and flt['proto'] in ('icmp', 'arp'):
        return None, 'filter %r: %s has no ports' % (text, flt['proto'])
    return flt, None


def classify(frame):
    """``(proto, sport, dport)`` of an Ethernet frame (up to two VLAN tags); proto is one
    of PROTOS or 'other', ports are None when there are none."""
    off, ethertype = 12, None
    for _tag in range(3):
        if len(frame) < off + 2:
            return 'other', None, None
        ethertype = struct.unpack_from('!H', frame, off)[0]
        if ethertype not in (0x8100, 0x88A8):
            break
        off += 4
    off += 2
    if ethertype == 0x0806:
        return 'arp', None, None
    if ethertype == 0x0800 and len(frame) >= off + 20:
        l4, l4off = frame[off + 9], off + (frame[off] & 0x0F) * 4
    elif ethertype == 0x86DD and len(frame) >= off + 40:
        l4, l4off = frame[off + 6], off + 40
    else:
        return 'other', None, None
    if l4 in (1, 58):
        return 'icmp', None, None
    name = {6: 'tcp', 17: 'udp'}.get(l4)
    if name is None:
        return 'other', None, None
    if len(frame) < l4off + 4:
        return name, None, None
    sport, dport = struct.unpack_from('!HH', frame, l4off)
    return name, sport, dport


def matches(flt, frame):
    proto, sport, dport = classify(frame)
    if flt.get('proto') and proto != flt['proto']:
        return False
    if flt.get('port') and flt['port'] not in (sport, dport):
        return False
    return True


# --- samples and pcapng --------------------------------------------------------------
def decode_sample(raw):
    """A ring record as {'ts_ns', 'pkt_len', 'action', 'rx_queue', 'data'}."""
    ts_ns, pkt_len, cap_len, action, queue = SAMPLE_HDR.unpack_from(raw, 0)
    cap_len = min(cap_len, SNAPLEN, len(raw) - SAMPLE_HDR.size)
    return {'ts_ns': ts_ns, 'pkt_len': pkt_len, 'rx_queue': queue,
            'action': ACTIONS[action] if action < len(ACTIONS) else 'other',
            'data': bytes(raw[SAMPLE_HDR.size:SAMPLE_HDR.size + cap_len])}


def _pad4(data):
    return data + b'\0' * (-len(data) % 4)


def _block(btype, body):
    size = 12 + len(body)
    return struct.pack('=II', btype, size) + body + struct.pack('=I', size)


def _option(code, value):
    return struct.pack('=HH', code, len(value)) + _pad4(value)


def pcapng_header(ifname, snaplen=SNAPLEN):
    """Section header and one Ethernet interface with nanosecond timestamps."""
    shb = _block(0x0A0D0D0A, struct.pack('=IHHq', 0x1A2B3C4D, 1, 0, -1))
    opts = (_option(2, ifname.encode()) + _option(9, b'\x09')  # if_name, if_tsresol 1e-9
            + _option(0, b''))
    idb = _block(1, struct.pack('=HHI', 1, 0, snaplen) + opts)
    return shb + idb


def pcapng_packet(ts_ns, data, orig_len, comment):
    """Enhanced packet block on interface 0, with ``comment`` (opt_comment)."""
    body = struct.pack('=IIIII', 0, ts_ns >> 32, ts_ns & 0xFFFFFFFF, len(data), orig_len)
    body += _pad4(data) + _option(1, comment.encode()) + _option(0, b'')
    return _block(6, body)


def comment_of(sample):
    return 'xdp action: %s (rx queue %d)' % (sample['action'], sample['rx_queue'])


# --- the ring buffer (kernel) --------------------------------------------------------
class Ring(object):
    """Consumer side of a BPF_MAP_TYPE_RINGBUF, over mmap (as libbpf's ring_buffer)."""

    def __init__(self, fd, size):
        page = mmap.PAGESIZE
        self.mask = size - 1
        self.cons = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        # producer page, then the data area mapped twice so a record never wraps
        self.prod = mmap.mmap(fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        self.data_off = page

    def drain(self, limit=None):
        """Yield the raw bytes of every committed record (at most ``limit``)."""
        pos = struct.unpack_from('=Q', self.cons, 0)[0]
        end = struct.unpack_from('=Q', self.prod, 0)[0]
        n = 0
        while pos < end and (limit is None or n < limit):
            at = self.data_off + (pos & self.mask)
            hdr = struct.unpack_from('=I', self.prod, at)[0]
            if hdr & _RB_BUSY:
                break  # reserved, not yet submitted
            length = hdr & ~(_RB_BUSY | _RB_DISCARD)
            if not hdr & _RB_DISCARD:
                n += 1
                yield self.prod[at + _RB_HDR:at + _RB_HDR + length]
            pos += (length + _RB_HDR + 7) & ~7
            struct.pack_into('=Q', self.cons, 0, pos)

    def close(self):
        self.cons.close()
        self.prod.close()


def capture_maps(prog_id):
    """{'ring': info, 'drops': info} of the capture maps of program ``prog_id``; empty
    when it is not the capture build."""
    found = {}
    for map_id in _bpf.prog_info_by_id(prog_id)['map_ids']:
        fd = _bpf.map_fd_by_id(map_id)
        try:
            info = _bpf.map_info(fd)
        finally:
            os.close(fd)
        for key, name in (('ring', RING_MAP), ('drops', DROPS_MAP)):
            if info['name'] == name:
                found[key] = info
    return found


def read_drops(map_id):
    """Samples the program could not put into the ring, summed over CPUs."""
    fd = _bpf.map_fd_by_id(map_id)
    try:
        raw = _bpf.map_lookup(fd, b'\0\0\0\0', 8 * _bpf.possible_cpus()) or b''
    finally:
        os.close(fd)
    return sum(struct.unpack('=%dQ' % (len(raw) // 8), raw))


# --- swapping the object on the pins ---------------------------------------------------
class SwapFailed(Exception):
    """xdp_attach's logic refused or failed; the message is for a person."""


class _AttachParams(object):
    """The calling module as kbypass.xdp.xdp_attach would see it for one swap: other
    params, never check mode, failures raised instead of ending the module."""

    check_mode = False
    _diff = False

    def __init__(self, module, params):
        self._module = module
        self.params = params

    def fail_json(self, msg, **kwargs):
        raise SwapFailed(msg)

    def exit_json(self, **kwargs):
        raise SwapFailed('unexpected early exit while swapping the program')

    def __getattr__(self, name):
        return getattr(self._module, name)


def swap_object(module, target, obj):
    """Put the program of ``obj`` on ``target``'s pins ({interface, netns, pin_dir,
    ports, bpftool}), keeping its maps and mode. Returns xdp_attach's result dict."""
    params = dict(target, object=obj, program=_bpf.STEER_PROG_NAME, mode='auto',
                  state='present', force=False)
    att = Attachment(_AttachParams(module, params))
    try:
        link = _xdp.query(target['interface'], target['netns'])
        if link is None:
            raise SwapFailed('interface %r is gone' % target['interface'])
        att.present(link)
    except _xdp.XdpError as e:
        raise SwapFailed(str(e)) from e
    finally:
        att.cleanup()
    return att.result
