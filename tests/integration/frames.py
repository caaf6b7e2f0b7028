"""Hand-crafted Ethernet frames and a raw-socket peer, shared by the forwarder's C tests
and the fault suite (VLAN tags, checksum forms, malformed lengths and versions)."""
import struct

PORT = 4242

PEER_SCRIPT = r"""
import json, socket, struct, sys, time
dev, frames = sys.argv[1], [bytes.fromhex(f) for f in json.loads(sys.argv[2])]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((dev, 0))
s.setsockopt(263, 8, 1)  # SOL_PACKET, PACKET_AUXDATA: the kernel strips the outer tag on RX
s.settimeout(0.2)
for f in frames:
    s.send(f)
out, deadline = [], time.time() + 3
while time.time() < deadline and len(out) < len(frames):
    try:
        data, anc, _, addr = s.recvmsg(65535, 1024)
    except socket.timeout:
        continue
    if addr[2] == socket.PACKET_OUTGOING:
        continue
    for level, kind, cdata in anc:
        if (level, kind) == (263, 8):
            status, _, _, _, _, tci, tpid = struct.unpack('IIIHHHH', cdata[:20])
            if status & 0x10:  # TP_STATUS_VLAN_VALID: put the tag back where it was
                tpid = tpid if status & 0x40 else 0x8100
                data = data[:12] + struct.pack('!HH', tpid, tci) + data[12:]
    if b'kbtp-vlan' in data:
        out.append(data.hex())
print(json.dumps(out))
"""


def csum(data):
    if len(data) % 2:
        data += b'\0'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return s


def udp_frame(dst_mac, src_mac, tags, src, dst, sport, dport, payload, partial=False):
    """Ethernet + VLAN tags [(tpid, tci)] + IPv4/IPv6 + UDP with a complete checksum, or
    only the pseudo-header sum (what a CHECKSUM_PARTIAL sender leaves) if partial."""
    import ipaddress
    s_ip, d_ip = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    ulen = 8 + len(payload)
    pseudo = s_ip.packed + d_ip.packed + struct.pack('!HH', 17, ulen)
    udp = struct.pack('!HHHH', sport, dport, ulen, 0) + payload
    if partial:
        check = csum(pseudo)
    else:
        check = (~csum(pseudo + udp) & 0xffff) or 0xffff
    udp = udp[:6] + struct.pack('!H', check) + udp[8:]
    if s_ip.version == 4:
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + ulen, 1, 0, 64, 17, 0, s_ip.packed,
                         d_ip.packed)
        ip = ip[:10] + struct.pack('!H', ~csum(ip) & 0xffff) + ip[12:]
        ethertype = 0x0800
    else:
        ip = struct.pack('!IHBB16s16s', 0x60000000, ulen, 17, 64, s_ip.packed, d_ip.packed)
        ethertype = 0x86dd
    hdr = bytes.fromhex(dst_mac.replace(':', '')) + bytes.fromhex(src_mac.replace(':', ''))
    for tpid, tci in tags:
        hdr += struct.pack('!HH', tpid, tci)
    return hdr + struct.pack('!H', ethertype) + ip + udp


def put16(frame, off, value):
    return frame[:off] + struct.pack('!H', value) + frame[off + 2:]


def malformed_frames(dut, peer, v4_addrs=('198.18.40.2', '198.18.40.1'),
                     v6_addrs=('2001:2:40::2', '2001:2:40::1')):
    """(name, frame) for each malformed case, and one valid datagram of each family."""
    def v4(tag):
        return udp_frame(dut, peer, [], v4_addrs[0], v4_addrs[1], 40100, PORT,
                         b'kbtp-vlan-bad-' + tag)

    def v6(tag):
        return udp_frame(dut, peer, [], v6_addrs[0], v6_addrs[1], 40100, PORT,
                         b'kbtp-vlan-bad-' + tag)
    # IPv4 header at 14 (total length at 16), UDP at 34 (length at 38);
    # IPv6 header at 14 (payload length at 18), UDP at 54 (length at 58)
    bad = [
        ('v4-total-length-beyond-frame', put16(v4(b'a'), 16, 400)),
        ('v4-version-6', v4(b'b')[:14] + b'\x65' + v4(b'b')[15:]),
        ('v4-udp-length-below-8', put16(v4(b'c'), 38, 4)),
        ('v4-udp-length-beyond-frame', put16(v4(b'd'), 38, 600)),
        ('v4-udp-length-beyond-ip', put16(put16(v4(b'e'), 16, 28), 38, 16)),
        ('v6-payload-length-beyond-frame', put16(v6(b'f'), 18, 600)),
        ('v6-version-4', v6(b'g')[:14] + b'\x40' + v6(b'g')[15:]),
        ('v6-udp-length-below-8', put16(v6(b'h'), 58, 6)),
        ('v6-udp-length-beyond-ip', put16(v6(b'i'), 58, 200)),
    ]
    good = [('v4-valid', v4(b'ok4')), ('v6-valid', v6(b'ok6'))]
    return bad, good
