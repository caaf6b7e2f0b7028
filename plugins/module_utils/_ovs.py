# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Open vSwitch (userspace datapath, afxdp ports): OVSDB reads, the bridge plan, the
parsers of ovs-appctl/ovs-ofctl text and the verify judgement.

Everything above ``OvsCli`` is pure and unit-tested. ovs-vswitchd opens its ports in
its own network namespace (the root one here), so nothing in this file enters another.
"""

from __future__ import annotations

import json
import os
import re
import tempfile

from ansible_collections.kbypass.xdp.plugins.module_utils._common import (
    PIN_ROOT,
    ROOT_NS_LABEL,
    format_cpulist,
)

XDP_MODES = ('best-effort', 'native-with-zerocopy', 'native', 'generic')
AFXDP_TYPES = ('afxdp', 'afxdp-nonpmd')
# port types that open an existing Linux interface of the same name
NETDEV_TYPES = AFXDP_TYPES + ('system', '')
PORT_COLUMNS = ('options', 'other_config')


# --------------------------------------------------------------------------------------
# OVSDB JSON (ovs-vsctl --format=json) -> Python
# --------------------------------------------------------------------------------------
def ovsdb_value(value):
    """Decode one OVSDB JSON datum: maps to dicts, sets to lists, uuids to strings."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        kind, inner = value
        if kind == 'map':
            return dict((ovsdb_value(k), ovsdb_value(v)) for k, v in inner)
        if kind == 'set':
            return [ovsdb_value(v) for v in inner]
        if kind in ('uuid', 'named-uuid'):
            return inner
    return value


def ovsdb_rows(doc):
    """``{"headings": [...], "data": [[...], ...]}`` -> list of dicts."""
    heads = doc.get('headings') or []
    return [dict(zip(heads, [ovsdb_value(v) for v in row])) for row in doc.get('data') or []]


def scalar(value):
    """An optional OVSDB column: an empty set means None."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def as_list(value):
    """A set column: one member is given bare, several as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def bridge_state(bridges, ports, interfaces, name):
    """The normalized state of bridge ``name`` from the three tables' rows.

    ``{'exists', 'datapath_type', 'ports': {name: {'type', 'options', 'other_config',
    'ofport_request', 'ofport', 'error'}}}``; only single-interface ports are described.
    """
    bridge = next((b for b in bridges if b.get('name') == name), None)
    if bridge is None:
        return {'exists': False, 'datapath_type': None, 'ports': {}}
    port_by_uuid = dict((p['_uuid'], p) for p in ports)
    iface_by_uuid = dict((i['_uuid'], i) for i in interfaces)
    out = {}
    for puuid in as_list(bridge.get('ports')):
        port = port_by_uuid.get(puuid)
        if not port or port.get('name') == name:
            continue  # the bridge's own internal port
        ifaces = [iface_by_uuid[u] for u in as_list(port.get('interfaces')) if u in iface_by_uuid]
        iface = ifaces[0] if ifaces else {}
        out[port['name']] = {
            'type': iface.get('type') or '',
            'options': dict(iface.get('options') or {}),
            'other_config': dict(iface.get('other_config') or {}),
            'ofport_request': scalar(iface.get('ofport_request')),
            'ofport': scalar(iface.get('ofport')),
            'error': scalar(iface.get('error')),
        }
    return {'exists': True, 'datapath_type': bridge.get('datapath_type') or '', 'ports': out}


def config_view(state):
    """What the user declared (drops run-time columns): the diff's before/after."""
    if not state.get('exists'):
        return {}
    ports = {}
    for name, port in sorted(state['ports'].items()):
        keys = ('type', 'options', 'other_config', 'ofport_request')
        ports[name] = dict((k, port.get(k)) for k in keys)
    view = {'datapath_type': state['datapath_type'], 'ports': ports}
    if state.get('flows') is not None:
        view['flows'] = state['flows']
    if state.get('vswitch_other_config') is not None:
        view['vswitch_other_config'] = state['vswitch_other_config']
    return view


