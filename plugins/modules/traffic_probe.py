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
    description: Frame length (Ethernet, without FCS) handed to the generator's C(--size).
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
import json
import os
import re
import select
import socket
import threading
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kbypass.xdp.plugins.module_utils import _bpf, _netns
from ansible_collections.kbypass.xdp.plugins.module_utils._common import (
    default_pin_dir,
    ifname_error,
    netns_error,
)


class ProbeError(Exception):
    pass


def family_of(address):
    return 'IPv6' if ipaddress.ip_address(address).version == 6 else 'IPv4'


# ---------------------------------------------------------------------------------------
# counters
# ---------------------------------------------------------------------------------------
def read_steer(pin_dir):
    """Snapshot of the steering counters, or None when they are not pinned."""
    path = os.path.join(pin_dir, 'steer_stats')
    if not os.path.exists(path):
        return None
    try:
        return _bpf.read_steer_stats(pin_dir)
    except OSError as exc:  # BpfError is an OSError
        raise ProbeError('cannot read %s: %s' % (path, exc))


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, TypeError, ValueError):
        return False


def read_forwarder(path, since=None, wait=0.0):
    """Read the forwarder's stats file; with ``since``, wait (bounded) for a rewrite after it.

    Returns the parsed object (plus ``_fresh``) or None when the file does not exist.
    """
    if not path:
        return None
    deadline = time.time() + (wait if since is not None else 0)
    while True:
        try:
            mtime = os.stat(path).st_mtime
            with open(path) as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return None
        except ValueError:
            data, mtime = None, 0  # caught mid-rename on a non-atomic writer: retry
        if data is not None:
            fresh = since is None or mtime > since
            alive = data.get('running', True) and _pid_alive(data.get('pid'))
            if fresh or not alive or time.time() >= deadline:
                data['_fresh'] = bool(fresh)
                data['_alive'] = bool(alive)
                return data
        elif time.time() >= deadline:
            return None
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------
# matching traffic
# ---------------------------------------------------------------------------------------
def _packet_sockets(netns, ifname):
    """Number of packet sockets bound to ``ifname`` in ``netns`` (tcpdump opens one)."""
    ifindex = _netns.ifindex(netns, ifname)
    if ifindex is None:
        return 0
    rows = _netns.proc_net(netns, 'packet')
    return sum(1 for row in rows if len(row.split()) > 4 and row.split()[4] == str(ifindex))


class _Background(threading.Thread):
    """module.run_command in a thread, so tcpdump captures while the generator sends."""

    def __init__(self, module, argv):
        super(_Background, self).__init__()
        self.daemon = True
        self.module = module
        self.argv = argv
        self.result = (None, '', '')

    def run(self):
        self.result = self.module.run_command(self.argv)


def start_tcpdump(module, p, family):
    if not p['tcpdump_count']:
        return None
    flt = '%s and udp src port %d' % ('ip6' if family == 'IPv6' else 'ip', p['port'])
    argv = _netns.argv_in(['timeout', str(p['tcpdump_timeout']), 'tcpdump', '-n', '-l', '-q',
                           '-c', str(p['tcpdump_count']), '-i', p['peer_ifname'], flt],
                          p['peer_netns'])
    before = _packet_sockets(p['peer_netns'], p['peer_ifname'])
    worker = _Background(module, argv)
    worker.start()
    # wait (bounded) until tcpdump's packet socket is bound to the interface
    deadline = time.time() + 5
    while time.time() < deadline and worker.is_alive():
        if _packet_sockets(p['peer_netns'], p['peer_ifname']) > before:
            break
        time.sleep(0.02)
    time.sleep(0.2)  # the filter is attached right after the bind
    return {'worker': worker, 'filter': flt}


def finish_tcpdump(p, cap):
    if cap is None:
        return None
    worker = cap['worker']
    worker.join(p['tcpdump_timeout'] + 5)  # `timeout` inside bounds tcpdump itself
    rc, out, err = worker.result
    lines = [ln for ln in (out or '').splitlines() if ln.strip()]
    return {'filter': cap['filter'], 'wanted': p['tcpdump_count'], 'captured': len(lines),
            'rc': rc, 'sample': lines[:3], 'stderr': (err or '').strip().splitlines()[-3:]}


