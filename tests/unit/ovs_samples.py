"""A kbypass.xdp.ovs_probe result whose counters agree (unit tests change one part)."""


def probe(**kw):
    data = {
        'bridge': 'br', 'afxdp_port': 'v0', 'afxdp_ofport': 1, 'far_port': 'v2',
        'far_ofport': 2, 'xdp_mode': 'native', 'count': 100, 'slack': 10,
        'far_mac': 'aa:bb:cc:dd:ee:ff',
        'dpctl': {'v0': {'type': 'afxdp', 'config': {'xdp-mode-in-use': 'native'}}},
        'ports_before': {'1': {'rx_packets': 5, 'tx_packets': 5},
                         '2': {'rx_packets': 5, 'tx_packets': 5}},
        'ports_after': {'1': {'rx_packets': 106, 'tx_packets': 105},
                        '2': {'rx_packets': 105, 'tx_packets': 106}},
        'pmd_before': {'pmd thread 1': {'packets_received': 10}},
        'pmd_after': {'pmd thread 1': {'packets_received': 211}},
        'generator': {'sent': 100, 'received': 100, 'lost': 0, 'rtt_us': {'p50': 50.0}},
        'echo': {'packets': 100, 'echoed': 100},
        'neighbour': {'address': '1.2.3.4', 'state': 'REACHABLE', 'lladdr': 'aa:bb:cc:dd:ee:ff',
                      'resolved': True},
        'ping': {'sent': 3, 'received': 3},
    }
    data.update(kw)
    return data