# --------------------------------------------------------------------------------------
# the plan: ovs-vsctl sub-commands, run as one transaction
# --------------------------------------------------------------------------------------
def _kv(column, key, value):
    # ovs-vsctl parses values as OVSDB atoms: quote them so "0:1" stays one string
    return '%s:%s=%s' % (column, key, json.dumps(ovs_str(value)))


def ovs_str(value):
    """A value as OVS stores it in a string map (booleans as true/false)."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def ovs_map(values):
    return dict((str(k), ovs_str(v)) for k, v in (values or {}).items())


def desired_port(spec):
    """A port entry from the module's ``ports`` option, normalized like ``bridge_state``."""
    return {
        'type': spec.get('type') or '',
        'options': ovs_map(spec.get('options')),
        'other_config': ovs_map(spec.get('other_config')),
        'ofport_request': spec.get('ofport_request'),
    }


def port_commands(bridge, name, want, have=None):
    """Sub-commands turning port ``name`` from ``have`` (None: missing) into ``want``.

    An afxdp port whose type or options change is deleted and added again in the same
    transaction: OVS 3.1 reconfiguring a running afxdp port into a mode the driver refuses
    crashes ovs-vswitchd, a fresh port does not.
    """
    cmds = []
    if have is not None and have['type'] in AFXDP_TYPES and (
            have['type'] != want['type'] or have['options'] != want['options']):
        cmds.append(['del-port', bridge, name])
        have = None
    if have is None:
        cmds.append(['add-port', bridge, name])
        have = {'type': '', 'options': {}, 'other_config': {}, 'ofport_request': None}
    sets = []
    if want['type'] != have['type']:
        sets.append('type=%s' % (want['type'] or 'system'))
    for col in PORT_COLUMNS:
        if want[col] == have[col]:
            continue
        for key in sorted(set(have[col]) - set(want[col])):
            cmds.append(['remove', 'Interface', name, col, key])
        sets.extend(_kv(col, k, v) for k, v in sorted(want[col].items())
                    if have[col].get(k) != v)
    if want['ofport_request'] != have['ofport_request']:
        if want['ofport_request'] is None:
            cmds.append(['clear', 'Interface', name, 'ofport_request'])
        else:
            sets.append('ofport_request=%d' % want['ofport_request'])
    if sets:
        cmds.append(['set', 'Interface', name] + sets)
    return cmds


def plan_bridge(current, name, state, datapath_type='netdev', ports=None, purge=True):
    """Sub-commands that make bridge ``name`` match; ``[]`` when nothing differs.

    ``ports`` maps port names to normalized entries (``desired_port``). With ``purge``
    ports of the bridge that are not listed are removed (the bridge is ours).
    """
    if state == 'absent':
        return [['del-br', name]] if current['exists'] else []
    cmds = []
    if not current['exists']:
        cmds.append(['add-br', name])
    if current.get('datapath_type') != datapath_type:
        cmds.append(['set', 'Bridge', name, 'datapath_type=%s' % datapath_type])
    have = current['ports'] if current['exists'] else {}
    if purge:
        cmds.extend(['del-port', name, p] for p in sorted(set(have) - set(ports or {})))
    for pname, want in (ports or {}).items():
        cmds.extend(port_commands(name, pname, want, have.get(pname)))
    return cmds


def plan_other_config(current, desired, state):
    """Sub-commands for keys of Open_vSwitch other_config (pmd-cpu-mask ...) we own."""
    if state == 'absent':
        return [['remove', 'Open_vSwitch', '.', 'other_config', k]
                for k in sorted(desired) if k in current]
    sets = [_kv('other_config', k, v) for k, v in sorted(desired.items())
            if current.get(k) != ovs_str(v)]
    return [['set', 'Open_vSwitch', '.'] + sets] if sets else []


def vsctl_argv(cmds, timeout=10):
    """One ovs-vsctl transaction of several sub-commands."""
    argv = ['ovs-vsctl', '--timeout=%d' % timeout]
    for i, cmd in enumerate(cmds):
        if i:
            argv.append('--')
        argv.extend(cmd)
    return argv


