# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of the end-to-end proof: counter deltas, agreement checks, report rendering.

Nothing here touches the system. ``kbypass.xdp.traffic_probe`` collects raw
measurements on the target; ``kbypass.xdp.verify_report`` runs these functions on the
controller, writes the report and returns the verdict. Unit tests call them directly.

The proof for matching traffic (one address family at a time) is a chain; the first
link that breaks is the one named in the failure message::

    generator sent == XDP matched == XDP redirected == forwarder RX
                   (echo) == forwarder TX == replies received, lost == 0
"""

from __future__ import annotations

import json
import time

from ansible_collections.kbypass.xdp.plugins.module_utils._bpf import (  # noqa: F401
    CAPTURE_RING_MAP,
    STEER_COUNTERS,
    packets_of as _packets,
    steer_delta,
)

ECHO_MODES = ('echo',)
SINK_MODES = ('rxdrop',)


# --------------------------------------------------------------------------------------
# deltas (the steering counters' are _bpf's: one definition next to the C contract)
# --------------------------------------------------------------------------------------
def forwarder_delta(before, after):
    """RX/TX deltas from two forwarder stats-file snapshots.

    A missing ``before`` (the forwarder started during the burst) counts from zero;
    a missing ``after`` means no stats at all: None. A restart between the snapshots
    (pid changed, counters went down) also counts the new process from zero.
    """
    if not isinstance(after, dict):
        return None
    base = before if isinstance(before, dict) else {}
    if base and (base.get('pid') != after.get('pid')
                 or _packets(after.get('rx_packets')) < _packets(base.get('rx_packets'))):
        base = {}
    names = {'rx_packets': 'rx', 'tx_packets': 'tx', 'rx_bytes': 'rx_bytes', 'tx_bytes': 'tx_bytes'}
    return dict((short, _packets(after.get(name)) - _packets(base.get(name)))
                for name, short in names.items())


# --------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------
def _fallback_hint(steer):
    missed = steer.get('redirect_missed', 0) if steer else 0
    if missed:
        return (' — it fell back to the kernel (redirect_missed grew by %d): '
                'is the forwarder running?' % missed)
    return ''


def check_matching(label, requested, gen, steer, fwd, mode='echo'):
    """Check one burst of matching traffic. Return a list of failure messages, in order.

    ``label``: e.g. ``IPv4 198.18.0.10:4242``; ``requested``: packets asked of the
    generator; ``gen``: kbypass-gen's JSON (sent/received/lost); ``steer``:
    ``steer_delta()``; ``fwd``: ``forwarder_delta()``; ``mode``: forwarder mode in use.
    """
    failures = []
    if not gen:
        return ['%s: the traffic generator produced no result' % label]
    sent = _packets(gen.get('sent'))
    received = _packets(gen.get('received'))
    if sent != requested:
        failures.append('%s: generator sent %d of %d requested packets' % (label, sent, requested))
    if steer is None:
        failures.append('%s: XDP counters unavailable (steer_stats not pinned): is the steering '
                        'program attached?' % label)
        return failures
    if steer['matched'] != sent:
        failures.append(
            '%s: XDP matched %d != generator sent %d: the steering program did not see the '
            'matching traffic — is it attached to the DUT interface and is the port in '
            'steer_ports?' % (label, steer['matched'], sent))
    if steer['redirected'] != steer['matched']:
        failures.append(
            '%s: XDP redirected %d != XDP matched %d: matching traffic was not echoed by user '
            'space%s' % (label, steer['redirected'], steer['matched'],
                         _fallback_hint(steer) or ' (no AF_XDP socket took it)'))
    if fwd is None:
        failures.append('%s: forwarder stats unavailable: matching traffic was not echoed by user '
                        'space%s' % (label, _fallback_hint(steer) or ' — is the forwarder running?'))
        return failures
    if fwd['rx'] != steer['redirected']:
        failures.append(
            '%s: forwarder RX %d != XDP redirected %d: matching traffic was not echoed by user '
            'space%s' % (label, fwd['rx'], steer['redirected'],
                         _fallback_hint(steer) or ' (redirected frames did not reach the socket: '
                         'RX ring full or wrong queue?)'))
    if mode in ECHO_MODES:
        if fwd['tx'] != fwd['rx']:
            failures.append('%s: forwarder TX %d != forwarder RX %d: the forwarder did not echo '
                            'every packet it received' % (label, fwd['tx'], fwd['rx']))
        if received != fwd['tx']:
            failures.append('%s: replies received %d != forwarder TX %d: echoed packets were lost '
                            'on the way back to the peer' % (label, received, fwd['tx']))
        lost = _packets(gen.get('lost'))
        if lost or received != sent:
            failures.append('%s: %d of %d packets lost (received %d)'
                            % (label, sent - received, sent, received))
    elif mode in SINK_MODES:
        if fwd['tx'] != 0:
            failures.append('%s: forwarder TX %d != 0 in %s mode' % (label, fwd['tx'], mode))
        if received:
            failures.append('%s: %d replies received but the forwarder runs in %s mode'
                            % (label, received, mode))
    return failures


def _as_list(value):
    if not value:
        return []
    return value if isinstance(value, list) else [value]


def check_nonmatching(probes, steer, fwd):
    """Check that non-matching traffic went through the kernel, not the socket.

    ``probes``: the ``nonmatching`` result of traffic_probe; ``steer``/``fwd``: deltas
    measured around all of it. Return a list of failure messages.
    """
    failures = []
    if fwd is not None and fwd['rx'] != 0:
        failures.append('non-matching traffic reached the AF_XDP socket: forwarder RX grew by %d '
                        '(expected 0)' % fwd['rx'])
    if steer is not None:
        if steer['redirected'] != 0:
            failures.append('non-matching traffic was redirected by XDP: redirected grew by %d '
                            '(expected 0)' % steer['redirected'])
        expected_passed = sum(_packets(u.get('sent')) for u in _as_list(probes.get('udp')))
        expected_passed += sum(_packets(i.get('received')) for i in _as_list(probes.get('icmp')))
        if steer['passed'] < expected_passed:
            failures.append('XDP passed grew by %d, expected at least %d (non-matching packets the '
                            'kernel answered)' % (steer['passed'], expected_passed))
    for udp in _as_list(probes.get('udp')):
        if _packets(udp.get('received')) != _packets(udp.get('sent')):
            failures.append('UDP to %s port %s: a kernel socket received %d of %d datagrams'
                            % (udp.get('address'), udp.get('port'), _packets(udp.get('received')),
                               _packets(udp.get('sent'))))
    for tcp in _as_list(probes.get('tcp')):
        if tcp.get('outcome') not in ('refused', 'connected'):
            failures.append('TCP to %s port %s: %s — the kernel did not answer (expected a RST or '
                            'a connection)' % (tcp.get('address'), tcp.get('port'),
                                               tcp.get('outcome')))
    for ping in (probes.get('icmp') or []):
        if _packets(ping.get('received')) != _packets(ping.get('sent')):
            failures.append('ICMP echo to %s: %d of %d replies' % (
                ping.get('address'), _packets(ping.get('received')), _packets(ping.get('sent'))))
    for neigh in (probes.get('neighbour') or []):
        if not neigh.get('resolved'):
            failures.append('neighbour %s on the peer did not resolve after a flush (state %s): '
                            'ARP/ND is not reaching the kernel'
                            % (neigh.get('address'), neigh.get('state')))
    return failures


def check_observation(observation, ifname, program_name='xdp_steer', mode='echo'):
    """Check the tcpdump capture and bpftool's view. Return a list of failure messages.

    The capture of echoed datagrams is only judged in echo mode.
    """
    failures = []
    for cap in (observation.get('tcpdump') or []) if mode in ECHO_MODES else []:
        if _packets(cap.get('captured')) < _packets(cap.get('wanted')):
            failures.append('tcpdump on the peer saw %d of %d echoed datagrams (%s)'
                            % (_packets(cap.get('captured')), _packets(cap.get('wanted')),
                               cap.get('filter')))
    prog = observation.get('program')
    if observation.get('bpftool_net') is not None:
        if not prog:
            failures.append('bpftool net shows no XDP program on %s' % ifname)
        elif program_name and prog.get('name') != program_name:
            failures.append('bpftool net shows program %r on %s, expected %r'
                            % (prog.get('name'), ifname, program_name))
    xsks = observation.get('xsks_map')
    if xsks is not None and xsks.get('type') != 'xskmap':
        failures.append('pinned xsks_map is a %s map, expected xskmap' % xsks.get('type'))
    return failures


_SECTIONS = ('topology', 'forwarder', 'nonmatching', 'observation')


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _missing_counters(snapshot, names):
    """Names in ``names`` that ``snapshot`` (a dict of counters) lacks or holds no number for."""
    if not isinstance(snapshot, dict):
        return list(names)
    out = []
    for n in names:
        v = snapshot.get(n)
        if isinstance(v, dict):
            v = v.get('packets')
        if not _is_count(v):
            out.append(n)
    return out


def usable(data):
    """(data with every section of the wrong type dropped, what was wrong) — rendering
    and the checks then only see dicts where dicts belong."""
    problems = []
    if not isinstance(data, dict):
        return {}, ['the measurement is a %s, not a mapping' % type(data).__name__]
    clean = dict(data)
    for key in _SECTIONS:
        if key in clean and clean[key] is not None and not isinstance(clean[key], dict):
            problems.append('%s is a %s, not a mapping' % (key, type(clean[key]).__name__))
            clean[key] = None
    bursts = clean.get('matching')
    if bursts is not None and not isinstance(bursts, list):
        problems.append('matching is a %s, not a list of bursts' % type(bursts).__name__)
        bursts = []
    bad = [i for i, b in enumerate(bursts or []) if not isinstance(b, dict)]
    if bad:
        which = ','.join(str(i) for i in bad)
        problems.append('matching[%s] %s not a mapping' % (which, 'is' if len(bad) == 1 else 'are'))
    clean['matching'] = [b for b in bursts or [] if isinstance(b, dict)]
    return clean, problems


def evidence_problems(data, mode):
    """What a PASS needs and ``data`` (after usable()) lacks: a verdict without these
    counters would be a PASS without evidence."""
    out = []
    if data.get('failed'):
        out.append('the measurement itself failed: %s' % (data.get('msg') or 'no message'))
    if not data.get('matching'):
        out.append('no matching burst was measured: nothing proves that traffic went '
                   'through user space')
    for i, burst in enumerate(data.get('matching') or []):
        label = 'matching[%d] (%s)' % (i, burst.get('family', '?'))
        if not _is_count(burst.get('requested')) or not burst.get('requested'):
            out.append('%s: the number of packets requested is missing' % label)
        gen = burst.get('generator')
        need = ('sent', 'received') if mode in ECHO_MODES else ('sent',)
        missing = _missing_counters(gen, need)
        if isinstance(gen, dict) and missing:
            out.append('%s: generator counters missing: %s' % (label, ', '.join(missing)))
        for key in ('steer_before', 'steer_after'):
            missing = _missing_counters(burst.get(key), STEER_COUNTERS)
            if burst.get(key) is not None and missing:
                out.append('%s: %s lacks counters %s' % (label, key, ', '.join(missing)))
        missing = _missing_counters(burst.get('forwarder_after'), ('rx_packets', 'tx_packets'))
        if burst.get('forwarder_after') is not None and missing:
            out.append('%s: forwarder_after lacks %s' % (label, ', '.join(missing)))
    nm = data.get('nonmatching')
    if nm:
        for key in ('steer_before', 'steer_after'):
            missing = _missing_counters(nm.get(key), STEER_COUNTERS)
            if missing:
                out.append('nonmatching: %s lacks counters %s' % (key, ', '.join(missing)))
    return out


def evaluate(data, mode=None):
    """Evaluate everything traffic_probe measured.

    Returns ``{'ok', 'failures', 'matching', 'nonmatching', 'observation'}`` where the
    three sections hold the deltas used and per-section failures. ``failures[0]`` is a
    wrong attachment (no program, a foreign one) when there is one, else the first piece
    of evidence that is missing or the first counter that disagrees: PASS
    needs every required counter present and in agreement.
    """
    data, failures = usable(data)
    mode = mode or (data.get('forwarder') or {}).get('mode') or 'echo'
    result = {'mode': mode, 'matching': [], 'nonmatching': None, 'observation': None}
    # what is attached comes first: no program explains every missing counter after it
    obs = data.get('observation')
    if obs:
        fails = check_observation(obs, (data.get('topology') or {}).get('dut_ifname'), mode=mode)
        failures.extend(fails)
        result['observation'] = {'failures': fails}
    failures.extend(evidence_problems(data, mode))
    for burst in data.get('matching') or []:
        steer = steer_delta(burst.get('steer_before'), burst.get('steer_after'))
        fwd = forwarder_delta(burst.get('forwarder_before'), burst.get('forwarder_after'))
        address = str(burst.get('address'))
        label = '%s %s:%s' % (burst.get('family', '?'),
                              '[%s]' % address if ':' in address else address, burst.get('port'))
        gen = burst.get('generator') if isinstance(burst.get('generator'), dict) else None
        fails = check_matching(label, _packets(burst.get('requested')), gen, steer, fwd, mode)
        failures.extend(fails)
        result['matching'].append({'label': label, 'family': burst.get('family'),
                                   'steer': steer, 'forwarder': fwd,
                                   'generator': _gen_summary(gen),
                                   'failures': fails})
    nm = data.get('nonmatching')
    if nm:
        steer = steer_delta(nm.get('steer_before'), nm.get('steer_after'))
        fwd = forwarder_delta(nm.get('forwarder_before'), nm.get('forwarder_after'))
        fails = check_nonmatching(nm, steer, fwd)
        failures.extend(fails)
        result['nonmatching'] = {'steer': steer, 'forwarder': fwd, 'failures': fails}
    result['failures'] = failures
    result['ok'] = not failures
    return result


def _gen_summary(gen):
    if not gen:
        return None
    rtt = gen.get('rtt_us') or {}
    return {'sent': gen.get('sent'), 'received': gen.get('received'), 'lost': gen.get('lost'),
            'tx_pps': gen.get('tx_pps'), 'rx_pps': gen.get('rx_pps'),
            'duration_s': gen.get('duration_s'),
            'rtt_us': dict((k, rtt.get(k)) for k in ('p50', 'p90', 'p99', 'max'))}


# --------------------------------------------------------------------------------------
# series for the plot
# --------------------------------------------------------------------------------------
def series_rates(series, total=None):
    """Turn kbypass-gen's ``series`` into ``(t, tx_pps, rx_pps)`` lists.

    Each sample holds packets sent/received during the interval ending at ``t``
    (seconds since start). When the samples are cumulative counters instead — their
    last value, not their sum, matches ``total`` (packets sent) — they are differenced.
    """
    pts = [(float(s.get('t', 0)), float(s.get('tx', 0)), float(s.get('rx', 0)))
           for s in series or [] if isinstance(s, dict)]
    if not pts:
        return [], [], []
    ts = [p[0] for p in pts]
    tx = [p[1] for p in pts]
    rx = [p[2] for p in pts]
    if total and len(pts) > 1 and all(b >= a for a, b in zip(tx, tx[1:])) \
            and abs(tx[-1] - total) < abs(sum(tx) - total):
        tx = [tx[0]] + [b - a for a, b in zip(tx, tx[1:])]
        rx = [rx[0]] + [b - a for a, b in zip(rx, rx[1:])]
    out_t, rates_tx, rates_rx = [], [], []
    prev = None
    for t, a, b in zip(ts, tx, rx):
        if prev is None and t <= 0:
            out_t.append(t)  # the start sample (nothing sent yet)
            rates_tx.append(0.0)
            rates_rx.append(0.0)
        elif prev is None or t > prev:
            width = t - (prev or 0.0)
            out_t.append(t)
            rates_tx.append(a / width)
            rates_rx.append(b / width)
        else:
            continue  # a repeated sample at the same time (final flush) adds nothing
        prev = t
    return out_t, rates_tx, rates_rx


# --------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------
def _fmt(value, digits=0):
    if value is None:
        return '—'
    if isinstance(value, float):
        return ('%.' + str(digits) + 'f') % value
    return str(value)


def summary_lines(host, data, verdict):
    """A few lines for the play output (debug task)."""
    lines = []
    prog = (data.get('observation') or {}).get('program') or {}
    fwd = data.get('forwarder') or {}
    lines.append('%s: %s — program %s id %s (%s), forwarder %s/%s' % (
        host, 'PASS' if verdict['ok'] else 'FAIL', prog.get('name', '?'), prog.get('id', '?'),
        prog.get('mode', '?'), verdict.get('mode'), fwd.get('bind_mode') or '?'))
    for burst in verdict['matching']:
        gen = burst.get('generator') or {}
        steer = burst.get('steer') or {}
        fwdd = burst.get('forwarder') or {}
        rtt = gen.get('rtt_us') or {}
        lines.append('%s: sent %s, redirected %s, fwd rx/tx %s/%s, replies %s, %s pps, '
                     'rtt p50 %s us' % (
                         burst['label'], _fmt(gen.get('sent')), _fmt(steer.get('redirected')),
                         _fmt(fwdd.get('rx')), _fmt(fwdd.get('tx')), _fmt(gen.get('received')),
                         _fmt(gen.get('tx_pps')), _fmt(rtt.get('p50'))))
    nm = verdict.get('nonmatching')
    if nm:
        lines.append('non-matching: XDP passed +%s, forwarder rx +%s' % (
            _fmt((nm.get('steer') or {}).get('passed')),
            _fmt((nm.get('forwarder') or {}).get('rx'))))
    if verdict['failures']:
        lines.append('first disagreement: %s' % verdict['failures'][0])
    return lines


def render_markdown(host, data, verdict, plot_name=None):
    """The per-host Markdown report."""
    topo = data.get('topology') or {}
    obs = data.get('observation') or {}
    prog = obs.get('program') or {}
    fwd = data.get('forwarder') or {}
    out = []
    out.append('# kbypass.xdp verify — %s' % host)
    out.append('')
    out.append('**Verdict: %s**%s' % (
        'PASS' if verdict['ok'] else 'FAIL',
        '' if verdict['ok'] else ' — ' + verdict['failures'][0]))
    out.append('')
    if data.get('timestamp'):
        out.append('Run at %s.' % data['timestamp'])
        out.append('')
    out.append('## Topology')
    out.append('')
    out.append('| role | namespace | interface | addresses |')
    out.append('|---|---|---|---|')
    out.append('| device under test | %s | %s | %s |' % (
        topo.get('dut_netns') or '(root)', topo.get('dut_ifname'),
        ', '.join((topo.get('dut_link') or {}).get('addresses') or topo.get('dut_addresses') or [])))
    out.append('| traffic peer | %s | %s | %s |' % (
        topo.get('peer_netns') or '(root)', topo.get('peer_ifname'),
        ', '.join(topo.get('peer_addresses') or [])))
    out.append('')
    out.append('## XDP program and forwarder')
    out.append('')
    out.append('| item | value |')
    out.append('|---|---|')
    out.append('| program | %s (id %s, tag %s) |'
               % (prog.get('name', '—'), prog.get('id', '—'), prog.get('tag', '—')))
    out.append('| attach mode | %s |' % prog.get('mode', '—'))
    xsks = obs.get('xsks_map') or {}
    out.append('| xsks_map | %s, %s entries (id %s) |' % (
        xsks.get('type', '—'), xsks.get('max_entries', '—'), xsks.get('id', '—')))
    out.append('| pin dir | `%s` |' % topo.get('pin_dir', '—'))
    out.append('| forwarder | %s, mode %s, bind %s, queues %s, pid %s |' % (
        topo.get('forwarder_instance', '—'), verdict.get('mode'), fwd.get('bind_mode', '—'),
        fwd.get('queues', '—'), fwd.get('pid', '—')))
    out.append('')
    out.append('## Matching traffic (UDP, through user space)')
    out.append('')
    out.append('| burst | sent | XDP matched | XDP redirected | redirect missed | fwd RX | fwd TX '
               '| replies | lost | tx pps | rx pps | RTT p50 / p99 / max (µs) |')
    out.append('|---|---|---|---|---|---|---|---|---|---|---|---|')
    for burst in verdict['matching']:
        gen = burst.get('generator') or {}
        steer = burst.get('steer') or {}
        fwdd = burst.get('forwarder') or {}
        rtt = gen.get('rtt_us') or {}
        out.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s / %s |' % (
            burst['label'], _fmt(gen.get('sent')), _fmt(steer.get('matched')),
            _fmt(steer.get('redirected')), _fmt(steer.get('redirect_missed')),
            _fmt(fwdd.get('rx')), _fmt(fwdd.get('tx')), _fmt(gen.get('received')),
            _fmt(gen.get('lost')), _fmt(gen.get('tx_pps')), _fmt(gen.get('rx_pps')),
            _fmt(rtt.get('p50'), 1), _fmt(rtt.get('p99'), 1), _fmt(rtt.get('max'), 1)))
    out.append('')
    nm = data.get('nonmatching')
    if nm:
        nmv = verdict.get('nonmatching') or {}
        out.append('## Non-matching traffic (through the kernel)')
        out.append('')
        out.append('| probe | result |')
        out.append('|---|---|')
        for udp in _as_list(nm.get('udp')):
            out.append('| UDP to %s port %s (kernel listener) | %s of %s received |' % (
                udp.get('address'), udp.get('port'), udp.get('received'), udp.get('sent')))
        for tcp in _as_list(nm.get('tcp')):
            out.append('| TCP to %s port %s | %s |'
                       % (tcp.get('address'), tcp.get('port'), tcp.get('outcome')))
        for ping in nm.get('icmp') or []:
            out.append('| ICMP echo to %s | %s of %s replies |' % (
                ping.get('address'), ping.get('received'), ping.get('sent')))
        for neigh in nm.get('neighbour') or []:
            out.append('| ARP/ND for %s after flush | %s (%s) |' % (
                neigh.get('address'), neigh.get('state'), neigh.get('lladdr') or 'no lladdr'))
        out.append('| XDP passed (delta) | %s |' % _fmt((nmv.get('steer') or {}).get('passed')))
        out.append('| XDP redirected (delta) | %s |'
                   % _fmt((nmv.get('steer') or {}).get('redirected')))
        out.append('| forwarder RX (delta) | %s |' % _fmt((nmv.get('forwarder') or {}).get('rx')))
        out.append('')
    caps = obs.get('tcpdump') or []
    if caps:
        out.append('## Observation')
        out.append('')
        for cap in caps:
            out.append('- tcpdump in `%s` on %s (`%s`): %s of %s echoed datagrams captured' % (
                topo.get('peer_netns'), topo.get('peer_ifname'), cap.get('filter'),
                cap.get('captured'), cap.get('wanted')))
        out.append('')
    if plot_name:
        out.append('## Packet rate during the verify burst')
        out.append('')
        out.append('![pps over time](%s)' % plot_name)
        out.append('')
    if verdict['failures']:
        out.append('## Disagreements')
        out.append('')
        for msg in verdict['failures']:
            out.append('- %s' % msg)
        out.append('')
    return '\n'.join(out)


def render_json(host, data, verdict):
    """The per-host JSON report (stable key order)."""
    return json.dumps({'host': host, 'ok': verdict['ok'], 'failures': verdict['failures'],
                       'verdict': verdict, 'data': data}, indent=2, sort_keys=True) + '\n'


# --------------------------------------------------------------------------------------
# what the kernel sees (kbypass.xdp.kernel_view's document)
# --------------------------------------------------------------------------------------
KERNEL_NOTE = '''\
**Why `tcpdump` on the device under test shows no steered packets.** The steering program
redirects the steered UDP ports into AF_XDP sockets at the XDP hook, before the kernel
builds an skb; tcpdump listens on an `AF_PACKET` tap further up, so it sees only what the
program passes to the kernel (ARP, ICMP, other ports), and the forwarder's copy-mode TX
bypasses the taps as well. The counters above prove that the packets are there. To see
them, capture at the XDP hook: `make observe` (`playbooks/observe.yml`, module
`kbypass.xdp.xdp_capture`) writes `reports/<host>-observe-<ifname>.pcapng` with the action
per packet (`tcpdump -nn -r` it). In kernel (TAP) mode `tcpdump -i <tap>` in the device
under test's namespace shows the reinjected packets.'''

# forwarder stats shown in the report, top level or the sockets' xdp_stats (the JSON keeps all)
_FWD_KEYS = ('rx_packets', 'tx_packets', 'rx_dropped', 'rx_ring_full',
             'rx_fill_ring_empty_descs', 'tx_ring_empty_descs', 'invalid', 'kernel_dropped')


def _stats64(link, way):
    return ((link.get('stats64') or link.get('stats') or {}).get(way) or {})


def _xdp_of(xdp_show, ifname):
    """'<mode> id <id>' of ``ifname``'s XDP attachment(s) in a bpftool net show document."""
    out = []
    for section in xdp_show or []:
        for att in section.get('xdp') or []:
            if att.get('devname') != ifname:
                continue
            for prog in att.get('multi_attachments') or [att]:
                out.append('%s id %s' % (prog.get('mode', '?'), prog.get('id', '?')))
    return ', '.join(out) or '—'


