"""Unit tests for the OVS modules' pure parts and verify_report's OVS section."""
import json


from ansible_collections.kbypass.xdp.plugins.module_utils import _ovs
from ansible_collections.kbypass.xdp.plugins.modules import ovs_bridge
from ansible_collections.kbypass.xdp.plugins.modules import verify_report as vr
from module_main import run_main  # tests/unit/module_main.py
from report_samples import good_data  # tests/unit/report_samples.py
from ovs_samples import probe  # tests/unit/ovs_samples.py


def test_ovs_only_report(tmp_path):
    out = run_main(vr, {'host': 'h', 'data': {}, 'ovs': probe(),
                        'report_dir': str(tmp_path), 'plot': False})
    assert out['ok'] and out['verdict']['ovs']['ok']
    md = (tmp_path / 'verify-h.md').read_text()
    assert md.startswith('# kbypass.xdp verify — h\n\n**Verdict: PASS**')
    assert '## Open vSwitch (userspace datapath, afxdp port)' in md
    assert '## Matching traffic' not in md
    assert json.loads((tmp_path / 'verify-h.json').read_text())['data']['ovs']['bridge'] == 'br'
    assert out['summary'][-1].startswith('h: OVS PASS')


def test_ovs_failure_fails_the_whole_report(tmp_path):
    out = run_main(vr, {'host': 'h', 'data': good_data(), 'plot': False,
                        'ovs': probe(ping={'sent': 3, 'received': 0}),
                        'report_dir': str(tmp_path)})
    assert not out['ok']
    assert out['msg'] == 'OVS: ping through the bridge: 0 of 3 replies'
    md = (tmp_path / 'verify-h.md').read_text()
    assert '**Verdict: FAIL**' in md and '## Matching traffic' in md and '**OVS: FAIL**' in md


def port(**kw):
    base = {'type': 'afxdp', 'options': {}, 'other_config': {}, 'ofport_request': None,
            'ofport': 1, 'error': None}
    base.update(kw)
    return base


def test_settled_waits_for_the_datapath_to_show_the_asked_mode():
    want = _ovs.desired_port({'type': 'afxdp', 'options': {'xdp-mode': 'generic'}})
    old = {'type': 'afxdp', 'config': {'xdp-mode': 'native', 'xdp-mode-in-use': 'native'}}
    new = {'type': 'afxdp', 'config': {'xdp-mode': 'generic', 'xdp-mode-in-use': 'generic'}}
    assert not ovs_bridge.settled(port(), want, old)
    assert not ovs_bridge.settled(port(), want, None)
    assert ovs_bridge.settled(port(), want, new)
    assert ovs_bridge.settled(port(error='refused', ofport=-1), want, None)
    system = _ovs.desired_port({'type': 'system'})
    assert ovs_bridge.settled(port(type='system'), system, None)
    assert not ovs_bridge.settled(port(type='system', ofport=None), system, None)


def test_refused_names_the_port_and_the_forced_mode():
    state = {'ports': {'v0': port(error='could not add network device v0 to ofproto',
                                  ofport=-1), 'v2': port()}}
    ports = {'v0': _ovs.desired_port({'type': 'afxdp',
                                      'options': {'xdp-mode': 'native-with-zerocopy'}}),
             'v2': _ovs.desired_port({'type': 'afxdp'})}
    msgs = ovs_bridge.refused(state, ports)
    assert len(msgs) == 1
    assert msgs[0].startswith('Open vSwitch refused port v0: could not add network device')
    assert 'xdp-mode native-with-zerocopy was forced' in msgs[0]


def run_module(module, args, monkeypatch, bins=()):
    """Run ``module.main()`` with only ``bins`` found in PATH."""
    from ansible.module_utils import basic
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path',
                        lambda self, name, *a, **k: '/usr/bin/' + name if name in bins else None)
    return run_main(module, args)


def test_missing_open_vswitch_is_named(monkeypatch, tmp_path):
    from ansible_collections.kbypass.xdp.plugins.modules import ovs_service
    out = run_module(ovs_service, {'state': 'started', 'state_dir': str(tmp_path),
                                   'run_dir': str(tmp_path)}, monkeypatch)
    assert out['failed'] and out['msg'].startswith('Open vSwitch is not installed here')
    out = run_module(ovs_bridge, {'name': 'br'}, monkeypatch)
    assert out['failed'] and 'openvswitch-switch' in out['msg']
    # removing from a host without Open vSwitch has nothing to do
    out = run_module(ovs_bridge, {'name': 'br', 'state': 'absent'}, monkeypatch)
    assert not out.get('failed') and out['changed'] is False


def test_stopping_daemons_someone_else_started_leaves_them(monkeypatch, tmp_path):
    from ansible_collections.kbypass.xdp.plugins.modules import ovs_service
    monkeypatch.setattr(ovs_service.Service, 'running', lambda self: True)
    out = run_module(ovs_service, {'state': 'stopped', 'state_dir': str(tmp_path)},
                     monkeypatch, bins=('ovs-vsctl',))
    assert out['changed'] is False and out['running'] is True and out['ours'] is False
    assert 'not started by kbypass.xdp' in json.dumps(out['warnings'])
