# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every inventory we ship parses with ``ansible-inventory --list`` and says what it claims.

ansible-inventory exits 0 even for a directory it cannot parse (it only warns), so the
tests make unparsed sources fatal and also check the resulting groups and variables.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.kbypass.xdp.plugins.modules import netns_veth

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INVENTORIES = ['inventory/local', 'inventory/examples/vm', 'inventory/examples/baremetal']


def inventory(path):
    env = dict(os.environ)
    env.update({
        'ANSIBLE_CONFIG': os.path.join(ROOT, 'ansible.cfg'),
        'ANSIBLE_INVENTORY_UNPARSED_FAILED': 'true',
        'ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED': 'true',
        'ANSIBLE_NOCOLOR': '1',
    })
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-inventory'),
           '-i', os.path.join(ROOT, path), '--list']
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert '[WARNING]' not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def hostvars(inv, group='kbypass_hosts'):
    hosts = inv[group]['hosts']
    assert hosts, 'group %s is empty' % group
    return [inv['_meta']['hostvars'][h] for h in hosts]


@pytest.mark.parametrize('path', INVENTORIES)
def test_inventory_parses_with_kbypass_hosts(path):
    inv = inventory(path)
    assert 'kbypass_hosts' in inv['all']['children']
    assert hostvars(inv)


def test_missing_inventory_is_detected():
    """The check above can fail: a directory that is not an inventory is rejected."""
    with pytest.raises(AssertionError):
        inventory('inventory/examples/does-not-exist')


def test_vm_example_builds_a_testbed_inside_the_vm():
    for hv in hostvars(inventory('inventory/examples/vm')):
        assert hv['ansible_python_interpreter'] == '/usr/bin/python3'
        assert {'ns1', 'ns2'} <= set(hv['testbed_namespaces'])
        names = {l['name'] for l in hv['testbed_links']} | {
            l['peer']['name'] for l in hv['testbed_links']}
        assert {'veth0', 'veth1'} <= names
        assert hv['bpf_programs_attach'][0]['ifname'] == 'veth0'
        # the topology is one the module accepts
        errors = netns_veth.normalise({'namespaces': hv['testbed_namespaces'],
                                       'links': hv['testbed_links']})[1]
        assert errors == []


def test_baremetal_example_uses_real_nics_and_no_testbed():
    for hv in hostvars(inventory('inventory/examples/baremetal')):
        assert hv['testbed_namespaces'] == [] and hv['testbed_links'] == []
        assert {a['ifname'] for a in hv['bpf_programs_attach']} >= {'ens1f0np0'}
        assert all('netns' not in a for a in hv['bpf_programs_attach'])
        assert {f['interface'] for f in hv['forwarder_instances']} == {'ens1f0np0'}
        assert not any(str(v).startswith('veth') for a in hv['bpf_programs_attach']
                       for v in a.values())