def run_generator(module, p, address):
    argv = [p['generator'], '--dst', address, '--dport', str(p['port']),
            '--count', str(p['count']), '--rate', str(p['rate']), '--size', str(p['size']),
            '--engine', 'socket', '--replies', '--reply-timeout', str(p['reply_timeout_ms']),
            '--json', '--series-interval', str(p['series_interval_ms'])]
    if p['peer_netns']:
        argv[1:1] = ['--netns', p['peer_netns']]
    # bounded twice: by count and rate inside the generator, and by this timeout
    limit = 10 + p['count'] / max(p['rate'], 1) * 3 + p['reply_timeout_ms'] / 1000.0
    argv = ['timeout', str(int(limit))] + argv
    rc, out, err = module.run_command(argv)
    result = None
    for line in reversed(out.strip().splitlines()):
        try:
            result = json.loads(line)
            break
        except ValueError:
            continue
    if result is None:
        raise ProbeError('kbypass-gen to %s failed (rc=%s): %s' % (address, rc, (err or out).strip()))
    result['rc'] = rc
    return result


def probe_matching(module, p, observation):
    bursts = []
    steer = read_steer(p['pin_dir'])
    fwd = read_forwarder(p['forwarder_stats_file'], since=time.time(), wait=p['stats_wait'])
    for address in p['dut_addresses']:
        family = family_of(address)
        cap = start_tcpdump(module, p, family)
        try:
            gen = run_generator(module, p, address)
        finally:
            capture = finish_tcpdump(p, cap)
        if capture:
            observation['tcpdump'].append(capture)
        steer_after = read_steer(p['pin_dir'])
        fwd_after = read_forwarder(p['forwarder_stats_file'], since=time.time(),
                                   wait=p['stats_wait'])
        bursts.append({'family': family, 'address': address, 'port': p['port'],
                       'requested': p['count'], 'rate': p['rate'], 'generator': gen,
                       'steer_before': steer, 'steer_after': steer_after,
                       'forwarder_before': fwd, 'forwarder_after': fwd_after})
        steer, fwd = steer_after, fwd_after
    return bursts


# ---------------------------------------------------------------------------------------
# non-matching traffic
# ---------------------------------------------------------------------------------------
def neighbour_flush(module, p, address):
    """Flush the peer's entry for ``address``; True when there was one to flush."""
    if neighbour_show(module, p, address)['state'] == 'NONE':
        return False
    _netns.run(module, ['ip', 'neigh', 'flush', 'to', address, 'dev', p['peer_ifname']],
               p['peer_netns'])
    return True


def neighbour_show(module, p, address):
    entries = _netns.run_json(module, ['ip', '-j', 'neigh', 'show', 'to', address,
                                       'dev', p['peer_ifname']], p['peer_netns'])[0] or []
    entry = entries[0] if entries else {}
    state = entry.get('state') or ['NONE']
    state = '/'.join(state) if isinstance(state, list) else str(state)
    lladdr = entry.get('lladdr')
    return {'address': address, 'state': state, 'lladdr': lladdr,
            'resolved': bool(lladdr) and not any(s in state for s in ('FAILED', 'INCOMPLETE'))}


_PING_RE = re.compile(r'(\d+) packets transmitted, (\d+) (?:packets )?received')


def ping(module, p, address):
    rc, out, err = _netns.run(module, ['ping', '-n', '-q', '-c', str(p['ping_count']),
                                       '-i', '0.2', '-W', '1', '-w', str(p['ping_count'] + 3),
                                       address], p['peer_netns'])
    match = _PING_RE.search(out)
    sent, received = (int(match.group(1)), int(match.group(2))) if match else (p['ping_count'], 0)
    return {'address': address, 'sent': sent, 'received': received, 'rc': rc}


def udp_other_port(p, address):
    fam = socket.AF_INET6 if family_of(address) == 'IPv6' else socket.AF_INET
    listener = _netns.socket(p['dut_netns'], fam, socket.SOCK_DGRAM)
    sender = _netns.socket(p['peer_netns'], fam, socket.SOCK_DGRAM)
    received = 0
    try:
        listener.bind((address, p['other_port']))
        listener.setblocking(False)
        for i in range(p['nonmatching_count']):
            sender.sendto(b'kbypass-verify %d' % i, (address, p['other_port']))
            time.sleep(0.002)
        deadline = time.time() + 2
        while received < p['nonmatching_count'] and time.time() < deadline:
            if select.select([listener], [], [], 0.1)[0]:
                listener.recv(2048)
                received += 1
    finally:
        listener.close()
        sender.close()
    return {'address': address, 'port': p['other_port'], 'sent': p['nonmatching_count'],
            'received': received}


