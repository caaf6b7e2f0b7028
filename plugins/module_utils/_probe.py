# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The measurements of kbypass.xdp.traffic_probe: bounded probes of an XDP/AF_XDP path.

Each probe takes the module (for ``run_command``) and ``p``, the module's checked
parameters with ``pin_dir`` filled in. Every loop is bounded in packets and in time.
Counters are snapshots (steering program, forwarder stats file); comparing them is the
job of ``_report`` on the controller.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import select
import socket
import threading
import time

from ansible_collections.kbypass.xdp.plugins.module_utils import _bpf, _netns, _supervise


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
            alive = data.get('running', True) and _supervise.is_alive(data.get('pid'))
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
