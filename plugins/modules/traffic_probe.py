#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: traffic_probe
short_description: Send bounded probe traffic through an XDP/AF_XDP path and measure what happened
version_added: "0.1.0"
description:
  - Measures, without judging, what the verify role needs to prove that matching traffic went
    through user space and everything else through the kernel.
  - C(matching) runs C(kbypass-gen --engine socket --replies) in the peer namespace against each
    device-under-test address, one burst per address, and snapshots the steering program's
    pinned C(steer_stats) counters and the forwarder's stats file around each burst. A bounded
    C(tcpdump) in the peer namespace captures echoed datagrams at the same time.
  - C(nonmatching) flushes the peer's neighbour entries and pings each address (ARP/ND and ICMP
    echo), sends UDP datagrams to another port where a kernel socket listens in the DUT
    namespace, and connects with TCP to the matching port (a RST or a connection both prove the
    kernel answered), with counter snapshots around all of it.
  - C(observation) reads C(bpftool -j net show) in the DUT namespace, the attached program's
    id/tag/name and the pinned C(xsks_map).
  - Every loop is bounded in packets and in time. The only state it changes is the peer's
    neighbour cache (an entry flushed so that ARP/ND must resolve through the DUT); it
    reports C(changed=true) when it flushed an entry. Comparing the numbers is the job of
    M(kbypass.xdp.verify_report).
author:
  - kbypass.xdp developers (@kbypass)
attributes:
  check_mode:
    support: full
    description: >-
      In check mode nothing is sent or flushed; the module returns only the observation,
      and C(changed) says whether a real run would flush neighbour entries.
  diff_mode:
    support: none
    description: The module changes nothing, so there is no diff.
options:
  dut_netns:
    description: Network namespace of the device under test; omit for the root namespace.
    type: str
  dut_ifname:
    description: Interface with the steering program attached.
    type: str
    required: true
  dut_addresses:
    description: Addresses (IPv4 and/or IPv6, no prefix length) of O(dut_ifname) to probe.
    type: list
    elements: str
    required: true
  peer_netns:
    description: Network namespace the traffic is sent from; omit for the root namespace.
    type: str
  peer_ifname:
    description: The peer's interface (for tcpdump and the neighbour flush).
    type: str
    required: true
  port:
    description: UDP destination port the steering program matches.
    type: int
    default: 4242
  other_port:
    description: A UDP port the steering program does not match; a kernel socket listens there.
    type: int
    default: 4243
  count:
    description: Matching packets per address.
    type: int
    default: 2000
  rate:
    description: Generator rate in packets per second.
    type: int
    default: 10000
  size:
    description:
      - Frame length (Ethernet, without FCS) handed to the generator's C(--size), up to the
        interfaces' MTU + 14 (9014 on a jumbo bed with MTU 9000); a larger one is refused
        before any traffic with the MTU it needs.
    type: int
    default: 64
  reply_timeout_ms:
    description: How long the generator waits for the last reply.
    type: int
    default: 1000
  series_interval_ms:
    description: Sampling interval of the generator's pps series.
    type: int
    default: 20
  generator:
    description: Path of C(kbypass-gen) on the target.
    type: path
    default: /usr/local/bin/kbypass-gen
  pin_dir:
    description: bpffs directory with the steering program's pins; defaults to
      C(/sys/fs/bpf/kbypass/<dut_netns or init_net>/<dut_ifname>).
    type: path
  forwarder_stats_file:
    description: The forwarder's stats file. Omit to skip forwarder counters.
    type: path
  stats_wait:
    description: Seconds to wait for the forwarder to rewrite its stats file after traffic.
    type: float
    default: 3.0
  tcpdump_count:
    description: Echoed datagrams tcpdump must capture per burst (0 disables tcpdump).
    type: int
    default: 100
  tcpdump_timeout:
    description: Upper bound in seconds of each tcpdump.
    type: int
    default: 10
  nonmatching_count:
    description: UDP datagrams sent to O(other_port) per address.
    type: int
    default: 20
  ping_count:
    description: ICMP echo requests per address.
    type: int
    default: 3
  probes:
    description: Which measurements to run.
    type: list
    elements: str
    choices: [matching, nonmatching, observation]
    default: [matching, nonmatching, observation]