def tcp_connect(p, address):
    fam = socket.AF_INET6 if family_of(address) == 'IPv6' else socket.AF_INET
    sock = _netns.socket(p['peer_netns'], fam, socket.SOCK_STREAM)
    sock.settimeout(2.0)
    try:
        sock.connect((address, p['port']))
        outcome = 'connected'
    except ConnectionRefusedError:
        outcome = 'refused'
    except socket.timeout:
        outcome = 'timeout'
    except OSError as exc:
        outcome = 'error: %s' % exc
    finally:
        sock.close()
    return {'address': address, 'port': p['port'], 'outcome': outcome}


def probe_nonmatching(module, p):
    steer = read_steer(p['pin_dir'])
    fwd = read_forwarder(p['forwarder_stats_file'], since=time.time(), wait=p['stats_wait'])
    res = {'icmp': [], 'neighbour': [], 'udp': [], 'tcp': []}
    for address in p['dut_addresses']:
        flushed = neighbour_flush(module, p, address)
        res['icmp'].append(ping(module, p, address))
        res['neighbour'].append(dict(neighbour_show(module, p, address), flushed=flushed))
        res['udp'].append(udp_other_port(p, address))
        res['tcp'].append(tcp_connect(p, address))
    res['steer_before'] = steer
    res['steer_after'] = read_steer(p['pin_dir'])
    res['forwarder_before'] = fwd
    res['forwarder_after'] = read_forwarder(p['forwarder_stats_file'], since=time.time(),
                                            wait=p['stats_wait'])
    return res


# ---------------------------------------------------------------------------------------
# observation (bpftool, ip -j)
# ---------------------------------------------------------------------------------------
def observe(module, p):
    obs = {'tcpdump': [], 'program': None, 'bpftool_net': None, 'xsks_map': None, 'errors': []}
    net, err = _netns.run_json(module, ['bpftool', '-j', 'net', 'show', 'dev', p['dut_ifname']],
                               p['dut_netns'])
    if net is None:
        obs['errors'].append('bpftool net show: %s' % err)
    else:
        if isinstance(net, list):
            net = net[0] if net else {}
        obs['bpftool_net'] = net
        xdp = [x for x in net.get('xdp') or [] if x.get('devname') in (None, p['dut_ifname'])]
        if xdp:
            prog = {'id': xdp[0].get('id'), 'mode': xdp[0].get('mode')}
            info, err = _netns.run_json(module, ['bpftool', '-j', 'prog', 'show', 'id', str(prog['id'])])
            if info:
                prog.update(name=info.get('name'), tag=info.get('tag'), type=info.get('type'),
                            map_ids=info.get('map_ids'))
            else:
                obs['errors'].append('bpftool prog show: %s' % err)
            obs['program'] = prog
    path = os.path.join(p['pin_dir'], 'xsks_map')
    if os.path.exists(path):
        info, err = _netns.run_json(module, ['bpftool', '-j', 'map', 'show', 'pinned', path])
        if info:
            obs['xsks_map'] = dict((k, info.get(k)) for k in ('id', 'type', 'name', 'max_entries'))
        else:
            obs['errors'].append('bpftool map show: %s' % err)
    else:
        obs['errors'].append('%s is not pinned' % path)
    return obs


def link_info(module, netns, ifname):
    info = _netns.run_json(module, ['ip', '-j', 'addr', 'show', 'dev', ifname], netns)[0]
    if not info:
        return {}
    info = info[0]
    return {'mac': info.get('address'), 'mtu': info.get('mtu'),
            'addresses': ['%s/%s' % (a.get('local'), a.get('prefixlen'))
                          for a in info.get('addr_info') or []
                          if a.get('scope') == 'global']}


# ---------------------------------------------------------------------------------------
def validate(p):
    """Return a list of human messages for bad input (pure)."""
    errors = []
    for key in ('dut_ifname', 'peer_ifname'):
        msg = ifname_error(p.get(key))
        if msg:
            errors.append('%s: %s' % (key, msg))
    for key in ('dut_netns', 'peer_netns'):
        msg = netns_error(p.get(key))
        if msg:
            errors.append('%s: %s' % (key, msg))
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
    if (p.get('tcpdump_count') or 0) > (p.get('count') or 0):
        errors.append('tcpdump_count (%s) cannot exceed count (%s)'
                      % (p.get('tcpdump_count'), p.get('count')))
    return errors


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