# --------------------------------------------------------------------------------------
# input checks (pure: the caller passes what it read from the machine)
# --------------------------------------------------------------------------------------
def mask_cpus(mask):
    """'0x6' or '6' (hex, like OVS) -> [1, 2]; ValueError when not a hex mask."""
    text = str(mask).strip().lower()
    if text.startswith('0x'):
        text = text[2:]
    if not text or not re.match(r'^[0-9a-f]+$', text):
        raise ValueError('pmd-cpu-mask %r is not a hexadecimal CPU mask (e.g. 0x2)' % mask)
    value = int(text, 16)
    return [cpu for cpu in range(value.bit_length()) if value >> cpu & 1]


def affinity_cores(text):
    """pmd-rxq-affinity '0:1,1:3' -> {queue: core}; ValueError on bad syntax."""
    out = {}
    for part in ''.join(str(text).split()).split(','):
        m = re.match(r'^(\d+):(\d+)$', part)
        if not m:
            raise ValueError('pmd-rxq-affinity %r: expected queue:core pairs such as "0:1"'
                             % text)
        out[int(m.group(1))] = int(m.group(2))
    return out


def check_cpus(vswitch_other_config, ports, online):
    """Messages for CPU masks/affinities that name CPUs this host does not have."""
    errors = []
    online_txt = format_cpulist(online)
    pmd = None
    mask = (vswitch_other_config or {}).get('pmd-cpu-mask')
    if mask is not None:
        try:
            pmd = mask_cpus(mask)
        except ValueError as exc:
            errors.append(str(exc))
        else:
            missing = [c for c in pmd if c not in online]
            if not pmd:
                errors.append('pmd-cpu-mask %s selects no CPU' % mask)
            elif missing:
                errors.append('pmd-cpu-mask %s names CPU %s, which this host does not have '
                              '(online CPUs: %s)' % (mask, format_cpulist(missing), online_txt))
    for name, port in sorted(ports.items()):
        aff = port['other_config'].get('pmd-rxq-affinity')
        if aff is None:
            continue
        try:
            cores = affinity_cores(aff)
        except ValueError as exc:
            errors.append('port %s: %s' % (name, exc))
            continue
        bad = sorted(set(c for c in cores.values() if c not in online))
        outside = sorted(set(c for c in cores.values() if pmd is not None and c not in pmd))
        if bad:
            errors.append('port %s: pmd-rxq-affinity %s names CPU %s, which this host does '
                          'not have (online CPUs: %s)' % (name, aff, format_cpulist(bad),
                                                          online_txt))
        elif outside:
            errors.append('port %s: pmd-rxq-affinity %s names CPU %s outside pmd-cpu-mask %s: '
                          'no PMD thread runs there, the queue would not be polled'
                          % (name, aff, format_cpulist(outside), mask))
        other = vswitch_other_config or {}
        shared = other.get('pmd-rxq-isolate') == 'false' and other.get('pmd-rxq-assign') == 'group'
        if pmd and set(pmd) <= set(cores.values()) and not shared:
            loose = sorted(n for n, p in ports.items() if p['type'] in AFXDP_TYPES
                           and 'pmd-rxq-affinity' not in p['other_config'])
            if loose:
                errors.append('port %s: pmd-rxq-affinity %s takes every PMD core of '
                              'pmd-cpu-mask %s and isolates it, so %s would not be polled: '
                              'set pmd-rxq-isolate=false with pmd-rxq-assign=group, or give '
                              'those ports an affinity'
                              % (name, aff, mask, ', '.join(loose)))
        n_rxq = port['options'].get('n_rxq')
        if n_rxq is not None and any(q >= int(n_rxq) for q in cores):
            errors.append('port %s: pmd-rxq-affinity %s names a queue beyond n_rxq %s'
                          % (name, aff, n_rxq))
    return errors


