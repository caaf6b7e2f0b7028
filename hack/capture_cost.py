# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-packet cost of the capture build of the steering program, next to the normal one.

Runs both programs of files/bpf (built first) on one UDP/4242 frame with
BPF_PROG_TEST_RUN (``bpftool prog run ... repeat N``): no interface, no traffic, so the
figures are the programs' own CPU time. The capture build is measured twice: with room in
its ring (every run samples) and with the ring full (every run drops its sample, as when
the reader falls behind). Prints JSON: the runs and their medians in ns per packet.
Needs root; loads into a temporary bpffs directory that it removes.

    python3 hack/capture_cost.py [repetitions]
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BPF = os.path.join(ROOT, 'files', 'bpf')
RUNS = 3000  # fewer than the ring holds (1 MiB / 280 B), so "room" really samples each run


def frame():
    payload = b'k' * 18
    udp = struct.pack('!HHHH', 40000, 4242, 8 + len(payload), 0) + payload
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     socket.inet_aton('198.18.0.2'), socket.inet_aton('198.18.0.1'))
    return b'\x02' * 6 + b'\x04' * 6 + b'\x08\x00' + ip + udp


def bpftool(*args):
    return subprocess.run(['bpftool'] + list(args), check=True, capture_output=True,
                          text=True).stdout


def load(obj, pin):
    """Load ``obj`` fresh (an empty ring) with its maps under ``pin``; steer port 4242."""
    subprocess.run(['rm', '-rf', pin], check=True)  # bpffs: rm -r works on pins
    os.makedirs(pin)
    bpftool('prog', 'loadall', obj, pin + '/p', 'type', 'xdp', 'pinmaps', pin)
    key = [str(b) for b in struct.pack('<I', 4242)]
    bpftool('map', 'update', 'pinned', pin + '/steer_ports', 'key', *key, 'value', '1')
    return pin + '/p/xdp_steer'


def run(prog, pkt, n=RUNS):
    return json.loads(bpftool('-j', 'prog', 'run', 'pinned', prog, 'data_in', pkt,
                              'repeat', str(n)))['duration']


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    subprocess.run(['make', '-s', '-C', BPF], check=True)
    tmp = tempfile.mkdtemp(prefix='kbypass-cost-')
    pins = tempfile.mkdtemp(prefix='kbypass_cost_', dir='/sys/fs/bpf')
    pkt = os.path.join(tmp, 'frame.bin')
    with open(pkt, 'wb') as f:
        f.write(frame())
    runs = {'normal': [], 'capture_sampling': [], 'capture_ring_full': []}
    try:
        for _rep in range(reps):
            runs['normal'].append(run(load(os.path.join(BPF, 'xdp_steer.o'), pins + '/n'), pkt))
            cap = load(os.path.join(BPF, 'xdp_steer_capture.o'), pins + '/c')
            runs['capture_sampling'].append(run(cap, pkt))
            run(cap, pkt, 5000)  # no reader: the ring is full from here on
            runs['capture_ring_full'].append(run(cap, pkt))
    finally:
        subprocess.run(['rm', '-rf', pins, tmp], check=False)
    medians = dict((k, statistics.median(v)) for k, v in runs.items())
    print(json.dumps({'ns_per_packet_runs': runs, 'median_ns': medians,
                      'ratio_to_normal': dict((k, round(v / medians['normal'], 2))
                                              for k, v in medians.items())}, indent=1))


if __name__ == '__main__':
    main()
