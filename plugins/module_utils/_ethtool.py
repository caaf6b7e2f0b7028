# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ethtool: run it (optionally inside a network namespace) and parse what it prints.

ethtool 6.1 (Debian 12) prints JSON only for a few sub-commands: ``--json -k`` works, while
``-i``, ``-l``, ``-g``, ``-c``, ``-S`` and the plain settings report reject ``--json``. So:
features come from JSON (with a text fallback for older ethtool), everything else from text
where ``n/a`` becomes None and ``[fixed]`` is kept as a flag. All parsers are pure functions.
"""

from __future__ import annotations

import json
import re

from ansible_collections.kbypass.xdp.plugins.module_utils import _netns

# ethtool -K accepts these legacy short names; -k reports the long ones.
FEATURE_ALIASES = {
    'rx': 'rx-checksumming',
    'tx': 'tx-checksumming',
    'sg': 'scatter-gather',
    'tso': 'tcp-segmentation-offload',
    'ufo': 'udp-fragmentation-offload',
    'gso': 'generic-segmentation-offload',
    'gro': 'generic-receive-offload',
    'lro': 'large-receive-offload',
    'rxvlan': 'rx-vlan-offload',
    'txvlan': 'tx-vlan-offload',
    'ntuple': 'ntuple-filters',
    'rxhash': 'receive-hashing',
}

# ethtool -L / -G keyword -> the label ethtool -l / -g prints
CHANNEL_KEYS = {'rx': 'RX', 'tx': 'TX', 'other': 'Other', 'combined': 'Combined'}
RING_KEYS = {'rx': 'RX', 'rx-mini': 'RX Mini', 'rx-jumbo': 'RX Jumbo', 'tx': 'TX'}

FLOW_TYPES = {
    'tcp4': 'TCP over IPv4', 'udp4': 'UDP over IPv4',
    'tcp6': 'TCP over IPv6', 'udp6': 'UDP over IPv6',
}
_FLOW_TYPE_BY_LABEL = dict((v, k) for k, v in FLOW_TYPES.items())

NA = ('n/a', '', 'not set', 'unknown')


def canonical_feature(name):
    """Long ethtool feature name for ``name`` (accepts the -K short aliases)."""
    return FEATURE_ALIASES.get(name, name)


def _value(text):
    """'n/a' -> None, '123' -> 123, 'on'/'off' -> bool, anything else stays a string."""
    t = text.strip()
    if t.lower() in NA:
        return None
    if re.match(r'^-?\d+$', t):
        return int(t)
    if t in ('on', 'yes'):
        return True
    if t in ('off', 'no'):
        return False
    return t


def parse_features_json(text):
    """``ethtool --json -k`` -> {feature: {'active': bool, 'fixed': bool, 'requested': bool}}."""
    data = json.loads(text)
    if isinstance(data, list):
        data = data[0] if data else {}
    out = {}
    for name, val in data.items():
        if not isinstance(val, dict):
            continue
        out[name] = {
            'active': bool(val.get('active')),
            'fixed': bool(val.get('fixed')),
            'requested': val.get('requested') if val.get('requested') is None
            else bool(val.get('requested')),
        }
    return out


_FEATURE_LINE = re.compile(r'^\s*([\w-]+):\s+(on|off)(?:\s+\[(fixed|requested (?:on|off))\])?\s*$')


def parse_features_text(text):
    """Text ``ethtool -k`` (older ethtool) -> same shape as parse_features_json."""
    out = {}
    for line in text.splitlines():
        m = _FEATURE_LINE.match(line)
        if not m:
            continue
        name, state, extra = m.group(1), m.group(2) == 'on', m.group(3) or ''
        requested = state
        if extra.startswith('requested'):
            requested = extra.endswith('on')
        out[name] = {'active': state, 'fixed': extra == 'fixed', 'requested': requested}
    return out


def parse_kv(text):
    """``key: value`` lines (ethtool -i and similar) -> dict with normalised values.

    Keys keep ethtool's spelling; values go through _value except for version strings.
    """
    out = {}
    for line in text.splitlines():
        if ':' not in line:
            continue
        key, dummy, val = line.partition(':')
        key = key.strip()
        if not key:
            continue
        val = val.strip()
        out[key] = None if val.lower() in NA else val
    return out


def parse_driver_info(text):
    """``ethtool -i`` -> {driver, version, firmware_version, bus_info, ...}."""
    raw = parse_kv(text)
    return {
        'driver': raw.get('driver'),
        'version': raw.get('version'),
        'firmware_version': raw.get('firmware-version'),
        'expansion_rom_version': raw.get('expansion-rom-version'),
        'bus_info': raw.get('bus-info'),
        'supports_statistics': raw.get('supports-statistics') == 'yes',
    }


def _two_blocks(text, keys):
    """Parse the 'Pre-set maximums' / 'Current hardware settings' layout of -l and -g."""
    label_to_key = dict((v, k) for k, v in keys.items())
    maximum, current, extra = {}, {}, {}
    target = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith('Pre-set maximums'):
            target = maximum
            continue
        if s.startswith('Current hardware settings'):
            target = current
            continue
        if target is None or ':' not in s:
            continue
        label, dummy, val = s.partition(':')
        label = label.strip()
        if label in label_to_key:
            target[label_to_key[label]] = _value(val)
        elif target is current:
            extra[label.lower().replace(' ', '_')] = _value(val)
    return maximum, current, extra


def parse_channels(text):
    """``ethtool -l`` -> {'max': {rx, tx, other, combined}, 'current': {...}} (n/a -> None)."""
    maximum, current, dummy = _two_blocks(text, CHANNEL_KEYS)
    return {'max': maximum, 'current': current}


def parse_rings(text):
    """``ethtool -g`` -> {'max': {rx, rx-mini, rx-jumbo, tx}, 'current': {...}, 'extra': {...}}."""
    maximum, current, extra = _two_blocks(text, RING_KEYS)
    return {'max': maximum, 'current': current, 'extra': extra}


def parse_coalesce(text):
    """``ethtool -c`` -> {'adaptive-rx': bool, 'adaptive-tx': bool|None, 'rx-usecs': int, ...}."""
    out = {}
    for line in text.splitlines():
        s = line.strip()
        m = re.match(r'^(Adaptive|CQE mode) RX:\s*(\S+)\s+TX:\s*(\S+)', s)
        if m:
            prefix = m.group(1).lower().replace(' mode', '')
            out[prefix + '-rx'] = _value(m.group(2))
            out[prefix + '-tx'] = _value(m.group(3))
            continue
        if ':' not in s or s.startswith('Coalesce parameters'):
            continue
        key, dummy, val = s.partition(':')
        out[key.strip()] = _value(val)
    return out


def parse_stats(text):
    """``ethtool -S`` -> {counter: int}. Non-numeric values are skipped."""
    out = {}
    for line in text.splitlines():
        m = re.match(r'^\s+([^:]+):\s+(-?\d+)\s*$', line)
        if m:
            out[m.group(1).strip()] = int(m.group(2))
    return out


def parse_settings(text):
    """Plain ``ethtool IF`` -> {speed_mbps, duplex, autoneg, port, link_detected}."""
    raw = parse_kv(text)
    speed = raw.get('Speed')
    mbps = None
    if speed:
        m = re.match(r'^(\d+)\s*Mb/s', speed)
        if m:
            mbps = int(m.group(1))
    return {
        'speed_mbps': mbps,
        'duplex': raw.get('Duplex') if raw.get('Duplex') not in ('Unknown! (255)',) else None,
        'autoneg': raw.get('Auto-negotiation') == 'on' if raw.get('Auto-negotiation') else None,
        'port': raw.get('Port'),
        'link_detected': raw.get('Link detected') == 'yes' if raw.get('Link detected') else None,
    }


def parse_ntuple_rules(text):
    """``ethtool -n`` (``-u``) -> [{loc, flow_type, src_ip, dst_ip, src_port, dst_port, queue}].

    ethtool prints masks inverted: a mask of 0 means "compare every bit", an all-ones mask
    means "don't care". Don't-care fields come back as None.
    """
    rules = []
    cur = None
    for line in text.splitlines():
        s = line.strip()
        m = re.match(r'^Filter:\s*(\d+)', s)
        if m:
            cur = {'loc': int(m.group(1)), 'flow_type': None, 'src_ip': None, 'dst_ip': None,
                   'src_port': None, 'dst_port': None, 'queue': None, 'action': None}
            rules.append(cur)
            continue
        if cur is None:
            continue
        m = re.match(r'^Rule Type:\s*(.+)$', s)
        if m:
            cur['flow_type'] = _FLOW_TYPE_BY_LABEL.get(m.group(1).strip(), m.group(1).strip())
            continue
        m = re.match(r'^(Src|Dest) (IP addr|port):\s*(\S+)\s+mask:\s*(\S+)', s)
        if m:
            side = 'src' if m.group(1) == 'Src' else 'dst'
            kind = 'ip' if m.group(2) == 'IP addr' else 'port'
            val, mask = m.group(3), m.group(4)
            dont_care = mask in ('255.255.255.255', '0xffff', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')
            if not dont_care:
                cur['%s_%s' % (side, kind)] = int(val) if kind == 'port' else val
            continue
        m = re.match(r'^Action:\s*(.+)$', s)
        if m:
            act = m.group(1)
            cur['action'] = act
            q = re.match(r'^Direct to queue (\d+)', act)
            if q:
                cur['queue'] = int(q.group(1))
    return rules


RULE_FIELDS = ('flow_type', 'src_ip', 'dst_ip', 'src_port', 'dst_port', 'queue')


def rule_key(rule):
    """Comparable identity of a rule (loc excluded)."""
    return tuple(rule.get(f) for f in RULE_FIELDS)


def rule_add_args(rule):
    """ethtool -N arguments (after the interface name) that add ``rule``."""
    args = ['flow-type', rule['flow_type']]
    for field, kw in (('src_ip', 'src-ip'), ('dst_ip', 'dst-ip'),
                      ('src_port', 'src-port'), ('dst_port', 'dst-port')):
        if rule.get(field) is not None:
            args += [kw, str(rule[field])]
    args += ['action', str(rule['queue'])]
    if rule.get('loc') is not None:
        args += ['loc', str(rule['loc'])]
    return args


def parse_added_rule_id(text):
    """'Added rule with ID 1023' -> 1023 (None when ethtool did not say)."""
    m = re.search(r'Added rule with ID (\d+)', text or '')
    return int(m.group(1)) if m else None


class EthtoolError(Exception):
    """ethtool failed in a way the caller should report."""


def unsupported(err):
    """True when ethtool's stderr says the driver has no such operation."""
    return 'not supported' in (err or '').lower()