def check_ports(ports, iface_types, existing_ifaces):
    """Messages for port types OVS lacks, bad xdp-mode values and missing interfaces."""
    errors = []
    for name, port in sorted(ports.items()):
        ptype = port['type']
        if ptype and ptype not in iface_types:
            hint = (' (Open vSwitch built without AF_XDP support: it needs libbpf/libxdp at '
                    'build time; Debian 12 and later ship it)' if ptype in AFXDP_TYPES else '')
            errors.append('port %s: this Open vSwitch has no interface type %r%s; it knows %s'
                          % (name, ptype, hint, ', '.join(sorted(iface_types))))
        mode = port['options'].get('xdp-mode')
        if mode is not None and mode not in XDP_MODES:
            errors.append('port %s: xdp-mode %r is not one of %s'
                          % (name, mode, ', '.join(XDP_MODES)))
        if mode is not None and ptype not in AFXDP_TYPES:
            errors.append('port %s: xdp-mode only applies to type afxdp, not %r'
                          % (name, ptype or 'system'))
        if ptype in NETDEV_TYPES and name not in existing_ifaces:
            errors.append('port %s: interface %s does not exist in the namespace '
                          'ovs-vswitchd runs in (the root namespace)' % (name, name))
    return errors


def xdp_owner_errors(name, xdp_prog, pinned, forwarders):
    """Why our steering program or forwarder forbids an afxdp port on ``name``.

    ``xdp_prog``: the program attached now (``{'id', 'name'}`` or None), read only for
    interfaces not yet in the bridge; ``pinned``: our pin directory exists; ``forwarders``:
    names of running kbypass-fwd instances on the interface.
    """
    errors = []
    if pinned or (xdp_prog and xdp_prog.get('name') == 'xdp_steer'):
        errors.append('interface %s carries the kbypass steering program (pins under %s): '
                      'OVS loads its own XDP program on an afxdp port. Detach ours first '
                      '(kbypass.xdp.bpf_programs with bpf_programs_state=absent for it) or '
                      'give OVS another interface' % (name, default_root_pin_dir(name)))
    elif xdp_prog:
        errors.append('interface %s already has XDP program %s (id %s) attached: OVS loads '
                      'its own on an afxdp port; detach the other one first'
                      % (name, xdp_prog.get('name') or '?', xdp_prog.get('id')))
    if forwarders:
        errors.append('interface %s is used by kbypass forwarder instance(s) %s: stop them '
                      '(forwarder_state=stopped) or give OVS another interface'
                      % (name, ', '.join(forwarders)))
    return errors


def default_root_pin_dir(ifname):
    return '%s/%s/%s' % (PIN_ROOT, ROOT_NS_LABEL, ifname)


def forwarders_on(argvs, ifname):
    """Instance names whose argv uses ``ifname`` in the root namespace.

    ``argvs``: ``{instance: argv}`` from the forwarder's args.json files.
    """
    out = []
    for inst, argv in sorted(argvs.items()):
        argv = list(argv or [])
        if '--netns' in argv:
            continue
        for flag in ('--iface', '--iface2'):
            if flag in argv and argv.index(flag) + 1 < len(argv) and \
                    argv[argv.index(flag) + 1] == ifname:
                out.append(inst)
                break
    return out


# --------------------------------------------------------------------------------------
# ovs-appctl / ovs-ofctl text
# --------------------------------------------------------------------------------------
_DPCTL_PORT_RE = re.compile(r'^\s*port (\d+): (\S+)(?: \(([^)]*)\))?\s*$')


def parse_dpctl_show(text):
    """``ovs-appctl dpctl/show`` -> {port name: {'port_no', 'type', 'config': {k: v}}}.

    An afxdp port reads ``port 2: veth0 (afxdp: n_rxq=1, ..., xdp-mode-in-use=native)``.
    """
    ports = {}
    for line in text.splitlines():
        m = _DPCTL_PORT_RE.match(line)
        if not m:
            continue
        inner = m.group(3) or ''
        ptype, _sep, rest = inner.partition(':')
        config = {}
        for item in rest.split(','):
            key, eq, value = item.strip().partition('=')
            if eq:
                config[key] = value
        ports[m.group(2)] = {'port_no': int(m.group(1)), 'type': ptype.strip(),
                             'config': config}
    return ports


