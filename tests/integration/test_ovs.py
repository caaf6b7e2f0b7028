"""Integration tests of the Open vSwitch modules against real daemons and veths.

What molecule/ovs does not cover: check and diff mode on a real OVSDB, the refusal of an
interface that carries our steering program, and stopping the daemons twice. Names use
the kbovsi prefix; OVS runs only for this module's tests and is stopped in the finalizer
(its PMD thread spins a core). Skipped where Open vSwitch is not installed or already runs.
"""
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, remove_netns, run_module, sh

NS, HOST_IF, PEER_IF, BR = 'kbovsi', 'kbovsi0', 'kbovsi1', 'kbovsibr0'
PORT = {'name': HOST_IF, 'options': {'xdp-mode': 'native'}}

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root (netns, XDP, OVS)'),
    pytest.mark.skipif(not shutil.which('ovs-vsctl'), reason='Open vSwitch is not installed'),
]


def _ovs_runs():
    return subprocess.run(['ovs-vsctl', '--timeout=1', 'show'], capture_output=True,
                          check=False).returncode == 0


@pytest.fixture(scope='module')
def ovs(tmp_path_factory):
    if _ovs_runs():
        pytest.skip('Open vSwitch runs already (not ours to stop)')
    state_dir = str(tmp_path_factory.mktemp('ovs-state'))
    remove_netns(NS)
    sh(['ip', 'netns', 'add', NS])
    sh(['ip', 'link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', PEER_IF, 'netns', NS])
    sh(['ip', 'link', 'set', HOST_IF, 'up'])
    sh(['ip', '-n', NS, 'link', 'set', PEER_IF, 'up'])
    try:
        started = run_module('ovs_service', {'state': 'started', 'state_dir': state_dir})
        assert started['changed'] and started['running'] and started['ours'], started
        yield state_dir
    finally:
        run_module('ovs_bridge', {'name': BR, 'state': 'absent',
                                  'vswitch_other_config': {'pmd-cpu-mask': ''}})
        run_module('ovs_service', {'state': 'stopped', 'state_dir': state_dir})
        sh(['ip', 'link', 'del', HOST_IF], check=False)
        remove_netns(NS)


def test_check_mode_plans_and_changes_nothing(ovs):
    args = {'name': BR, 'ports': [PORT], 'flows': ['priority=1,actions=drop'],
            'vswitch_other_config': {'pmd-cpu-mask': '0x1'}}
    out = run_module('ovs_bridge', args, check=True, diff=True)
    assert out['changed'] and out['commands'][0] == ['add-br', BR], out
    assert out['diff']['before'] == {}
    assert out['diff']['after']['ports'][HOST_IF]['options'] == {'xdp-mode': 'native'}
    assert out['diff']['after']['vswitch_other_config'] == {'pmd-cpu-mask': '0x1'}
    assert sh(['ovs-vsctl', 'br-exists', BR], check=False).returncode == 2  # not created


def test_apply_then_nothing_differs_then_remove(ovs):
    args = {'name': BR, 'ports': [PORT], 'flows': ['priority=1,actions=drop'],
            'vswitch_other_config': {'pmd-cpu-mask': '0x1'}}
    first = run_module('ovs_bridge', args)
    assert first['changed'], first
    assert first['ports'][HOST_IF]['datapath']['config']['xdp-mode-in-use'] == 'native'
    again = run_module('ovs_bridge', args, check=True)
    assert not again['changed'] and again['commands'] == [] and again['flows_diff'] == []
    gone = run_module('ovs_bridge', {'name': BR, 'state': 'absent',
                                     'vswitch_other_config': {'pmd-cpu-mask': ''}})
    assert gone['changed'] and gone['commands'][0] == ['del-br', BR]
    assert 'pmd-cpu-mask' not in sh(['ovs-vsctl', 'get', 'Open_vSwitch', '.',
                                     'other_config']).stdout
    # no XDP program left on the former port
    assert 'xdp' not in sh(['ip', '-d', 'link', 'show', 'dev', HOST_IF]).stdout.split()


def test_refuses_the_interface_carrying_our_steering_program(ovs, tmp_path):
    arch = subprocess.run(['gcc', '-print-multiarch'], capture_output=True, text=True,
                          check=False).stdout.strip()
    obj = str(tmp_path / 'xdp_steer.o')
    sh(['clang', '-O2', '-g', '-target', 'bpf'] + (['-I/usr/include/%s' % arch] if arch else [])
       + ['-c', os.path.join(ROOT, 'files', 'bpf', 'xdp_steer.c'), '-o', obj], timeout=120)
    sh(['ip', 'link', 'set', 'dev', HOST_IF, 'xdpdrv', 'obj', obj, 'sec', 'xdp.frags'])
    try:
        out = run_module('ovs_bridge', {'name': BR, 'ports': [PORT]})
    finally:
        sh(['ip', 'link', 'set', 'dev', HOST_IF, 'xdpdrv', 'off'])
    assert out.get('failed'), out
    assert 'carries the kbypass steering program' in out['msg']
    assert sh(['ovs-vsctl', 'br-exists', BR], check=False).returncode == 2  # nothing changed


def test_stop_is_idempotent_and_leaves_nothing(ovs):
    stopped = run_module('ovs_service', {'state': 'stopped', 'state_dir': ovs})
    assert stopped['changed'] and not stopped['running']
    assert subprocess.run(['pgrep', '-f', 'ovs-vswitchd|ovsdb-server'],
                          check=False).returncode == 1
    assert not os.path.exists(os.path.join(ovs, 'service.json'))
    again = run_module('ovs_service', {'state': 'stopped', 'state_dir': ovs})
    assert not again['changed']