notes:
  - Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN to enter namespaces, CAP_BPF for bpftool).
  - Uses C(ip), C(ping), C(tcpdump), C(timeout) and C(bpftool), all installed by the
    P(kbypass.xdp.toolchain#role) role.
'''

EXAMPLES = r'''
- name: Measure the path of the default test bed
  kbypass.xdp.traffic_probe:
    dut_netns: ns1
    dut_ifname: veth0
    dut_addresses: [198.18.0.10, "2001:2::10"]
    peer_netns: ns2
    peer_ifname: veth1
    forwarder_stats_file: /run/kbypass/forwarder/echo-ns1-veth0.stats.json
  register: probe

- name: Only look at what is attached
  kbypass.xdp.traffic_probe:
    dut_netns: ns1
    dut_ifname: veth0
    dut_addresses: [198.18.0.10]
    peer_netns: ns2
    peer_ifname: veth1
    probes: [observation]
'''

RETURN = r'''
topology:
  description: The path probed (namespaces, interfaces, addresses, MACs, pin dir).
  returned: always
  type: dict
forwarder:
  description: The forwarder's last stats (mode, bind_mode, pid, queues...), or null.
  returned: always
  type: dict
matching:
  description: One entry per DUT address with C(generator) (kbypass-gen's JSON),
    C(steer_before)/C(steer_after) and C(forwarder_before)/C(forwarder_after) snapshots.
  returned: when matching was probed
  type: list
  elements: dict
nonmatching:
  description: C(udp), C(tcp), C(icmp), C(neighbour) results and counter snapshots around them.
  returned: when nonmatching was probed
  type: dict
observation:
  description: C(program) (id, tag, name, mode), C(bpftool_net), C(xsks_map) and C(tcpdump)
    captures.
  returned: always
  type: dict
timestamp:
  description: UTC time the probe started (ISO 8601).
  returned: always
  type: str
'''

import ipaddress
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kbypass.xdp.plugins.module_utils import _netns
from ansible_collections.kbypass.xdp.plugins.module_utils._probe import (
    ProbeError,
    link_info,
    neighbour_show,
    observe,
    probe_matching,
    probe_nonmatching,
    read_forwarder,
)
from ansible_collections.kbypass.xdp.plugins.module_utils._common import (
    default_pin_dir,
    name_errors,
)


# ---------------------------------------------------------------------------------------
def validate(p):
    """Return a list of human messages for bad input (pure)."""
    errors = name_errors(p, ('dut_ifname', 'peer_ifname'), ('dut_netns', 'peer_netns'))
    if not p.get('dut_addresses'):
        errors.append('dut_addresses: give at least one address')
    for address in p.get('dut_addresses') or []:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            errors.append('dut_addresses: %r is not an IP address (no prefix length)' % address)
    for key in ('port', 'other_port'):
        if not 0 < (p.get(key) or 0) < 65536:
            errors.append('%s: %r is not a UDP port (1-65535)' % (key, p.get(key)))
    if p.get('port') == p.get('other_port'):
        errors.append('other_port must differ from port (%s)' % p.get('port'))
    for key in ('count', 'rate'):
        if (p.get(key) or 0) <= 0:
            errors.append('%s must be positive' % key)
    if (p.get('count') or 0) > 10000000:
        errors.append('count %s is too large for a verify burst' % p.get('count'))
    for key in ('size', 'reply_timeout_ms', 'series_interval_ms', 'stats_wait', 'tcpdump_count',
                'tcpdump_timeout', 'nonmatching_count', 'ping_count'):
        if (p.get(key) or 0) < 0:
            errors.append('%s must not be negative, got %s' % (key, p.get(key)))
    if (p.get('tcpdump_count') or 0) > (p.get('count') or 0):
        errors.append('tcpdump_count (%s) cannot exceed count (%s)'
                      % (p.get('tcpdump_count'), p.get('count')))
    return errors


def address_error(p, dut_link, peer_link):
    """A message when an interface is missing or a DUT address is not on dut_ifname."""
    for link, key, ns in ((dut_link, 'dut_ifname', 'dut_netns'),
                          (peer_link, 'peer_ifname', 'peer_netns')):
        if not link:
            return '%s %s does not exist in %s' % (
                key, p[key], 'network namespace %s' % p[ns] if p[ns] else 'the root namespace')
    have = set(ipaddress.ip_address(a.split('/')[0]) for a in dut_link['addresses'])
    if 'matching' in (p.get('probes') or ['matching']):
        for link, key in ((dut_link, 'dut_ifname'), (peer_link, 'peer_ifname')):
            if link.get('mtu') and (p.get('size') or 0) > link['mtu'] + 14:
                return ('size %d needs an MTU of at least %d on %s %s, which has %d: raise the '
                        "bed's MTU (testbed_mtu: 9000, or netns_veth's link mtu) or send smaller "
                        'frames' % (p['size'], p['size'] - 14, key, p[key], link['mtu']))
    missing = [a for a in p['dut_addresses'] if ipaddress.ip_address(a) not in have]
    if missing:
        return ('dut_addresses %s are not configured on %s (it has %s); probe the addresses of '
                'the device under test' % (', '.join(missing), p['dut_ifname'],
                                           ', '.join(dut_link['addresses']) or 'none'))
    return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dut_netns=dict(type='str'),
            dut_ifname=dict(type='str', required=True),
            dut_addresses=dict(type='list', elements='str', required=True),
            peer_netns=dict(type='str'),
            peer_ifname=dict(type='str', required=True),
            port=dict(type='int', default=4242),
            other_port=dict(type='int', default=4243),
            count=dict(type='int', default=2000),
            rate=dict(type='int', default=10000),
            size=dict(type='int', default=64),
            reply_timeout_ms=dict(type='int', default=1000),
            series_interval_ms=dict(type='int', default=20),
            generator=dict(type='path', default='/usr/local/bin/kbypass-gen'),
            pin_dir=dict(type='path'),
            forwarder_stats_file=dict(type='path'),
            stats_wait=dict(type='float', default=3.0),
            tcpdump_count=dict(type='int', default=100),
            tcpdump_timeout=dict(type='int', default=10),
            nonmatching_count=dict(type='int', default=20),
            ping_count=dict(type='int', default=3),
            probes=dict(type='list', elements='str',
                        choices=['matching', 'nonmatching', 'observation'],
                        default=['matching', 'nonmatching', 'observation']),
        ),
        supports_check_mode=True,
    )
    p = dict(module.params)
    errors = validate(p)
    if errors:
        module.fail_json(msg='invalid arguments: ' + '; '.join(errors), errors=errors)
    if not p['pin_dir']:
        p['pin_dir'] = default_pin_dir(p['dut_ifname'], p['dut_netns'])
    for ns in (p['dut_netns'], p['peer_netns']):
        if not _netns.netns_exists(ns):
            module.fail_json(msg='network namespace %r does not exist: run the testbed role first '
                                 '(or fix verify_dut_netns / verify_peer_netns)' % ns)
    need_gen = 'matching' in p['probes'] and not module.check_mode
    if need_gen and not os.access(p['generator'], os.X_OK):
        module.fail_json(msg='traffic generator %s is missing or not executable: run the '
                             'kbypass.xdp.forwarder role first (it builds kbypass-gen)'
                             % p['generator'])

    result = {'changed': False,
              'timestamp': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}
    result['topology'] = {
        'dut_netns': p['dut_netns'], 'dut_ifname': p['dut_ifname'],
        'dut_addresses': p['dut_addresses'], 'peer_netns': p['peer_netns'],
        'peer_ifname': p['peer_ifname'], 'pin_dir': p['pin_dir'], 'port': p['port'],
        'forwarder_stats_file': p['forwarder_stats_file'],
        'forwarder_instance': (os.path.basename(p['forwarder_stats_file']).split('.stats.json')[0]
                               if p['forwarder_stats_file'] else None),
        'dut_link': link_info(module, p['dut_netns'], p['dut_ifname']),
        'peer_link': link_info(module, p['peer_netns'], p['peer_ifname']),
    }
    result['topology']['peer_addresses'] = result['topology']['peer_link'].get('addresses', [])
    err = address_error(p, result['topology']['dut_link'], result['topology']['peer_link'])
    if err:
        module.fail_json(msg=err, **result)
    try:
        observation = observe(module, p) if 'observation' in p['probes'] else {'tcpdump': []}
        if not module.check_mode:
            if 'matching' in p['probes']:
                result['matching'] = probe_matching(module, p, observation)
            if 'nonmatching' in p['probes']:
                result['nonmatching'] = probe_nonmatching(module, p)
                result['changed'] = any(n['flushed'] for n in result['nonmatching']['neighbour'])
        elif 'nonmatching' in p['probes']:  # a real run would flush these entries
            result['changed'] = any(neighbour_show(module, p, a)['state'] != 'NONE'
                                    for a in p['dut_addresses'])
    except (ProbeError, OSError) as exc:
        module.fail_json(msg=str(exc), **result)
    result['observation'] = observation
    fwd = read_forwarder(p['forwarder_stats_file'])
    result['forwarder'] = None if fwd is None else dict(
        (k, fwd.get(k)) for k in ('pid', 'running', 'mode', 'bind_mode', 'iface', 'iface2',
                                  'netns', 'queues', 'cpus', 'rx_packets', 'tx_packets',
                                  'xdp_stats', 'timestamp', '_alive'))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