_DUMP_PORT_RE = re.compile(r'^\s*port\s+"?([^:"]+)"?:\s*rx pkts=(\d+|\?), bytes=(\d+|\?), '
                           r'drop=(\d+|\?)')
_DUMP_TX_RE = re.compile(r'^\s*tx pkts=(\d+|\?), bytes=(\d+|\?), drop=(\d+|\?)')


def _num(text):
    return None if text == '?' else int(text)


def _sections(text, head_re, row_re):
    """Lines of section heads, each followed by its rows -> [(head match, [row matches])]."""
    out = []
    for line in text.splitlines():
        m = head_re.match(line)
        if m:
            out.append((m, []))
        elif out and row_re.match(line):
            out[-1][1].append(row_re.match(line))
    return out


def parse_dump_ports(text):
    """``ovs-ofctl dump-ports BR`` -> {port (number as str, or LOCAL): counters}."""
    ports = {}
    for head, rows in _sections(text, _DUMP_PORT_RE, _DUMP_TX_RE):
        port = ports[head.group(1).strip()] = dict(zip(
            ('rx_packets', 'rx_bytes', 'rx_dropped'), map(_num, head.groups()[1:])))
        for m in rows:
            port.update(zip(('tx_packets', 'tx_bytes', 'tx_dropped'), map(_num, m.groups())))
    return ports


_PMD_HEAD_RE = re.compile(r'^(pmd thread .*|main thread):\s*$')
_PMD_KV_RE = re.compile(r'^\s+([a-z][a-z .]*[a-z]):\s+(\d+)')


def parse_pmd_stats(text):
    """``ovs-appctl dpif-netdev/pmd-stats-show`` -> {thread: {counter: int}}."""
    return dict((head.group(1), dict((m.group(1).replace(' ', '_').replace('.', ''),
                                      int(m.group(2))) for m in rows))
                for head, rows in _sections(text, _PMD_HEAD_RE, _PMD_KV_RE))


def pmd_received(threads):
    """Packets received by PMD threads (the main thread polls non-PMD ports only)."""
    return sum(t.get('packets_received', 0) for name, t in threads.items()
               if name.startswith('pmd thread'))


# --------------------------------------------------------------------------------------
# verify: judgement and report section (pure; called by kbypass.xdp.verify_report)
# --------------------------------------------------------------------------------------
def _delta(before, after, port, key):
    try:
        return after[port][key] - before[port][key]
    except (KeyError, TypeError):
        return None


def _within(label, value, expected, slack):
    """A counter that saw our packets plus at most ``slack`` others (ARP, ND ...)."""
    if value is None:
        return '%s: no counter' % label
    if value < expected or value > expected + slack:
        return '%s moved by %s, expected %s (at most %s more for ARP/ND)' % (
            label, value, expected, slack)
    return None


