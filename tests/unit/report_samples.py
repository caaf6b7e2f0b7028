"""Sample traffic_probe measurements shared by the _report and verify_report unit tests."""


def steer(seen=0, matched=0, redirected=0, missed=0, passed=0):
    vals = dict(seen=seen, matched=matched, redirected=redirected, redirect_missed=missed,
                passed=passed)
    return dict((k, {'packets': v, 'bytes': v * 106}) for k, v in vals.items())


def fwd(rx, tx, pid=100):
    return {'pid': pid, 'running': True, 'mode': 'echo', 'bind_mode': 'copy',
            'rx_packets': rx, 'tx_packets': tx, 'rx_bytes': rx * 64, 'tx_bytes': tx * 64}


def gen(sent=2000, received=2000):
    return {'sent': sent, 'received': received, 'lost': sent - received, 'tx_pps': 9999.5,
            'rx_pps': 9999.1, 'duration_s': 0.2, 'rtt_us': {'p50': 40, 'p90': 55, 'p99': 80,
                                                            'max': 120},
            'series': [{'t': 0.1, 'tx': 1000, 'rx': 1000}, {'t': 0.2, 'tx': 1000, 'rx': 1000}]}


def good_data():
    """What traffic_probe returns for a healthy echo path (IPv4 then IPv6)."""
    s0 = steer(seen=10, passed=10)
    s1 = steer(seen=2015, matched=2000, redirected=2000, passed=15)
    s2 = steer(seen=4020, matched=4000, redirected=4000, passed=20)
    s3 = steer(seen=4120, matched=4000, redirected=4000, passed=120)
    f0, f1, f2 = fwd(0, 0), fwd(2000, 2000), fwd(4000, 4000)
    return {
        'timestamp': '2026-01-01T00:00:00Z',
        'topology': {'dut_netns': 'kbmol1', 'dut_ifname': 'kbmolv0',
                     'dut_addresses': ['198.19.0.10', '2001:2:0:1::10'],
                     'peer_netns': 'kbmol2', 'peer_ifname': 'kbmolv1',
                     'pin_dir': '/sys/fs/bpf/kbypass/kbmol1/kbmolv0'},
        'forwarder': {'mode': 'echo', 'bind_mode': 'copy', 'pid': 100, 'queues': [0]},
        'matching': [
            {'family': 'IPv4', 'address': '198.19.0.10', 'port': 4242, 'requested': 2000,
             'generator': gen(), 'steer_before': s0, 'steer_after': s1,
             'forwarder_before': f0, 'forwarder_after': f1},
            {'family': 'IPv6', 'address': '2001:2:0:1::10', 'port': 4242, 'requested': 2000,
             'generator': gen(), 'steer_before': s1, 'steer_after': s2,
             'forwarder_before': f1, 'forwarder_after': f2},
        ],
        'nonmatching': {
            'icmp': [{'address': '198.19.0.10', 'sent': 3, 'received': 3}],
            'neighbour': [{'address': '198.19.0.10', 'state': 'REACHABLE',
                           'lladdr': '02:00:00:00:00:01', 'resolved': True}],
            'udp': [{'address': '198.19.0.10', 'port': 4243, 'sent': 20, 'received': 20}],
            'tcp': [{'address': '198.19.0.10', 'port': 4242, 'outcome': 'refused'}],
            'steer_before': s2, 'steer_after': s3, 'forwarder_before': f2,
            'forwarder_after': fwd(4000, 4000),
        },
        'observation': {
            'bpftool_net': {'xdp': [{'devname': 'kbmolv0', 'id': 42, 'mode': 'driver'}]},
            'program': {'id': 42, 'name': 'xdp_steer', 'tag': 'abcd', 'mode': 'driver'},
            'xsks_map': {'id': 7, 'type': 'xskmap', 'max_entries': 64},
            'tcpdump': [{'filter': 'ip and udp src port 4242', 'wanted': 100, 'captured': 100}],
        },
    }


def kernel_view():
    """kbypass.xdp.kernel_view's ``view``, shaped as on a real bed (ip -j -s link, bpftool -j)."""
    return {
        'namespaces': {
            'init_net': {'links': [], 'xdp': [{'xdp': [], 'tc': []}], 'ethtool_stats': {}},
            'ns1': {
                'links': [
                    {'ifname': 'lo', 'link_type': 'loopback', 'operstate': 'UNKNOWN', 'mtu': 65536},
                    {'ifname': 'veth0', 'link_type': 'ether', 'operstate': 'UP', 'mtu': 1500,
                     'stats64': {'rx': {'packets': 4031, 'dropped': 0},
                                 'tx': {'packets': 4012, 'dropped': 1}}},
                ],
                'xdp': [{'xdp': [{'devname': 'veth0', 'ifindex': 2, 'mode': 'driver', 'id': 42}],
                         'tc': [], 'flow_dissector': []}],
                'ethtool_stats': {'veth0': {'peer_ifindex': 3, 'rx_queue_0_xdp_packets': 4031,
                                            'rx_queue_0_xdp_drops': 0}},
            },
        },
        'programs': [{'id': 42, 'type': 'xdp', 'name': 'xdp_steer', 'tag': 'abcd',
                      'loaded_at': 1796300000, 'bytes_xlated': 1120, 'bytes_jited': 700,
                      'map_ids': [7, 8, 9]}],
        'maps': [{'id': 7, 'type': 'xskmap', 'name': 'xsks_map', 'bytes_key': 4,
                  'bytes_value': 4, 'max_entries': 64},
                 {'id': 8, 'type': 'percpu_array', 'name': 'steer_stats', 'bytes_key': 4,
                  'bytes_value': 8, 'max_entries': 4}],
        'forwarders': {'echo-ns1-veth0': {'pid': 1234, 'mode': 'echo', 'rx_packets': 4000,
                                          'tx_packets': 4000, 'invalid': 0,
                                          'xdp_stats': {'rx_dropped': 0, 'rx_ring_full': 3}}},
        'xsk_registrations': [{'instance': 'echo-ns1-veth0', 'iface': 'veth0', 'netns': 'ns1',
                               'queues': [0, 1], 'running': True, 'bind_mode': 'copy'}],
        'errors': [{'netns': 'ns2', 'command': 'bpftool net show', 'error': 'No such file'}],
    }
