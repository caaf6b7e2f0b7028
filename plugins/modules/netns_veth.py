#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: netns_veth
short_description: Network namespaces joined by veth pairs, with addresses, MTU, MAC and queues
version_added: 0.1.0
description:
  - Declares named network namespaces (as C(ip netns) names them) and veth pairs whose two
    ends live in given namespaces or in the namespace the module runs in.
  - Sets IPv4/IPv6 addresses, MTU, MAC address, up/down state and the number of RX/TX queues
    of each end, and brings C(lo) up in every namespace it manages.
  - Talks netlink through pyroute2 only; it never parses C(ip) output.
  - The module reads the current state, computes a plan with a pure function, applies it
    unless in check mode, and reports what it did. A second run with the same arguments
    changes nothing.
  - All arguments are validated before anything is touched; on bad input the module fails
    with a message saying what to fix and changes nothing.
  - When the kernel refuses a step after others were applied, what this call created
    (namespaces, veth pairs) is removed again, and the task fails with C(changed=true)
    only for changes to pre-existing objects that stay, listed in RV(actions).
author:
  - kbypass.xdp developers (@kbypass)
requirements:
  - pyroute2 (the kbypass.xdp.toolchain role installs it in C(/opt/kbypass/venv); the module
    re-runs itself under that interpreter when the default one lacks it)
attributes:
  check_mode:
    support: full
    description: Reports what would change and changes nothing.
  diff_mode:
    support: full
    description: Returns the declared namespaces and links before and after.
  platform:
    support: full
    platforms: linux
    description: Linux network namespaces and veth devices only.
options:
  namespaces:
    description:
      - Named network namespaces to manage.
      - An entry is a name, or a dictionary with C(name) and C(state) (V(present) or V(absent))
        to remove one namespace while the rest of the topology stays present.
      - Namespaces referenced by O(links) are created when missing even when not listed here.
      - With O(state=absent) every listed namespace is removed, after the listed links.
    type: list
    elements: raw
    default: []
  links:
    description:
      - veth pairs. Each entry describes one end (its O(links[].name), O(links[].netns), ...)
        and the other end in O(links[].peer).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Interface name of this end, checked as the kernel does - at most 15 bytes (not
            characters), no C(/), C(:), C(%), whitespace or control characters.
        type: str
        required: true
      netns:
        description: Namespace of this end; omit or V(null) for the namespace the module runs in.
        type: str
      addresses:
        description:
          - IPv4/IPv6 addresses in CIDR notation (C(198.18.0.10/24), C(2001:2::10/64)).
          - The list is exclusive; addresses not listed are removed, except IPv6 link-local ones.
          - Omit to leave the addresses alone.
          - IPv4-mapped IPv6, multicast and unspecified addresses are refused; so are IPv6
            addresses on an end whose O(links[].mtu) is below 1280 (the IPv6 minimum).
        type: list
        elements: str
      mtu:
        description:
          - MTU of the link, 68-65535; omitted means leave as is (1500 on creation).
          - Applies to both ends unless O(links[].peer.mtu) sets the peer's own; a jumbo bed
            sets V(9000) here.
          - On a veth, an XDP program without frags support (a plain C(SEC("xdp")) program)
            attached to one end caps the other end's MTU at about one page; the module then
            fails with the device's limit and what to do. kbypass.xdp's own programs are
            C(xdp.frags) programs and keep a jumbo MTU.
        type: int
      mac:
        description: Unicast MAC address of this end; omitted means leave as is (random on creation).
        type: str
      state:
        description: Administrative state of this end.
        type: str
        choices: [up, down]
        default: up
      rx_queues:
        description:
          - Number of RX queues of both ends. The kernel fixes it when the pair is created;
            a different count on an existing pair needs O(recreate=true).
        type: int
      tx_queues:
        description: Number of TX queues of both ends; same rules as O(links[].rx_queues).
        type: int
      peer:
        description: The other end of the pair.
        type: dict
        required: true
        suboptions:
          name:
            description: Interface name of the peer.
            type: str
            required: true
          netns:
            description: Namespace of the peer; omit for the namespace the module runs in.
            type: str
          addresses:
            description: Addresses of the peer, same rules as O(links[].addresses).
            type: list
            elements: str
          mtu:
            description: MTU of the peer, when it differs from O(links[].mtu).
            type: int
          mac:
            description: Unicast MAC address of the peer.
            type: str
          state:
            description: Administrative state of the peer.
            type: str
            choices: [up, down]
            default: up
  state:
    description:
      - V(present) creates and updates the topology.
      - V(absent) deletes the listed links (deleting one end deletes its peer), then the listed
        namespaces. Missing objects are not an error, so a second run is unchanged.
    type: str
    choices: [present, absent]
    default: present
  recreate:
    description:
      - Delete and re-create a pair whose queue counts differ from the requested ones, or whose
        end is a veth paired with some other interface. Without it, the module fails instead.
      - Never deletes a device that is not a veth.
    type: bool
    default: false
  ipv6_nodad:
    description:
      - Add IPv6 addresses with C(IFA_F_NODAD) so they are usable at once (no duplicate address
        detection), as a test bed wants.
    type: bool
    default: true