def judge_ovs(data):
    """The OVS proof from ``kbypass.xdp.ovs_probe``'s result.

    Returns ``{'ok', 'failures', 'deltas'}``. The chain: generator sent == echoed by the
    far namespace == replies received, lost 0; the afxdp port's RX and the second port's
    TX moved by the packets sent, the second port's RX and the afxdp port's TX by the
    echoes; the PMD threads received what both ports received; dpctl/show reports the
    xdp mode in use (the forced one when forced); ARP resolved and ping answered.
    """
    failures = []
    slack = int(data.get('slack', 10))
    a, b = str(data.get('afxdp_ofport')), str(data.get('far_ofport'))
    pb, pa = data.get('ports_before') or {}, data.get('ports_after') or {}
    deltas = {
        'afxdp_rx': _delta(pb, pa, a, 'rx_packets'), 'afxdp_tx': _delta(pb, pa, a, 'tx_packets'),
        'far_rx': _delta(pb, pa, b, 'rx_packets'), 'far_tx': _delta(pb, pa, b, 'tx_packets'),
        'pmd_rx': None,
    }
    if data.get('pmd_before') is not None and data.get('pmd_after') is not None:
        deltas['pmd_rx'] = pmd_received(data['pmd_after']) - pmd_received(data['pmd_before'])
    gen = data.get('generator') or {}
    echo = data.get('echo') or {}
    sent, received = gen.get('sent'), gen.get('received')
    requested = data.get('count')
    if not sent or (requested is not None and sent != requested):
        failures.append('OVS: the generator sent %s of %s packets' % (sent, requested))
    if echo.get('packets') != sent:
        failures.append('OVS: the far namespace received %s of %s packets sent through the '
                        'bridge' % (echo.get('packets'), sent))
    if received != sent or gen.get('lost'):
        failures.append('OVS: %s of %s echoes came back through the bridge (lost %s)'
                        % (received, sent, gen.get('lost')))
    sent, received = sent or 0, received or 0
    echoed = echo.get('echoed') if echo.get('echoed') is not None else received
    checks = [('afxdp port %s RX' % data.get('afxdp_port'), deltas['afxdp_rx'], sent),
              ('port %s TX' % data.get('far_port'), deltas['far_tx'], sent),
              ('port %s RX' % data.get('far_port'), deltas['far_rx'], echoed),
              ('afxdp port %s TX' % data.get('afxdp_port'), deltas['afxdp_tx'], received)]
    for label, value, expected in checks:
        msg = _within('OVS: ' + label, value, expected, slack)
        if msg:
            failures.append(msg)
    port_rx = (deltas['afxdp_rx'] or 0) + (deltas['far_rx'] or 0)
    if deltas['pmd_rx'] is None:
        failures.append('OVS: no PMD statistics (is a PMD thread polling the afxdp port?)')
    elif abs(deltas['pmd_rx'] - port_rx) > slack:
        failures.append('OVS: PMD threads received %s packets, the ports %s'
                        % (deltas['pmd_rx'], port_rx))
    failures.extend(_mode_failures(data))
    arp = data.get('neighbour') or {}
    if not arp.get('resolved') or (data.get('far_mac') and arp.get('lladdr') != data['far_mac']):
        failures.append('OVS: ARP for %s through the bridge did not resolve to %s (state %s, '
                        'lladdr %s)' % (arp.get('address'), data.get('far_mac'),
                                        arp.get('state'), arp.get('lladdr')))
    ping = data.get('ping') or {}
    if not ping.get('received') or ping.get('received') != ping.get('sent'):
        failures.append('OVS: ping through the bridge: %s of %s replies'
                        % (ping.get('received'), ping.get('sent')))
    return {'ok': not failures, 'failures': failures, 'deltas': deltas}


def _mode_failures(data):
    port = (data.get('dpctl') or {}).get(data.get('afxdp_port')) or {}
    config = port.get('config') or {}
    in_use = config.get('xdp-mode-in-use')
    wanted = data.get('xdp_mode') or 'best-effort'
    if port.get('type') not in AFXDP_TYPES:
        return ['OVS: dpctl/show lists %s as %r, not an afxdp port'
                % (data.get('afxdp_port'), port.get('type'))]
    if not in_use:
        return ['OVS: dpctl/show reports no xdp-mode-in-use for %s' % data.get('afxdp_port')]
    if wanted != 'best-effort' and in_use != wanted:
        return ['OVS: %s runs xdp mode %s, %s was asked for'
                % (data.get('afxdp_port'), in_use, wanted)]
    return []


def merge_verdict(verdict, ovs_verdict):
    """Fold the OVS verdict into verify_report's (``verdict['ovs']``, failures, ok)."""
    verdict = dict(verdict)
    verdict['ovs'] = ovs_verdict
    verdict['failures'] = list(verdict.get('failures') or []) + ovs_verdict['failures']
    verdict['ok'] = bool(verdict.get('ok', True)) and ovs_verdict['ok']
    return verdict