class Ethtool(object):
    """Run ethtool for one interface, optionally inside a named network namespace."""

    def __init__(self, module, ifname, netns=None, binary=None):
        self.module = module
        self.ifname = ifname
        self.netns = netns
        self.binary = binary or module.get_bin_path('ethtool', required=True)

    def run(self, *args):
        return _netns.run(self.module, [self.binary] + list(args), self.netns)

    def query(self, opt, parser):
        """Run ``ethtool OPT IF``; return (parsed or None, error message or None)."""
        args = ([opt] if opt else []) + [self.ifname]
        rc, out, err = self.run(*args)
        if rc != 0 or ('netlink error' in (err or '') and not out.strip()):
            return None, (err or out).strip() or 'rc=%s' % rc
        return parser(out), None

    def features(self):
        rc, out, err = self.run('--json', '-k', self.ifname)
        if rc == 0 and out.strip().startswith('['):
            return parse_features_json(out)
        rc, out, err = self.run('-k', self.ifname)
        if rc != 0:
            raise EthtoolError('ethtool -k %s failed: %s' % (self.ifname, (err or out).strip()))
        return parse_features_text(out)

    def driver_info(self):
        return self.query('-i', parse_driver_info)

    def channels(self):
        return self.query('-l', parse_channels)

    def rings(self):
        return self.query('-g', parse_rings)

    def coalesce(self):
        return self.query('-c', parse_coalesce)

    def stats(self):
        return self.query('-S', parse_stats)

    def settings(self):
        return self.query(None, parse_settings)

    def ntuple_rules(self):
        return self.query('-n', parse_ntuple_rules)