notes:
  - Interface names are unique per namespace, so the two ends of a pair may only share a
    name when they live in different namespaces.
seealso:
  - module: community.general.ip_netns
'''

EXAMPLES = r'''
- name: The seed test bed, two namespaces joined by one veth pair (v4 + v6)
  kbypass.xdp.netns_veth:
    namespaces: [ns1, ns2]
    links:
      - name: veth0
        netns: ns1
        addresses: [198.18.0.10/24, 2001:2::10/64]
        peer:
          name: veth1
          netns: ns2
          addresses: [198.18.0.20/24, 2001:2::20/64]

- name: Four queues per end (needed for multi-queue AF_XDP tests), jumbo MTU, fixed MACs
  kbypass.xdp.netns_veth:
    links:
      - name: dut0
        netns: dut
        mtu: 9000
        mac: "02:00:00:00:00:10"
        rx_queues: 4
        tx_queues: 4
        addresses: [198.18.1.1/24]
        peer:
          name: gen0
          netns: gen
          mtu: 9000
          mac: "02:00:00:00:00:20"
          addresses: [198.18.1.2/24]

- name: One end in the root namespace
  kbypass.xdp.netns_veth:
    links:
      - name: kbhost0
        addresses: [198.18.2.1/30]
        peer:
          name: kbns0
          netns: ns1
          addresses: [198.18.2.2/30]

- name: Remove the test bed (links first, then namespaces)
  kbypass.xdp.netns_veth:
    state: absent
    namespaces: [ns1, ns2]
    links:
      - name: veth0
        netns: ns1
        peer:
          name: veth1
          netns: ns2
'''

RETURN = r'''
namespaces:
  description: Declared namespaces that exist after the run (predicted in check mode).
  returned: always
  type: list
  elements: str
  sample: [ns1, ns2]