def summary_line(host, data, ovs_verdict):
    """One line for the play output."""
    gen = data.get('generator') or {}
    config = ((data.get('dpctl') or {}).get(data.get('afxdp_port')) or {}).get('config') or {}
    return ('%s: OVS %s — %s afxdp %s (xdp mode %s): sent %s, echoed back %s, %s pps, '
            'rtt p50 %s us' % (
                host, 'PASS' if ovs_verdict['ok'] else 'FAIL', data.get('bridge'),
                data.get('afxdp_port'), config.get('xdp-mode-in-use', '?'), _fmt(gen.get('sent')),
                _fmt(gen.get('received')), _fmt(gen.get('tx_pps')),
                _fmt((gen.get('rtt_us') or {}).get('p50'))))


def _fmt(value, digits=0):
    if value is None:
        return '—'
    return ('%.' + str(digits) + 'f') % value if isinstance(value, float) else str(value)


def render_ovs_markdown(data, ovs_verdict):
    """The report's OVS section."""
    d = ovs_verdict.get('deltas') or {}
    gen = data.get('generator') or {}
    rtt = gen.get('rtt_us') or {}
    port = (data.get('dpctl') or {}).get(data.get('afxdp_port')) or {}
    config = port.get('config') or {}
    arp = data.get('neighbour') or {}
    ping = data.get('ping') or {}
    out = ['## Open vSwitch (userspace datapath, afxdp port)', '',
           '**OVS: %s**' % ('PASS' if ovs_verdict['ok'] else 'FAIL'), '',
           '| item | value |', '|---|---|',
           '| bridge | %s (datapath %s, Open vSwitch %s) |' % (
               data.get('bridge'), data.get('datapath_type', 'netdev'),
               data.get('ovs_version', '—')),
           '| afxdp port | %s (ofport %s): %s |' % (
               data.get('afxdp_port'), data.get('afxdp_ofport'),
               ', '.join('%s=%s' % kv for kv in sorted(config.items())) or '—'),
           '| xdp mode asked / in use | %s / %s |' % (
               data.get('xdp_mode') or 'best-effort', config.get('xdp-mode-in-use', '—')),
           '| second port | %s (ofport %s) toward %s |' % (
               data.get('far_port'), data.get('far_ofport'), data.get('far_netns')),
           '| path | %s → %s → %s:%s (echo) and back |' % (
               data.get('peer_netns'), data.get('bridge'), data.get('far_address'),
               data.get('port')),
           '', '| counter | value |', '|---|---|',
           '| generator sent / echoed by far end / replies | %s / %s / %s |' % (
               _fmt(gen.get('sent')), _fmt((data.get('echo') or {}).get('packets')),
               _fmt(gen.get('received'))),
           '| afxdp port RX / TX (delta) | %s / %s |' % (
               _fmt(d.get('afxdp_rx')), _fmt(d.get('afxdp_tx'))),
           '| second port RX / TX (delta) | %s / %s |' % (
               _fmt(d.get('far_rx')), _fmt(d.get('far_tx'))),
           '| PMD packets received (delta) | %s |' % _fmt(d.get('pmd_rx')),
           '| RTT p50 / p99 / max (µs) | %s / %s / %s |' % (
               _fmt(rtt.get('p50'), 1), _fmt(rtt.get('p99'), 1), _fmt(rtt.get('max'), 1)),
           '| ARP for %s after flush | %s (%s) |' % (
               arp.get('address'), arp.get('state'), arp.get('lladdr') or 'no lladdr'),
           '| ping through the bridge | %s of %s replies |' % (
               ping.get('received'), ping.get('sent')),
           '']
    for msg in ovs_verdict['failures']:
        out.append('- %s' % msg)
    if ovs_verdict['failures']:
        out.append('')
    return '\n'.join(out)


# --------------------------------------------------------------------------------------
# the machine: commands (thin; everything above is what tests exercise)
# --------------------------------------------------------------------------------------
class OvsError(Exception):
    """A command failed; the message is meant for a person."""


