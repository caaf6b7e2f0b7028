# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for module_utils/_capture.py: filter, frame classification, sample and ring
decoding, pcapng blocks, and the record layout against files/bpf/xdp_steer_capture.c.
The kernel side (swap, real ring) is in tests/integration/test_xdp_capture.py."""
from __future__ import annotations

import mmap
import os
import re
import socket
import struct

import pytest

from ansible_collections.kbypass.xdp.plugins.module_utils import _capture
from ansible_collections.kbypass.xdp.plugins.modules import xdp_capture

SRC = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'files', 'bpf',
                   'xdp_steer_capture.c')


def eth(ethertype, payload, tags=()):
    frame = b'\x02' * 6 + b'\x04' * 6
    for tpid in tags:
        frame += struct.pack('!HH', tpid, 100)
    return frame + struct.pack('!H', ethertype) + payload


def ipv4(proto, l4):
    return struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0,
                       socket.inet_aton('198.18.0.2'), socket.inet_aton('198.18.0.1')) + l4


def udp(sport, dport):
    return struct.pack('!HHHH', sport, dport, 8, 0)


@pytest.mark.parametrize('text, want', [
    ('', {'proto': None, 'port': None}),
    ('udp', {'proto': 'udp', 'port': None}),
    ('udp port 4242', {'proto': 'udp', 'port': 4242}),
    ('UDP and port 53', {'proto': 'udp', 'port': 53}),
    ('port 22', {'proto': None, 'port': 22}),
    ('arp', {'proto': 'arp', 'port': None}),
])
def test_parse_filter(text, want):
    assert _capture.parse_filter(text) == (want, None)


@pytest.mark.parametrize('text, words', [
    ('udp prot 4242', 'prot'), ('port 70000', '65535'), ('port', 'port'), ('udp tcp', 'tcp'),
    ('icmp port 1', 'no ports'), ('host 1.2.3.4', 'host'),
])
def test_parse_filter_errors(text, words):
    flt, err = _capture.parse_filter(text)
    assert flt is None and words in err


def test_classify_and_match():
    v4 = eth(0x0800, ipv4(17, udp(40000, 4242)))
    assert _capture.classify(v4) == ('udp', 40000, 4242)
    assert _capture.classify(eth(0x0800, ipv4(17, udp(1, 4242)), (0x88A8, 0x8100))) == \
        ('udp', 1, 4242)
    assert _capture.classify(eth(0x0806, b'\0' * 28)) == ('arp', None, None)
    assert _capture.classify(eth(0x0800, ipv4(1, b'\x08\0\0\0'))) == ('icmp', None, None)
    v6 = struct.pack('!IHBB16s16s', 6 << 28, 8, 58, 64, b'\0' * 16, b'\0' * 16) + b'\x80' * 8
    assert _capture.classify(eth(0x86DD, v6)) == ('icmp', None, None)
    assert _capture.classify(b'\0' * 10) == ('other', None, None)
    assert _capture.classify(eth(0x0800, ipv4(6, b'\0\x16'))) == ('tcp', None, None)  # cut
    flt = _capture.parse_filter('udp port 4242')[0]
    assert _capture.matches(flt, v4)
    assert not _capture.matches(flt, eth(0x0800, ipv4(17, udp(40000, 4243))))
    assert not _capture.matches(flt, eth(0x0806, b'\0' * 28))
    assert _capture.matches(_capture.parse_filter('')[0], eth(0x0806, b'\0' * 28))


def test_decode_sample_bounds_cap_len():
    raw = _capture.SAMPLE_HDR.pack(5, 1500, 9999, 1, 3) + b'x' * _capture.SNAPLEN
    s = _capture.decode_sample(raw)
    assert s == {'ts_ns': 5, 'pkt_len': 1500, 'rx_queue': 3, 'action': 'redirected',
                 'data': b'x' * _capture.SNAPLEN}
    assert _capture.decode_sample(_capture.SAMPLE_HDR.pack(0, 60, 2, 9, 0) + b'ab')['action'] \
        == 'other'


def blocks(data):
    off, out = 0, []
    while off < len(data):
        btype, size = struct.unpack_from('=II', data, off)
        assert size % 4 == 0 and struct.unpack_from('=I', data, off + size - 4)[0] == size
        out.append((btype, data[off + 8:off + size - 4]))
        off += size
    assert off == len(data)
    return out


def test_pcapng_blocks():
    data = _capture.pcapng_header('veth0') + _capture.pcapng_packet(
        (7 << 32) + 9, b'abcde', 60, 'xdp action: passed (rx queue 0)')
    (shb, shb_body), (idb, idb_body), (epb, epb_body) = blocks(data)
    assert (shb, idb, epb) == (0x0A0D0D0A, 1, 6)
    assert struct.unpack_from('=I', shb_body)[0] == 0x1A2B3C4D
    assert struct.unpack_from('=HHI', idb_body) == (1, 0, _capture.SNAPLEN)
    assert b'veth0' in idb_body and struct.pack('=HH', 9, 1) + b'\x09' in idb_body
    assert struct.unpack_from('=IIIII', epb_body) == (0, 7, 9, 5, 60)
    assert epb_body[20:25] == b'abcde'
    code, length = struct.unpack_from('=HH', epb_body, 28)
    assert code == 1 and epb_body[32:32 + length] == b'xdp action: passed (rx queue 0)'


def fake_ring(records, size=4096):
    """A Ring over anonymous memory laid out as the kernel's (consumer page; producer
    page, then the data area): records are (flags, payload)."""
    ring = _capture.Ring.__new__(_capture.Ring)
    page = mmap.PAGESIZE
    ring.mask, ring.data_off = size - 1, page
    ring.cons, ring.prod = mmap.mmap(-1, page), mmap.mmap(-1, page + 2 * size)
    pos = 0
    for flags, payload in records:
        at = page + pos
        struct.pack_into('=II', ring.prod, at, len(payload) | flags, 0)
        ring.prod[at + 8:at + 8 + len(payload)] = payload
        pos += (len(payload) + 8 + 7) & ~7
    struct.pack_into('=Q', ring.prod, 0, pos)
    return ring


def test_ring_drain_skips_discarded_and_stops_at_busy():
    ring = fake_ring([(0, b'one'), (1 << 30, b'gone'), (0, b'three!!!!'), (1 << 31, b'busy'),
                      (0, b'after')])
    assert list(ring.drain()) == [b'one', b'three!!!!']
    # the consumer position stops before the busy record, so it is read next time
    assert struct.unpack_from('=Q', ring.cons, 0)[0] == 8 + 8 + 8 + 8 + 8 + 16
    assert list(ring.drain()) == []
    ring.close()


def test_ring_drain_limit():
    ring = fake_ring([(0, b'a'), (0, b'b'), (0, b'c')])
    assert list(ring.drain(limit=2)) == [b'a', b'b']
    assert list(ring.drain()) == [b'c']
    ring.close()


def test_layout_matches_the_c_source():
    with open(SRC) as f:
        src = f.read()
    assert re.search(r'#define KB_CAPTURE_SNAPLEN %d\b' % _capture.SNAPLEN, src)
    fields = re.search(r'struct kb_capture_sample \{(.*?)\};', src, re.S).group(1)
    types = re.findall(r'__u(\d+) (\w+)', fields)
    assert types[:5] == [('64', 'ts_ns'), ('32', 'pkt_len'), ('32', 'cap_len'),
                         ('32', 'action'), ('32', 'rx_queue')]
    assert _capture.SAMPLE_HDR.size == 24
    enum = re.search(r'enum kb_capture_action \{(.*?)\};', src, re.S).group(1)
    names = [n.lower() for n in re.findall(r'KB_CAPTURE_(\w+) = \d+', enum)]
    assert tuple(names) == _capture.ACTIONS
    assert '} %s SEC(".maps")' % _capture.RING_MAP in src
    assert '} kb_capture_drops SEC(".maps")' in src and _capture.DROPS_MAP == 'kb_capture_drop'


@pytest.mark.parametrize('params, words', [
    ({'dest': None}, 'dest'), ({'duration': 0}, 'duration'), ({'count': -1}, 'count'),
    ({'filter': 'udp prot 1'}, 'not understood'), ({'interface': 'a' * 20}, 'interface'),
])
def test_module_validate(params, words):
    base = {'interface': 'veth0', 'netns': 'ns1', 'dest': '/tmp/x.pcapng', 'duration': 5,
            'count': 10, 'filter': '', 'state': 'present'}
    base.update(params)
    assert any(words in e for e in xdp_capture.validate(base))
    base = dict(base, dest=None, duration=0, state='absent', filter='udp prot 1')
    base['interface'] = 'veth0'
    assert xdp_capture.validate(base) == []