links:
  description:
    - One entry per declared pair, describing this end, with the other end under C(peer).
    - Values are read back from the kernel after the change (predicted in check mode,
      where a MAC or ifindex not yet known is V(null)).
  returned: always
  type: list
  elements: dict
  contains:
    present:
      description: Whether the end exists.
      type: bool
    netns:
      description: Namespace of the end (V(null) for the module's own namespace).
      type: str
    ifname:
      description: Interface name.
      type: str
    ifindex:
      description: Interface index inside its namespace.
      type: int
    mac:
      description: MAC address.
      type: str
    mtu:
      description: MTU.
      type: int
    state:
      description: V(up) or V(down).
      type: str
    addresses:
      description: Addresses in CIDR notation (IPv6 link-local ones left out).
      type: list
      elements: str
    rx_queues:
      description: Number of RX queues.
      type: int
    tx_queues:
      description: Number of TX queues.
      type: int
    peer:
      description: The same keys for the other end.
      type: dict
  sample:
    - netns: ns1
      ifname: veth0
      ifindex: 2
      mac: "6e:1c:0b:95:3a:61"
      mtu: 1500
      state: up
      addresses: [198.18.0.10/24, 2001:2::10/64]
      rx_queues: 1
      tx_queues: 1
      present: true
      peer:
        netns: ns2
        ifname: veth1
        ifindex: 2
        mac: "d2:4f:77:10:01:aa"
        mtu: 1500
        state: up
        addresses: [198.18.0.20/24, 2001:2::20/64]
        rx_queues: 1
        tx_queues: 1
        present: true
actions:
  description: Human-readable list of the changes made (or that would be made in check mode).
  returned: always
  type: list
  elements: str
  sample: ["create namespace ns1", "add 198.18.0.10/24 to veth0@ns1"]
'''

import copy
import ipaddress
import re
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kbypass.xdp.plugins.module_utils._common import (
    ifname_error,
    netns_error,
)
from ansible_collections.kbypass.xdp.plugins.module_utils._deps import require_pyroute2
from ansible_collections.kbypass.xdp.plugins.module_utils import _netlink, _netns

MTU_MIN = 68
IPV6_MTU_MIN = 1280  # below this the kernel drops a link's IPv6 configuration
MTU_MAX = 65535
QUEUES_MAX = 4096
_MAC_RE = re.compile(r'^[0-9a-f]{2}(:[0-9a-f]{2}){5}$')

END_KEYS = ('name', 'netns', 'addresses', 'mtu', 'mac', 'state')


# --- pure: validation and normalisation ----------------------------------------------------

def where(netns, name):
    """How ends are named in messages: ``veth0@ns1``, ``veth0@root``."""
    return '%s@%s' % (name, netns if netns is not None else 'root')


def _normalise_end(raw, label, errors):
    end = {k: raw.get(k) for k in END_KEYS}
    end['state'] = end['state'] or 'up'
    msg = ifname_error(end['name'] or '')
    if msg:
        errors.append('%s: %s; use a name of 1-15 bytes without "/", ":", "%%" or spaces'
                      % (label, msg))
    if end['netns'] == '':
        end['netns'] = None
    msg = netns_error(end['netns'])
    if msg:
        errors.append('%s: %s' % (label, msg))
    if end['mtu'] is not None and not MTU_MIN <= end['mtu'] <= MTU_MAX:
        errors.append('%s: mtu %d is outside %d-%d' % (label, end['mtu'], MTU_MIN, MTU_MAX))
    if end['mac'] is not None:
        mac = str(end['mac']).lower().replace('-', ':')
        if not _MAC_RE.match(mac):
            errors.append('%s: mac %r is not a MAC address like 02:00:00:00:00:01'
                          % (label, end['mac']))
        elif int(mac[:2], 16) & 1 or mac == '00:00:00:00:00:00':
            errors.append('%s: mac %s is multicast or all-zero; use a unicast address '
                          '(even first octet, e.g. 02:...)' % (label, mac))
        end['mac'] = mac
    if end['addresses'] is not None:
        seen = []
        for cidr in end['addresses']:
            cidr_s = str(cidr).strip()
            if '/' not in cidr_s:
                errors.append('%s: address %r has no prefix length; write it as CIDR, '
                              'e.g. 198.18.0.10/24 or 2001:2::10/64' % (label, cidr_s))
                continue
            try:
                iface = ipaddress.ip_interface(cidr_s)
            except ValueError as exc:
                errors.append('%s: address %r is not a valid CIDR (%s); write e.g. '
                              '198.18.0.10/24 or 2001:2::10/64' % (label, cidr_s, exc))
                continue
            if iface.version == 6 and iface.ip.ipv4_mapped is not None:
                errors.append('%s: address %s is an IPv4-mapped IPv6 address, which an '
                              'interface cannot carry; write the IPv4 address %s/%d instead'
                              % (label, cidr_s, iface.ip.ipv4_mapped,
                                 max(0, iface.network.prefixlen - 96)))
                continue
            if iface.ip.is_multicast or iface.ip.is_unspecified:
                errors.append('%s: address %s is a %s address, which an interface cannot carry'
                              % (label, cidr_s, 'multicast' if iface.ip.is_multicast
                                 else 'unspecified'))
                continue
            norm = str(iface)
            if norm in seen:
                errors.append('%s: address %s is listed twice' % (label, norm))
            seen.append(norm)
        end['addresses'] = seen
        if (end['mtu'] is not None and MTU_MIN <= end['mtu'] < IPV6_MTU_MIN
                and any(':' in a for a in seen)):
            errors.append('%s: mtu %d is below %d, the IPv6 minimum: the kernel would drop the '
                          'IPv6 addresses; raise the mtu or list only IPv4 addresses'
                          % (label, end['mtu'], IPV6_MTU_MIN))
    return end


def normalise(params):
    """Validate module parameters; return (desired, errors). Touches nothing."""
    errors = []
    namespaces = {}  # name -> present|absent (declaration order kept)
    for entry in params.get('namespaces') or []:
        if isinstance(entry, str):
            name, nstate = entry, 'present'
        elif isinstance(entry, dict) and set(entry) <= {'name', 'state'} and 'name' in entry:
            name, nstate = entry['name'], entry.get('state') or 'present'
            if nstate not in ('present', 'absent'):
                errors.append('namespace %r: state must be present or absent, not %r'
                              % (name, nstate))
                continue
        else:
            errors.append('namespaces: entry %r must be a name or {name: ..., state: '
                          'present|absent}' % (entry,))
            continue
        msg = netns_error(name if isinstance(name, str) else repr(name))
        if msg:
            errors.append('namespaces: %s' % msg)
            continue
        if name in namespaces and namespaces[name] != nstate:
            errors.append('namespace %r is declared both present and absent' % name)
        namespaces[name] = nstate

    links = []
    ends_seen = {}
    for i, raw in enumerate(params.get('links') or []):
        label = 'links[%d] %s' % (i, raw.get('name'))
        end = _normalise_end(raw, label, errors)
        raw_peer = dict(raw.get('peer') or {})
        if raw_peer.get('mtu') is None and end['mtu'] is not None and MTU_MIN <= end['mtu'] <= MTU_MAX:
            raw_peer['mtu'] = end['mtu']  # a link's MTU is both ends' unless the peer says
        peer = _normalise_end(raw_peer, label + ' peer', errors)
        link = {'end': end, 'peer': peer,
                'rx_queues': raw.get('rx_queues'), 'tx_queues': raw.get('tx_queues')}
        for key in ('rx_queues', 'tx_queues'):
            val = link[key]
            if val is not None and not 1 <= val <= QUEUES_MAX:
                errors.append('%s: %s %d is outside 1-%d' % (label, key, val, QUEUES_MAX))
        if end['name'] == peer['name'] and end['netns'] == peer['netns']:
            errors.append('%s: both ends are called %r in the same namespace; give the peer '
                          'another name (or put it in another namespace)'
                          % (label, end['name']))
        for e in (end, peer):
            key = (e['netns'], e['name'])
            if key in ends_seen and ends_seen[key] != i:
                errors.append('%s is declared by links[%d] and links[%d]; each interface may '
                              'appear once' % (where(*key), ends_seen[key], i))
            ends_seen[key] = i
        links.append(link)

    state = params.get('state') or 'present'
    if state == 'present':
        for link in links:
            for e in (link['end'], link['peer']):
                if e['netns'] is not None and namespaces.get(e['netns']) == 'absent':
                    errors.append('namespace %r is declared absent but %s still needs it; '
                                  'drop the link or keep the namespace'
                                  % (e['netns'], where(e['netns'], e['name'])))
                if e['netns'] is not None:
                    namespaces.setdefault(e['netns'], 'present')
    desired = {
        'state': state,
        'namespaces': namespaces,
        'links': links,
        'recreate': bool(params.get('recreate')),
        'ipv6_nodad': params.get('ipv6_nodad', True) is not False,
    }
    return desired, errors


# --- pure: plan ------------------------------------------------------------------------

def _act(op, text, **kw):
    kw.update(op=op, text=text)
    return kw


def _kind_text(cur):
    return ('a %s device' % cur['kind']) if cur['kind'] else 'a device without a link kind (a NIC?)'


def plan(desired, current):
    """Compute (actions, errors) from desired state and a snapshot of the current state.

    ``current`` = {'namespaces': [existing names], 'lo_up': {ns: bool},
    'links': {(netns, ifname): info or None}} where info has kind, mtu, mac, up,
    rx_queues, tx_queues, addresses and peer = (netns, ifname) or None (unresolved).
    """
    actions, errors = [], []
    existing_ns = set(current.get('namespaces') or [])
    cur_links = current.get('links') or {}
    lo_up = current.get('lo_up') or {}

    def cur(e):
        if e['netns'] is not None and e['netns'] not in existing_ns:
            return None
        return cur_links.get((e['netns'], e['name']))

    if desired['state'] == 'absent':
        deleted = set()
        for link in desired['links']:
            for e in (link['end'], link['peer']):
                key = (e['netns'], e['name'])
                c = cur(e)
                if c is None or key in deleted:
                    continue
                if c['kind'] != 'veth':
                    errors.append('%s is %s, not a veth; refusing to delete it - fix the name '
                                  'in links' % (where(*key), _kind_text(c)))
                    continue
                actions.append(_act('delete_link', 'delete veth %s' % where(*key),
                                    netns=e['netns'], ifname=e['name']))
                deleted.add(key)
                if c.get('peer'):
                    deleted.add(tuple(c['peer']))
        for name in desired['namespaces']:
            if name in existing_ns:
                actions.append(_act('delete_netns', 'delete namespace %s' % name, netns=name))
        return (actions if not errors else []), errors

    # present
    ns_present = [n for n, s in desired['namespaces'].items() if s == 'present']
    ns_absent = [n for n, s in desired['namespaces'].items() if s == 'absent']
    for name in ns_present:
        if name not in existing_ns:
            actions.append(_act('create_netns', 'create namespace %s' % name, netns=name))
    for name in ns_present:
        if name not in existing_ns or not lo_up.get(name, False):
            actions.append(_act('lo_up', 'bring lo up in %s' % name, netns=name))

    deletes, creates, updates = [], [], []
    for link in desired['links']:
        a, b = link['end'], link['peer']
        ka, kb = (a['netns'], a['name']), (b['netns'], b['name'])
        ca, cb = cur(a), cur(b)
        bad = False
        for e, c in ((a, ca), (b, cb)):
            if c is not None and c['kind'] != 'veth':
                errors.append('%s already exists as %s, not a veth; choose another name or '
                              'remove that device first'
                              % (where(e['netns'], e['name']), _kind_text(c)))
                bad = True
        if bad:
            continue
        paired = (ca is not None and cb is not None
                  and tuple(ca.get('peer') or ()) == kb and tuple(cb.get('peer') or ()) == ka)
        recreate_why = None
        if (ca is not None or cb is not None) and not paired:
            parts = []
            for e, c in ((a, ca), (b, cb)):
                if c is not None:
                    p = c.get('peer')
                    parts.append('%s is a veth paired with %s' % (
                        where(e['netns'], e['name']),
                        where(*p) if p else 'an interface in another namespace'))
            recreate_why = '; '.join(parts) + ', not with each other'
        elif paired:
            for key in ('rx_queues', 'tx_queues'):
                want = link[key]
                if want is not None and (ca[key] != want or cb[key] != want):
                    recreate_why = ('%s-%s has %s %s/%s but %d was requested; the kernel sets '
                                    'queue counts only at creation'
                                    % (where(*ka), where(*kb), key, ca[key], cb[key], want))
                    break
        if recreate_why:
            if not desired['recreate']:
                errors.append(recreate_why + '; set recreate: true to delete and re-create '
                              'the pair')
                continue
            for e, c in ((a, ca), (b, cb)):
                key = (e['netns'], e['name'])
                if c is not None and not any(d['netns'] == key[0] and d['ifname'] == key[1]
                                             for d in deletes):
                    deletes.append(_act('delete_link', 'delete veth %s (recreate)' % where(*key),
                                        netns=key[0], ifname=key[1]))
            ca = cb = None
        if ca is None:
            creates.append(_act(
                'create_veth', 'create veth %s <-> %s' % (where(*ka), where(*kb)),
                netns=a['netns'], ifname=a['name'], peer_netns=b['netns'], peer_ifname=b['name'],
                rx_queues=link['rx_queues'], tx_queues=link['tx_queues'],
                mtu=a['mtu'], mac=a['mac'], peer_mtu=b['mtu'], peer_mac=b['mac']))
            ca = {'mtu': a['mtu'], 'mac': a['mac'], 'up': False, 'addresses': []}
            cb = {'mtu': b['mtu'], 'mac': b['mac'], 'up': False, 'addresses': []}
        for e, c in ((a, ca), (b, cb)):
            updates.extend(_end_updates(e, c))
    if errors:
        return [], errors
    actions.extend(deletes)
    actions.extend(creates)
    actions.extend(updates)
    for name in ns_absent:
        if name in existing_ns:
            actions.append(_act('delete_netns', 'delete namespace %s' % name, netns=name))
    return actions, errors


def mtu_refusal_text(mtu, max_mtu, error):
    """Why the kernel refused an MTU and what to do (veth + a non-frags XDP program)."""
    text = 'the kernel refused mtu %d (%s)' % (mtu, error)
    if max_mtu and mtu > max_mtu:
        text += ('; the device allows at most %d now. On a veth, an XDP program without frags '
                 'support (a plain SEC("xdp") program) attached to the other end caps this '
                 'end at about one page: detach it (kbypass.xdp.xdp_attach state: absent) or '
                 'attach an SEC("xdp.frags") program instead (kbypass.xdp\'s own programs are), '
                 'then set the mtu again' % max_mtu)
    return text


def _end_updates(e, c):
    out = []
    ns, name = e['netns'], e['name']
    w = where(ns, name)
    if e['mtu'] is not None and c.get('mtu') != e['mtu']:
        out.append(_act('set_mtu', 'set mtu %d on %s' % (e['mtu'], w),
                        netns=ns, ifname=name, mtu=e['mtu']))
    if e['mac'] is not None and c.get('mac') != e['mac']:
        out.append(_act('set_mac', 'set mac %s on %s' % (e['mac'], w),
                        netns=ns, ifname=name, mac=e['mac']))
    if e['addresses'] is not None:
        have = set(c.get('addresses') or [])
        want = e['addresses']
        for cidr in _netlink.sort_addresses(have - set(want)):
            out.append(_act('addr_del', 'remove %s from %s' % (cidr, w),
                            netns=ns, ifname=name, address=cidr))
        for cidr in want:
            if cidr not in have:
                out.append(_act('addr_add', 'add %s to %s' % (cidr, w),
                                netns=ns, ifname=name, address=cidr))
    want_up = e['state'] == 'up'
    if bool(c.get('up')) != want_up:
        out.append(_act('set_state', 'set %s %s' % (w, e['state']),
                        netns=ns, ifname=name, up=want_up))
    return out


# --- pure: predicted state and rendering ----------------------------------------------------

def predict(current, actions):
    """Snapshot after ``actions`` (for check mode); unknown values (MAC, ifindex) are None."""
    snap = copy.deepcopy(current)
    nss = set(snap.get('namespaces') or [])
    links = snap.setdefault('links', {})
    lo_up = snap.setdefault('lo_up', {})
    for act in actions:
        op, ns = act['op'], act.get('netns')
        key = (ns, act.get('ifname'))
        if op == 'create_netns':
            nss.add(ns)
            lo_up[ns] = False
        elif op == 'lo_up':
            lo_up[ns] = True
        elif op == 'delete_netns':
            nss.discard(ns)
            lo_up.pop(ns, None)
            for k in [k for k in links if k[0] == ns]:
                links[k] = None
        elif op == 'delete_link':
            c = links.get(key)
            links[key] = None
            if c and c.get('peer'):
                links[tuple(c['peer'])] = None
        elif op == 'create_veth':
            pkey = (act['peer_netns'], act['peer_ifname'])
            for k, other, mtu, mac in ((key, pkey, act['mtu'], act['mac']),
                                       (pkey, key, act['peer_mtu'], act['peer_mac'])):
                links[k] = {'ifname': k[1], 'ifindex': None, 'kind': 'veth',
                            'mtu': mtu or 1500, 'mac': mac, 'up': False,
                            'rx_queues': act['rx_queues'] or 1,
                            'tx_queues': act['tx_queues'] or 1,
                            'addresses': [], 'peer': other}
        elif links.get(key):
            c = links[key]
            if op == 'set_mtu':
                c['mtu'] = act['mtu']
            elif op == 'set_mac':
                c['mac'] = act['mac']
            elif op == 'set_state':
                c['up'] = act['up']
            elif op == 'addr_add':
                c['addresses'] = _netlink.sort_addresses(c['addresses'] + [act['address']])
            elif op == 'addr_del':
                c['addresses'] = [x for x in c['addresses'] if x != act['address']]
    snap['namespaces'] = sorted(nss)
    return snap


def _render_end(snapshot, e):
    nss = set(snapshot.get('namespaces') or [])
    c = None
    if e['netns'] is None or e['netns'] in nss:
        c = (snapshot.get('links') or {}).get((e['netns'], e['name']))
    if c is None:
        return {'present': False, 'netns': e['netns'], 'ifname': e['name']}
    return {
        'present': True, 'netns': e['netns'], 'ifname': e['name'],
        'ifindex': c.get('ifindex'), 'mac': c.get('mac'), 'mtu': c.get('mtu'),
        'state': 'up' if c.get('up') else 'down', 'addresses': list(c.get('addresses') or []),
        'rx_queues': c.get('rx_queues'), 'tx_queues': c.get('tx_queues'),
    }


def render(desired, snapshot):
    """The declared objects as plain data, for results and diffs."""
    nss = set(snapshot.get('namespaces') or [])
    links = []
    for link in desired['links']:
        item = _render_end(snapshot, link['end'])
        item['peer'] = _render_end(snapshot, link['peer'])
        links.append(item)
    return {
        'namespaces': [n for n in desired['namespaces'] if n in nss],
        'links': links,
    }


def _diff_view(rendered):
    """Diff-friendly view: stable keys, no ifindex (it changes on re-creation)."""
    out = {'namespaces': rendered['namespaces'], 'links': {}}
    for item in rendered['links']:
        for e in (item, item['peer']):
            view = {k: v for k, v in e.items() if k not in ('ifindex', 'peer', 'ifname', 'netns')}
            out['links'][where(e['netns'], e['ifname'])] = view
    return out


# --- kernel side: read and apply --------------------------------------------------------------

def read_state(desired):
    """Snapshot of everything ``desired`` mentions (never creates anything)."""
    existing = set(_netns.list_netns())
    names = set(desired['namespaces'])
    for link in desired['links']:
        for e in (link['end'], link['peer']):
            if e['netns'] is not None:
                names.add(e['netns'])
    known = [None] + sorted(n for n in names if n in existing)
    snap = {'namespaces': sorted(n for n in names if n in existing), 'lo_up': {}, 'links': {}}
    wanted = {}
    for link in desired['links']:
        for e in (link['end'], link['peer']):
            if e['netns'] is None or e['netns'] in existing:
                wanted.setdefault(e['netns'], set()).add(e['name'])
    for ns in known:
        with _netns.netlink(ns) as ipr:
            if ns is not None:
                lo = _netlink.find_link(ipr, 'lo')
                snap['lo_up'][ns] = bool(lo is not None and lo['flags'] & _netlink.IFF_UP)
            for name in sorted(wanted.get(ns, ())):
                msg = _netlink.find_link(ipr, name)
                if msg is None:
                    snap['links'][(ns, name)] = None
                    continue
                info = _netlink.link_info(msg)
                info['addresses'] = _netlink.link_addresses(ipr, info['ifindex'])
                info['peer'] = _resolve_peer(ipr, ns, info, known) if info['kind'] == 'veth' else None
                snap['links'][(ns, name)] = info
    return snap


def _resolve_peer(ipr, ns, info, known):
    """(netns, ifname) of a veth's other end among ``known`` namespaces, or None."""
    if not info.get('peer_ifindex'):
        return None
    target = None
    if info.get('peer_nsid') is None:
        target = ns
    else:
        for cand in known:
            if cand != ns and _netlink.nsid_of(ipr, cand) == info['peer_nsid']:
                target = cand
                break
        else:
            return None
    if target == ns:
        msgs = ipr.link('get', index=info['peer_ifindex'])
        return (ns, msgs[0].get_attr('IFLA_IFNAME')) if msgs else None
    with _netns.netlink(target) as other:
        msgs = other.link('get', index=info['peer_ifindex'])
        return (target, msgs[0].get_attr('IFLA_IFNAME')) if msgs else None


def apply(actions, ipv6_nodad=True):
    """Carry out ``actions`` in order."""
    for act in actions:
        op, ns = act['op'], act.get('netns')
        if op == 'create_netns':
            _netns.create(ns)
        elif op == 'delete_netns':
            _netns.remove(ns)
        elif op == 'lo_up':
            with _netns.netlink(ns) as ipr:
                _netlink.set_link_up(ipr, 'lo', True)
        elif op == 'delete_link':
            with _netns.netlink(ns) as ipr:
                msg = _netlink.find_link(ipr, act['ifname'])
                if msg is not None:  # its peer may already have taken it along
                    ipr.link('del', index=msg['index'])
        elif op == 'create_veth':
            _create_veth(act)
        else:
            with _netns.netlink(ns) as ipr:
                msg = _netlink.find_link(ipr, act['ifname'])
                if msg is None:
                    raise RuntimeError('%s disappeared' % where(ns, act['ifname']))
                idx = msg['index']
                if op == 'set_mtu':
                    try:
                        ipr.link('set', index=idx, mtu=act['mtu'])
                    except Exception as exc:  # pylint: disable=broad-except
                        raise RuntimeError(mtu_refusal_text(
                            act['mtu'], msg.get_attr('IFLA_MAX_MTU'), _netlink.error_text(exc)))
                elif op == 'set_mac':
                    ipr.link('set', index=idx, address=act['mac'])
                elif op == 'set_state':
                    ipr.link('set', index=idx, state='up' if act['up'] else 'down')
                elif op == 'addr_add':
                    _netlink.add_address(ipr, idx, act['address'], nodad=ipv6_nodad)
                elif op == 'addr_del':
                    _netlink.del_address(ipr, idx, act['address'])
                else:  # pragma: no cover - plan() only emits known ops
                    raise ValueError('unknown action %r' % op)


def _create_veth(act):
    peer = {'ifname': act['peer_ifname']}
    main = {'ifname': act['ifname'], 'kind': 'veth'}
    for key, attr in (('rx_queues', 'num_rx_queues'), ('tx_queues', 'num_tx_queues')):
        if act[key]:
            main[attr] = act[key]
            peer[attr] = act[key]
    if act['mtu']:
        main['mtu'] = act['mtu']
    if act['mac']:
        main['address'] = act['mac']
    if act['peer_mtu']:
        peer['mtu'] = act['peer_mtu']
    if act['peer_mac']:
        peer['address'] = act['peer_mac']
    with _netns.open_fd(act['peer_netns']) as fd:
        if act['peer_netns'] != act['netns']:
            peer['net_ns_fd'] = fd
        with _netns.netlink(act['netns']) as ipr:
            ipr.link('add', peer=peer, **main)


# --- module --------------------------------------------------------------------------------------

def _end_spec(with_queues):
    spec = {
        'name': {'type': 'str', 'required': True},
        'netns': {'type': 'str'},
        'addresses': {'type': 'list', 'elements': 'str'},
        'mtu': {'type': 'int'},
        'mac': {'type': 'str'},
        'state': {'type': 'str', 'choices': ['up', 'down'], 'default': 'up'},
    }
    if with_queues:
        spec['rx_queues'] = {'type': 'int'}
        spec['tx_queues'] = {'type': 'int'}
        spec['peer'] = {'type': 'dict', 'required': True, 'options': _end_spec(False)}
    return spec


ARGUMENT_SPEC = {
    'namespaces': {'type': 'list', 'elements': 'raw', 'default': []},
    'links': {'type': 'list', 'elements': 'dict', 'default': [], 'options': _end_spec(True)},
    'state': {'type': 'str', 'choices': ['present', 'absent'], 'default': 'present'},
    'recreate': {'type': 'bool', 'default': False},
    'ipv6_nodad': {'type': 'bool', 'default': True},
}


# what undoes a creation: a failed call leaves nothing it created behind
_UNDO = {'create_netns': lambda a: _act('delete_netns', 'delete namespace %s' % a['netns'],
                                        netns=a['netns']),
         'create_veth': lambda a: _act('delete_link', 'delete veth %s' % where(a['netns'],
                                                                               a['ifname']),
                                       netns=a['netns'], ifname=a['ifname'])}


def undo_plan(done):
    """(actions that remove what ``done`` created, newest first; what stays changed)."""
    undo = [_UNDO[a['op']](a) for a in reversed(done) if a['op'] in _UNDO]
    created_ns = set(a['netns'] for a in done if a['op'] == 'create_netns')
    created_links = set()
    for a in done:
        if a['op'] == 'create_veth':
            created_links.update([(a['netns'], a['ifname']), (a['peer_netns'], a['peer_ifname'])])
    # changes to what is removed again go with it
    kept = [a for a in done if a['op'] not in _UNDO and a.get('netns') not in created_ns
            and (a.get('netns'), a.get('ifname')) not in created_links]
    return undo, kept


def fail_after(module, failed, exc, done):
    """An action failed: remove what this call created, then say what stays changed."""
    undo, kept = undo_plan(done)
    leftover = []
    for act in undo:
        try:
            apply([act])
        except Exception as undo_exc:  # pylint: disable=broad-except
            leftover.append('%s (%s)' % (act['text'], _netlink.error_text(undo_exc)))
    msg = 'failed to %s: %s' % (failed['text'], _netlink.error_text(exc))
    if undo:
        msg += '; removed again what this task had created (%s)' % ', '.join(
            a['text'] for a in undo)
    if leftover:
        msg += '; could NOT remove: %s' % ', '.join(leftover)
    msg += '; still changed: %s' % (', '.join(a['text'] for a in kept) or 'nothing')
    module.fail_json(msg=msg, changed=bool(kept or leftover),
                     actions=[a['text'] for a in kept])


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    desired, errors = normalise(module.params)
    if errors:
        module.fail_json(msg='invalid arguments, nothing was changed: ' + ' | '.join(errors),
                         errors=errors)
    require_pyroute2(module)

    try:
        before = read_state(desired)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg='could not read the current state: %s' % _netlink.error_text(exc),
                         exception=traceback.format_exc())
    actions, errors = plan(desired, before)
    if errors:
        module.fail_json(msg='cannot apply this topology, nothing was changed: '
                         + ' | '.join(errors), errors=errors)

    done = []
    if actions and not module.check_mode:
        try:
            for act in actions:
                apply([act], ipv6_nodad=desired['ipv6_nodad'])
                done.append(act)
        except Exception as exc:  # pylint: disable=broad-except
            fail_after(module, actions[len(done)], exc, done)
        after = read_state(desired)
    else:
        after = predict(before, actions)

    rendered_after = render(desired, after)
    result = {
        'changed': bool(actions),
        'actions': [a['text'] for a in actions],
        'namespaces': rendered_after['namespaces'],
        'links': rendered_after['links'],
    }
    if module._diff:
        result['diff'] = {'before': _diff_view(render(desired, before)),
                          'after': _diff_view(rendered_after)}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
