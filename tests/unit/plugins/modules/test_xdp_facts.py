"""xdp_facts: pure helpers on real `bpftool -j` output shapes (recorded with bpftool 7.1)."""
from __future__ import annotations

import json

import pytest

from ansible_collections.kbypass.xdp.plugins.modules import xdp_facts as m
from module_main import run_main  # tests/unit/module_main.py

NET_SHOW = json.loads('[{"xdp":[{"devname":"kbttv0","ifindex":2,"mode":"driver","id":101}],'
                      '"tc":[],"flow_dissector":[]}]')
PROG = json.loads('{"id":101,"type":"xdp","name":"xdp_steer","tag":"548a968b70885879",'
                  '"gpl_compatible":true,"loaded_at":1795625662,"uid":0,"bytes_xlated":56,'
                  '"jited":true,"bytes_jited":45,"bytes_memlock":4096,"map_ids":[25],'
                  '"btf_id":22}')
MAP = json.loads('{"id":25,"type":"xskmap","name":"xsks_map","flags":0,"bytes_key":4,'
                 '"bytes_value":4,"max_entries":64,"bytes_memlock":816,"frozen":0}')


def test_xdp_attachments_filters_by_device():
    assert m.xdp_attachments(NET_SHOW, 'kbttv0') == [{'mode': 'driver', 'id': 101}]
    assert m.xdp_attachments(NET_SHOW, 'other') == []
    assert m.xdp_attachments(None, 'kbttv0') == []


def test_describe_program_marks_xskmap_unreadable():
    d = m.describe_program(PROG, [MAP], 'driver')
    assert d['name'] == 'xdp_steer' and d['tag'] == '548a968b70885879' and d['jited']
    assert d['maps'][0]['type'] == 'xskmap' and d['maps'][0]['entries_readable'] is False
    assert 'redirected' in d['maps'][0]['note']
    assert d['dispatcher'] is False
    assert m.describe_program(dict(PROG, name='xdp_dispatcher'), [], 'driver')['dispatcher']


def test_normalize_interfaces_pin_dir():
    got = m.normalize_interfaces(['veth0', {'name': 'v1', 'netns': 'n2', 'pin_dir': '/x'}],
                                 default_netns='ns1')
    assert got[0]['pin_dir'] == '/sys/fs/bpf/kbypass/ns1/veth0'
    assert got[1] == {'name': 'v1', 'netns': 'n2', 'pin_dir': '/x'}
    assert m.normalize_interfaces(['eth0'])[0]['pin_dir'] == '/sys/fs/bpf/kbypass/init_net/eth0'
    with pytest.raises(ValueError):
        m.normalize_interfaces([{'name': 'a', 'mode': 'x'}])


def test_main_bad_input(monkeypatch):
    monkeypatch.setattr(m, 'Inspector', lambda *a: pytest.fail('inspected on bad input'))
    res = run_main(m, {'interfaces': ['bad name']})
    assert res['failed'] and 'whitespace' in res['msg']
