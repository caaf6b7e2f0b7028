#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: ovs_probe
short_description: Measure traffic across an Open vSwitch bridge with an afxdp port
version_added: "0.2.0"
description:
  - Flushes the traffic namespace's neighbour entry for the far address and pings it
    through the bridge (ARP must resolve to the far interface's MAC address).
  - Starts C(kbypass-udpecho) in the far namespace, sends a bounded UDP burst with
    C(kbypass-gen --replies) from the traffic namespace, and reads the bridge's port
    counters (C(ovs-ofctl dump-ports)) and PMD statistics
    (C(ovs-appctl dpif-netdev/pmd-stats-show)) before and after, plus C(ovs-appctl dpctl/show)
    for the xdp mode in use.
  - Only measures; M(kbypass.xdp.verify_report) judges the result (option C(ovs)).
author:
  - kbypass.xdp developers (@kbypass)
attributes:
  check_mode:
    support: full
    description: A measurement changes nothing; it also runs in check mode.
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  bridge:
    description: The bridge.
    type: str
    required: true
  afxdp_port:
    description: The afxdp port the traffic namespace's packets enter through.
    type: str
    required: true
  far_port:
    description: The port toward the far namespace.
    type: str
    required: true
  peer_netns:
    description: Namespace the traffic comes from.
    type: str
    required: true
  peer_ifname:
    description: The traffic namespace's interface (neighbour flush).
    type: str
    required: true
  far_netns:
    description: Namespace behind the second port, where the echo runs.
    type: str
    required: true
  far_ifname:
    description: The far namespace's interface (its MAC address is what ARP must find).
    type: str
    required: true
  far_address:
    description: The far namespace's IPv4 or IPv6 address.
    type: str
    required: true
  xdp_mode:
    description: The xdp-mode configured on the afxdp port (judged against dpctl/show).
    type: str
    choices: [best-effort, native-with-zerocopy, native, generic]
    default: best-effort
  port:
    description: UDP port of the echo.
    type: int
    default: 4242
  count:
    description: Packets in the burst.
    type: int
    default: 2000
  rate:
    description: Packets per second.
    type: int
    default: 10000
  size:
    description: Frame length in bytes.
    type: int
    default: 64
  reply_timeout_ms:
    description: How long the generator waits for the last echo.
    type: int
    default: 1000
  ping_count:
    description: ICMP echo requests through the bridge.
    type: int
    default: 3
  slack:
    description: Packets a port counter may see beyond the burst (ARP, IPv6 ND).
    type: int
    default: 10
  generator:
    description: Path of kbypass-gen.
    type: path
    default: /usr/local/bin/kbypass-gen
  echo:
    description: Path of kbypass-udpecho.
    type: path
    default: /usr/local/bin/kbypass-udpecho
'''

EXAMPLES = r'''
- name: Measure the path across the bridge
  kbypass.xdp.ovs_probe:
    bridge: ovsbr0
    afxdp_port: ovs0
    far_port: ovs2
    peer_netns: ns2
    peer_ifname: ovs1
    far_netns: ns3
    far_ifname: ovs3
    far_address: 198.18.1.30
  register: ovs_probe
'''

RETURN = r'''
generator:
  description: kbypass-gen's JSON result (sent, received, lost, rtt_us ...).
  returned: always
  type: dict
echo:
  description: kbypass-udpecho's JSON result in the far namespace (packets, echoed).
  returned: always
  type: dict
ports_before:
  description: dump-ports counters by OpenFlow port number before the burst (ports_after after).
  returned: always
  type: dict
pmd_before:
  description: pmd-stats-show counters by thread before the burst (pmd_after after).
  returned: always
  type: dict
dpctl:
  description: dpctl/show by port name (type and config, e.g. xdp-mode-in-use).
  returned: always
  type: dict
neighbour:
  description: The traffic namespace's neighbour entry for the far address after the ping.
  returned: always
  type: dict
ping:
  description: Ping through the bridge (sent, received).
  returned: always
  type: dict
'''

import json
import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kbypass.xdp.plugins.module_utils import _netns, _ovs
from ansible_collections.kbypass.xdp.plugins.module_utils import _supervise as sv

_PING_RE = re.compile(r'(\d+) packets transmitted, (\d+) (?:packets )?received')


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def link_mac(module, netns, ifname):
    links, _err = _netns.run_json(module, ['ip', '-j', 'link', 'show', 'dev', ifname], netns)
    return (links or [{}])[0].get('address')


def arp_and_ping(module, p):
    """Neighbour flush, ping, the entry the ping left."""
    dev = ['dev', p['peer_ifname']]
    _netns.run(module, ['ip', 'neigh', 'flush', 'to', p['far_address']] + dev, p['peer_netns'])
    rc, out, _err = _netns.run(module, ['ping', '-n', '-q', '-c', str(p['ping_count']), '-i',
                                        '0.2', '-W', '1', '-w', str(p['ping_count'] + 3),
                                        p['far_address']], p['peer_netns'])
    m = _PING_RE.search(out)
    ping = {'address': p['far_address'], 'rc': rc,
            'sent': int(m.group(1)) if m else p['ping_count'],
            'received': int(m.group(2)) if m else 0}
    entries, _err = _netns.run_json(module, ['ip', '-j', 'neigh', 'show', 'to', p['far_address']]
                                    + dev, p['peer_netns'])
    entry = (entries or [{}])[0]
    state = entry.get('state') or ['NONE']
    state = '/'.join(state) if isinstance(state, list) else str(state)
    neigh = {'address': p['far_address'], 'state': state, 'lladdr': entry.get('lladdr'),
             'resolved': bool(entry.get('lladdr')) and 'FAILED' not in state
             and 'INCOMPLETE' not in state}
    return ping, neigh


def snapshot(cli, bridge):
    return (_ovs.parse_dump_ports(cli.ofctl('dump-ports', bridge)),
            _ovs.parse_pmd_stats(cli.appctl('dpif-netdev/pmd-stats-show')))


def burst(module, p):
    """UDP burst with replies from the traffic namespace, echoed in the far namespace."""
    window = p['count'] / float(max(p['rate'], 1)) + p['reply_timeout_ms'] / 1000.0
    log = os.path.join(module.tmpdir, 'kbypass-udpecho.log')
    # bounded by its own --duration too, should this module die before stopping it
    echo = sv.spawn_detached([p['echo'], '--netns', p['far_netns'], '--port', str(p['port']),
                              '--mode', 'echo', '--duration', str(int(window + 15))], log)
    try:
        wait_listening(p, echo)
        argv = ['timeout', str(int(window * 3 + 10)), p['generator'], '--netns',
                p['peer_netns'], '--dst', p['far_address'], '--dport', str(p['port']),
                '--count', str(p['count']), '--rate', str(p['rate']), '--size', str(p['size']),
                '--engine', 'socket', '--replies', '--reply-timeout',
                str(p['reply_timeout_ms']), '--json']
        rc, out, err = module.run_command(argv)
        gen = last_json(out)
        if gen is None:
            module.fail_json(msg='kbypass-gen toward %s failed (rc=%s): %s'
                             % (p['far_address'], rc, (err or out).strip()))
    finally:
        sv.terminate(echo.pid, None, popen=echo)
    with open(log) as fh:
        text = fh.read()
    return gen, last_json(text) or {'error': text.strip()[-500:]}


def wait_listening(p, echo, timeout=5.0):
    """Until the far namespace has a UDP socket on the port (or the echo died)."""
    hexport = ':%04X' % p['port']
    table = 'udp6' if ':' in p['far_address'] else 'udp'
    deadline = time.time() + timeout
    while time.time() < deadline and echo.poll() is None:
        if any(row.split()[1].endswith(hexport) for row in _netns.proc_net(p['far_netns'], table)
               if len(row.split()) > 1):
            return
        time.sleep(0.05)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            bridge=dict(type='str', required=True),
            afxdp_port=dict(type='str', required=True),
            far_port=dict(type='str', required=True),
            peer_netns=dict(type='str', required=True),
            peer_ifname=dict(type='str', required=True),
            far_netns=dict(type='str', required=True),
            far_ifname=dict(type='str', required=True),
            far_address=dict(type='str', required=True),
            xdp_mode=dict(type='str', default='best-effort', choices=list(_ovs.XDP_MODES)),
            port=dict(type='int', default=4242),
            count=dict(type='int', default=2000),
            rate=dict(type='int', default=10000),
            size=dict(type='int', default=64),
            reply_timeout_ms=dict(type='int', default=1000),
            ping_count=dict(type='int', default=3),
            slack=dict(type='int', default=10),
            generator=dict(type='path', default='/usr/local/bin/kbypass-gen'),
            echo=dict(type='path', default='/usr/local/bin/kbypass-udpecho'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    for ns in (p['peer_netns'], p['far_netns']):
        if not _netns.netns_exists(ns):
            module.fail_json(msg='network namespace %s does not exist' % ns)
    try:
        cli = _ovs.OvsCli(module)
        state = cli.bridge(p['bridge'])
        missing = [n for n in (p['afxdp_port'], p['far_port']) if n not in state['ports']]
        if not state['exists'] or missing:
            module.fail_json(msg='bridge %s with ports %s, %s is not there (missing: %s)' % (
                p['bridge'], p['afxdp_port'], p['far_port'], ', '.join(missing) or 'bridge'))
        ping, neigh = arp_and_ping(module, p)
        ports_before, pmd_before = snapshot(cli, p['bridge'])
        gen, echo = burst(module, p)
        time.sleep(0.2)  # the last echo's counters
        ports_after, pmd_after = snapshot(cli, p['bridge'])
        result = dict(
            changed=False, bridge=p['bridge'], datapath_type=state['datapath_type'],
            ovs_version=cli.vswitch().get('ovs_version'),
            afxdp_port=p['afxdp_port'], afxdp_ofport=state['ports'][p['afxdp_port']]['ofport'],
            far_port=p['far_port'], far_ofport=state['ports'][p['far_port']]['ofport'],
            peer_netns=p['peer_netns'], far_netns=p['far_netns'], far_address=p['far_address'],
            far_mac=link_mac(module, p['far_netns'], p['far_ifname']), port=p['port'],
            xdp_mode=p['xdp_mode'], count=p['count'], slack=p['slack'],
            dpctl=_ovs.parse_dpctl_show(cli.appctl('dpctl/show')),
            ports_before=ports_before, ports_after=ports_after,
            pmd_before=pmd_before, pmd_after=pmd_after,
            generator=gen, echo=echo, ping=ping, neighbour=neigh)
    except _ovs.OvsError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