OVS_MISSING = ('Open vSwitch is not installed here (no ovs-vsctl in PATH): install it with '
               'the kbypass.xdp.ovs role (ovs_install: true) or the openvswitch-switch '
               '(Debian/Ubuntu) / openvswitch (RHEL family) package')


class OvsCli(object):
    """ovs-vsctl / ovs-ofctl / ovs-appctl through ``module.run_command``."""

    def __init__(self, module, timeout=10):
        self.module = module
        self.timeout = timeout
        if not module.get_bin_path('ovs-vsctl'):
            raise OvsError(OVS_MISSING)

    def run(self, argv, what=None):
        rc, out, err = self.module.run_command(argv)
        if rc != 0:
            raise OvsError('%s failed: %s' % (what or ' '.join(argv[:3]),
                                              (err or out).strip() or 'rc=%d' % rc))
        return out

    def answers(self):
        """True when ovsdb-server answers ovs-vsctl."""
        rc, _out, _err = self.module.run_command(
            ['ovs-vsctl', '--timeout=2', '--no-wait', 'get', 'Open_vSwitch', '.',
             'ovs_version'])
        return rc == 0

    def rows(self, table):
        out = self.run(['ovs-vsctl', '--timeout=%d' % self.timeout, '--format=json',
                        '--data=json', 'list', table], 'reading the OVSDB table %s' % table)
        return ovsdb_rows(json.loads(out))

    def vswitch(self):
        rows = self.rows('Open_vSwitch')
        if not rows:
            raise OvsError('the OVSDB has no Open_vSwitch record: ovsdb-server runs without '
                           'an initialized database')
        return rows[0]

    def bridge(self, name):
        return bridge_state(self.rows('Bridge'), self.rows('Port'), self.rows('Interface'),
                            name)

    def vsctl(self, cmds):
        return self.run(vsctl_argv(cmds, self.timeout), 'ovs-vsctl ' + ' '.join(
            ' '.join(c) for c in cmds))

    def appctl(self, *args):
        return self.run(['ovs-appctl', '--timeout=%d' % self.timeout] + list(args),
                        'ovs-appctl %s' % args[0])

    def ofctl(self, *args):
        return self.run(['ovs-ofctl'] + list(args), 'ovs-ofctl %s' % args[0])

    def dump_flows(self, bridge):
        """The bridge's flows without statistics, one normalized string each."""
        out = self.ofctl('dump-flows', '--no-stats', '--names', bridge)
        return sorted(line.strip() for line in out.splitlines()
                      if line.strip() and not line.startswith(('NXST', 'OFPST')))

    def _flow_file(self, flows):
        fd, path = tempfile.mkstemp(prefix='kbypass-flows-', dir=self.module.tmpdir)
        with os.fdopen(fd, 'w') as fh:
            fh.write('\n'.join(flows) + '\n')
        return path

    def flows_differ(self, bridge, flows):
        """The lines ``ovs-ofctl diff-flows`` prints (+ missing, - extra); [] when equal."""
        argv = ['ovs-ofctl', 'diff-flows', bridge, self._flow_file(flows)]
        rc, out, err = self.module.run_command(argv)
        lines = [line for line in out.splitlines() if line.startswith(('+', '-'))]
        # exit status 2 when the tables differ, 1 on errors
        if rc != 0 and not lines:
            raise OvsError('ovs-ofctl diff-flows failed: %s' % ((err or out).strip() or rc))
        return lines

    def replace_flows(self, bridge, flows):
        self.ofctl('replace-flows', bridge, self._flow_file(flows))


def read_forwarder_argvs(state_dir='/run/kbypass/forwarder'):
    """``{instance: argv}`` from the forwarder's args.json files (empty when none)."""
    out = {}
    try:
        names = os.listdir(state_dir)
    except OSError:
        return out
    for fname in names:
        if not fname.endswith('.args.json'):
            continue
        try:
            with open(os.path.join(state_dir, fname)) as fh:
                out[fname[:-len('.args.json')]] = json.load(fh).get('argv') or []
        except (OSError, ValueError, AttributeError):
            continue
    return out