def _cell(value):
    if isinstance(value, (list, tuple)):
        return ','.join(str(v) for v in value) if value else '—'
    return _fmt(value).replace('|', '\\|')


def render_kernel_markdown(view, note=KERNEL_NOTE):
    """The "what the kernel sees" section from kernel_view's ``view``."""
    view = view if isinstance(view, dict) else {}
    out = ['## What the kernel sees', '', note, '']
    out += ['### Namespaces and links (`ip -s link`, `bpftool net show`)', '',
            '| namespace | link | state | mtu | XDP | rx packets | rx dropped | tx packets '
            '| tx dropped |', '|---|---|---|---|---|---|---|---|---|']
    for ns, space in sorted((view.get('namespaces') or {}).items()):
        for link in (space or {}).get('links') or []:
            if link.get('link_type') == 'loopback':
                continue
            rx, tx = _stats64(link, 'rx'), _stats64(link, 'tx')
            out.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
                ns, _cell(link.get('ifname')), _cell(link.get('operstate')),
                _cell(link.get('mtu')), _xdp_of(space.get('xdp'), link.get('ifname')),
                _cell(rx.get('packets')), _cell(rx.get('dropped')),
                _cell(tx.get('packets')), _cell(tx.get('dropped'))))
    out += ['', '### XDP programs (`bpftool prog show`)', '',
            '| id | name | tag | type | loaded at | xlated / jited bytes | map ids |',
            '|---|---|---|---|---|---|---|']
    map_names = dict((m.get('id'), m.get('name')) for m in view.get('maps') or [])
    for prog in view.get('programs') or []:
        name = _cell(prog.get('name'))
        if any(map_names.get(i) == CAPTURE_RING_MAP for i in prog.get('map_ids') or []):
            name += ' (capture build: a capture was running)'
        loaded = prog.get('loaded_at')
        if isinstance(loaded, int):
            loaded = time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(loaded))
        out.append('| %s | %s | %s | %s | %s | %s / %s | %s |' % (
            _cell(prog.get('id')), name, _cell(prog.get('tag')), _cell(prog.get('type')),
            _cell(loaded), _cell(prog.get('bytes_xlated')), _cell(prog.get('bytes_jited')),
            _cell(prog.get('map_ids'))))
    out += ['', '### Their maps (`bpftool map show`)', '',
            '| id | name | type | key / value bytes | max entries |', '|---|---|---|---|---|']
    for m in view.get('maps') or []:
        out.append('| %s | %s | %s | %s / %s | %s |' % tuple(_cell(m.get(k)) for k in (
            'id', 'name', 'type', 'bytes_key', 'bytes_value', 'max_entries')))
    out += ['', '### AF_XDP sockets in the XSKMAP, by queue (the forwarder\'s registration)', '',
            'The kernel does not hand socket fds to user space, so `bpftool map dump` cannot '
            'list an XSKMAP; each forwarder reports the queues it bound.', '',
            '| forwarder | namespace | interface | queues | bind mode | running |',
            '|---|---|---|---|---|---|']
    for reg in view.get('xsk_registrations') or []:
        out.append('| %s | %s | %s | %s | %s | %s |' % tuple(_cell(reg.get(k)) for k in (
            'instance', 'netns', 'iface', 'queues', 'bind_mode', 'running')))
    out += ['', '### Forwarder stats', '',
            '| forwarder | pid | mode | %s |' % ' | '.join(k.replace('_', ' ') for k in _FWD_KEYS),
            '|---|---|---|%s' % ('---|' * len(_FWD_KEYS))]
    for name, st in sorted((view.get('forwarders') or {}).items()):
        st = st if isinstance(st, dict) else {}
        xsk = st.get('xdp_stats') if isinstance(st.get('xdp_stats'), dict) else {}  # the socket's own
        out.append('| %s | %s | %s | %s |' % (
            _cell(name), _cell(st.get('pid')), _cell(st.get('mode')),
            ' | '.join(_cell(st[k] if k in st else xsk.get(k)) for k in _FWD_KEYS)))
    out += ['', '### `ethtool -S` (counters that are not zero)', '']
    for ns, space in sorted((view.get('namespaces') or {}).items()):
        for ifname, stats in sorted(((space or {}).get('ethtool_stats') or {}).items()):
            busy = ['%s %s' % (k, v) for k, v in sorted((stats or {}).items()) if v]
            out.append('- %s/%s: %s' % (ns, ifname, ', '.join(busy) or 'all zero'))
    if view.get('errors'):
        out += ['', '### What could not be read', '']
        for err in view['errors']:
            where = err.get('command') or err.get('file') or '?'
            out.append('- %s%s: %s' % (where, ' in %s' % err['netns'] if err.get('netns') else '',
                                       err.get('error')))
    out.append('')
    return '\n'.join(out)
