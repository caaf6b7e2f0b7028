"""ethtool parsers on output recorded from ethtool 6.1 (see tests/unit/fixtures/ethtool)."""
import json
import os

from ansible_collections.kbypass.xdp.plugins.module_utils import _ethtool as e

FIX = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'ethtool')


def _read(name):
    with open(os.path.join(FIX, name)) as f:
        return f.read()


def test_features_json_and_text_agree():
    js = e.parse_features_json(_read('veth_features.json'))
    tx = e.parse_features_text(_read('veth_features.txt'))
    assert set(js) == set(tx)
    for name in js:
        assert js[name]['active'] == tx[name]['active'], name
        assert js[name]['fixed'] == tx[name]['fixed'], name
    assert js['tx-checksum-ipv4']['fixed'] is True
    assert js['large-receive-offload'] == {'active': False, 'fixed': True, 'requested': False}
    assert js['tx-checksumming']['fixed'] is False  # null in JSON -> not fixed


def test_features_text_requested_marker():
    out = e.parse_features_text('Features for x:\ntx-checksum-ipv4: off [requested on]\n'
                                'rx-gro-hw: off [fixed]\n')
    assert out['tx-checksum-ipv4'] == {'active': False, 'fixed': False, 'requested': True}
    assert out['rx-gro-hw']['fixed'] is True


def test_channels_veth_and_virtio():
    veth = e.parse_channels(_read('veth_channels.txt'))
    assert veth['max'] == {'rx': 2, 'tx': 2, 'other': None, 'combined': None}
    assert veth['current'] == {'rx': 1, 'tx': 1, 'other': None, 'combined': None}
    virtio = e.parse_channels(_read('virtio_channels.txt'))
    assert virtio['max']['combined'] == 1 and virtio['max']['rx'] is None


def test_rings_virtio():
    r = e.parse_rings(_read('virtio_rings.txt'))
    assert r['max'] == {'rx': 256, 'rx-mini': None, 'rx-jumbo': None, 'tx': 256}
    assert r['current']['rx'] == 256
    assert r['extra']['tx_push'] is False and r['extra']['rx_buf_len'] is None


def test_coalesce_virtio():
    c = e.parse_coalesce(_read('virtio_coalesce.txt'))
    assert c['adaptive-rx'] is False and c['adaptive-tx'] is None
    assert c['rx-frames'] == 1 and c['rx-usecs-irq'] is None
    assert 'cqe-rx' in c


def test_driver_info():
    v = e.parse_driver_info(_read('veth_info.txt'))
    assert v['driver'] == 'veth' and v['bus_info'] is None and v['firmware_version'] is None
    n = e.parse_driver_info(_read('virtio_info.txt'))
    assert n['driver'] == 'virtio_net' and n['bus_info'] == '0000:00:03.0'


def test_stats_and_settings():
    s = e.parse_stats(_read('veth_stats.txt'))
    assert 'rx_queue_0_xdp_packets' in s and all(isinstance(v, int) for v in s.values())
    st = e.parse_settings(_read('veth_settings.txt'))
    assert st['speed_mbps'] == 10000 and st['link_detected'] is True
    assert e.parse_settings('Settings for x:\n\tSpeed: Unknown!\n')['speed_mbps'] is None


def test_ntuple_rules_inverted_masks():
    rules = e.parse_ntuple_rules(_read('mlx5_ntuple.txt'))
    assert rules[0] == {'loc': 1022, 'flow_type': 'udp4', 'src_ip': None,
                        'dst_ip': '198.18.0.10', 'src_port': None, 'dst_port': 4242,
                        'queue': 3, 'action': 'Direct to queue 3'}
    assert rules[1]['flow_type'] == 'tcp4' and rules[1]['dst_ip'] is None
    assert e.rule_key(rules[1]) == ('tcp4', None, None, None, 5201, 1)


def test_rule_args_and_added_id():
    args = e.rule_add_args({'flow_type': 'udp4', 'dst_ip': '198.18.0.10', 'dst_port': 4242,
                            'queue': 1, 'loc': None})
    assert args == ['flow-type', 'udp4', 'dst-ip', '198.18.0.10', 'dst-port', '4242',
                    'action', '1']
    assert e.parse_added_rule_id('Added rule with ID 1021\n') == 1021
    assert e.parse_added_rule_id('') is None


def test_canonical_feature():
    assert e.canonical_feature('gro') == 'generic-receive-offload'
    assert e.canonical_feature('rx-udp-gro-forwarding') == 'rx-udp-gro-forwarding'
    assert json.loads(json.dumps(e.FEATURE_ALIASES))  # plain data
