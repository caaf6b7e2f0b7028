# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration tests for kbypass.xdp.kernel_preflight and the toolchain role on this host.

The preflight reads the real kernel config; the "bad kernel" case feeds it the real config
with CONFIG_XDP_SOCKETS removed. The role runs for real (packages are already present, so
apt changes nothing) with its pyroute2 virtualenv forced into a temporary directory, twice
to prove idempotence, then with toolchain_state=absent. Nothing here creates namespaces,
links or BPF objects; temporary paths carry the prefix ``kbtq``.
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import BIN, ROOT, _env, run_module

RELEASE = os.uname().release


def real_config_text():
    for path in ('/proc/config.gz', '/boot/config-%s' % RELEASE):
        if os.path.exists(path):
            with open(path, 'rb') as handle:
                data = handle.read()
            return gzip.decompress(data).decode() if data[:2] == b'\x1f\x8b' else data.decode()
    pytest.skip('no kernel config on this host')
    return None


@pytest.fixture
def kbtq_dir():
    path = tempfile.mkdtemp(prefix='kbtq-')
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def config_without_xdp_sockets(kbtq_dir):
    lines = [line for line in real_config_text().splitlines()
             if not line.startswith('CONFIG_XDP_SOCKETS=')]
    path = os.path.join(kbtq_dir, 'config-no-xsk')
    with open(path, 'w') as handle:
        handle.write('\n'.join(lines) + '\n')
    return path


def test_preflight_passes_on_this_kernel():
    res = run_module('kernel_preflight', {'min_kernel_version': '5.10'})  # '{}' reads as raw params
    assert not res.get('failed'), res.get('msg')
    assert res['changed'] is False and res['ok'] is True and res['missing'] == []
    assert res['kernel_release'] == RELEASE
    assert res['config_source'] in ('/proc/config.gz', '/boot/config-%s' % RELEASE,
                                    '/lib/modules/%s/config' % RELEASE)
    assert res['config']['CONFIG_XDP_SOCKETS'] == 'y'
    assert res['btf'] is True and os.path.exists('/sys/kernel/btf/vmlinux')
    assert res['probes']['xdp_sockets'] is True  # a real AF_XDP socket was created and closed
    # bpf() used for real: a trivial XDP program loaded, an XSKMAP created
    assert res['probes']['bpf_prog_load'] is True and res['probes']['bpf_xskmap'] is True
    assert res['probes']['xdp_socket_open'] is True
    assert res['kernel_version'][:2] >= [5, 10]
    # Root here lacks CAP_SYS_RESOURCE: the memlock limit is reported, never fatal.
    assert set(res['memlock']) == {'soft', 'hard', 'can_raise_to_unlimited'}


def test_preflight_as_non_root_names_the_sysctl_and_become(kbtq_dir):
    """bpf() refused for real: the module run directly (as Ansible would over SSH without
    become) by an unprivileged user; kernel.unprivileged_bpf_disabled must say why."""
    with open('/proc/sys/kernel/unprivileged_bpf_disabled') as handle:
        disabled = handle.read().strip()
    if disabled == '0' or not shutil.which('setpriv'):
        pytest.skip('unprivileged bpf() is allowed here or setpriv(1) is missing')
    args = os.path.join(kbtq_dir, 'args.json')
    with open(args, 'w') as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': {}}, handle)
    os.chmod(kbtq_dir, 0o755)
    os.chmod(args, 0o644)
    env = dict(_env(), PYTHONPATH=os.path.join(ROOT, '.collections'), HOME=kbtq_dir)
    proc = subprocess.run(
        ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all',
         os.path.join(BIN, 'python'), '-m',
         'ansible_collections.kbypass.xdp.plugins.modules.kernel_preflight', args],
        cwd=kbtq_dir, env=env, capture_output=True, text=True, timeout=120, check=False)
    res = json.loads(proc.stdout)
    assert res.get('failed') is True and res['ok'] is False
    assert res['probes']['bpf_prog_load'] is False
    assert 'runs as uid 65534 without CAP_BPF' in res['msg']
    assert 'kernel.unprivileged_bpf_disabled=%s' % disabled in res['msg']
    assert 'become: true' in res['msg'] and 'Kernel ' not in res['msg']


@pytest.mark.parametrize('check', [False, True])
def test_preflight_fails_naming_missing_xdp_sockets(config_without_xdp_sockets, check):
    res = run_module('kernel_preflight', {'config_path': config_without_xdp_sockets}, check=check)
    assert res.get('failed') is True
    assert 'CONFIG_XDP_SOCKETS' in res['msg'] and config_without_xdp_sockets in res['msg']
    assert [m['item'] for m in res['missing']] == ['CONFIG_XDP_SOCKETS']
    assert res['changed'] is False


def test_preflight_report_only_mode(config_without_xdp_sockets):
    res = run_module('kernel_preflight', {'config_path': config_without_xdp_sockets,
                                          'fail_on_missing': False,
                                          'min_kernel_version': '99.0'})
    assert not res.get('failed')
    assert res['ok'] is False
    assert [m['item'] for m in res['missing']] == ['kernel >= 99.0', 'CONFIG_XDP_SOCKETS']


# --------------------------------------------------------------------- the role
PLAY = """\
---
- name: kbtq toolchain role test
  hosts: kbypass_hosts
  gather_facts: false
  roles:
    - role: kbypass.xdp.toolchain
"""


def run_role(kbtq_dir, extra_vars, check=False):
    play = os.path.join(kbtq_dir, 'play.yml')
    with open(play, 'w') as handle:
        handle.write(PLAY)
    cmd = [os.path.join(BIN, 'ansible-playbook'), '-i', os.path.join(ROOT, 'inventory', 'local'),
           play, '-e', json.dumps(extra_vars)]
    if check:
        cmd.append('--check')
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=900, check=False)
    try:
        out = json.loads(proc.stdout)
    except ValueError as exc:
        raise AssertionError('ansible-playbook rc=%s\n%s\n%s'
                             % (proc.returncode, proc.stdout, proc.stderr)) from exc
    tasks = {}
    for task in out['plays'][0]['tasks']:
        # the json callback names role tasks "<role> : <task name>"
        name = task['task']['name'].split(' : ', 1)[-1]
        tasks[name] = task['hosts'].get('localhost', {})
    return out['stats']['localhost'], tasks


def test_role_fails_before_changing_anything_on_a_bad_kernel(kbtq_dir, config_without_xdp_sockets):
    venv = os.path.join(kbtq_dir, 'venv')
    stats, tasks = run_role(kbtq_dir, {'toolchain_kernel_config_path': config_without_xdp_sockets,
                                       'toolchain_venv_force': True, 'toolchain_venv_path': venv})
    assert stats['failures'] == 1 and stats['changed'] == 0
    failed = tasks['Check that the running kernel can run XDP and AF_XDP']
    assert failed['failed'] and 'CONFIG_XDP_SOCKETS' in failed['msg']
    assert 'Install the BPF build and network toolchain (apt)' not in tasks
    assert not os.path.exists(venv)


def test_role_installs_is_idempotent_and_removes(kbtq_dir):
    venv = os.path.join(kbtq_dir, 'venv')
    present = {'toolchain_venv_force': True, 'toolchain_venv_path': venv}

    stats, tasks = run_role(kbtq_dir, present)
    assert stats['failures'] == 0, tasks
    out = subprocess.run([os.path.join(venv, 'bin', 'python3'), '-c',
                          'import pyroute2; print(pyroute2.__version__)'],
                         capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == '0.9.7'
    with open('/proc/mounts') as handle:
        assert any(line.split()[1:3] == ['/sys/fs/bpf', 'bpf'] for line in handle)

    stats, tasks = run_role(kbtq_dir, present)
    changed = [name for name, res in tasks.items() if res.get('changed')]
    assert stats['failures'] == 0 and stats['changed'] == 0, changed

    # The venv was installed from wheels pushed by the controller: both go on absent.
    wheels = venv + '-wheels'
    assert os.path.isdir(wheels)
    stats, _tasks = run_role(kbtq_dir, dict(present, toolchain_state='absent'), check=True)
    assert stats['changed'] == 2 and os.path.isdir(venv)  # check mode: reported, not done

    stats, _tasks = run_role(kbtq_dir, dict(present, toolchain_state='absent'))
    assert stats['changed'] == 2 and not os.path.exists(venv) and not os.path.exists(wheels)
    stats, _tasks = run_role(kbtq_dir, dict(present, toolchain_state='absent'))
    assert stats['changed'] == 0


def test_role_mounts_bpffs_without_fstab_in_a_private_mount_namespace(kbtq_dir):
    """bpffs path for hosts without /etc/fstab, run in a private mount namespace (unshare -m)
    where /sys/fs/bpf is unmounted first: the host's own bpffs is never touched."""
    if not shutil.which('unshare'):
        pytest.skip('unshare(1) is missing')
    play = os.path.join(kbtq_dir, 'play.yml')
    with open(play, 'w') as handle:
        handle.write(PLAY)
    extra = json.dumps({'toolchain_bpffs_persist': False})
    playbook = [os.path.join(BIN, 'ansible-playbook'), '-i',
                os.path.join(ROOT, 'inventory', 'local'), play, '-e', extra]
    script = '\n'.join([
        'set -e',
        'umount /sys/fs/bpf 2>/dev/null || true',
        "if grep -q ' /sys/fs/bpf bpf ' /proc/self/mounts; then echo still-mounted; exit 3; fi",
        '"$@" > "$OUT/run1.json" || true',
        '"$@" > "$OUT/run2.json" || true',
        "grep ' /sys/fs/bpf bpf ' /proc/self/mounts > \"$OUT/mounts.txt\" || true",
    ])
    env = dict(_env(), OUT=kbtq_dir)
    proc = subprocess.run(['unshare', '--mount', '--propagation', 'private', 'bash', '-c', script,
                           'kbtq'] + playbook, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = []
    for name in ('run1.json', 'run2.json'):
        with open(os.path.join(kbtq_dir, name)) as handle:
            runs.append(json.load(handle))
    tasks = dict((t['task']['name'].split(' : ', 1)[-1], t['hosts']['localhost'])
                 for t in runs[0]['plays'][0]['tasks'])
    assert runs[0]['stats']['localhost']['failures'] == 0
    assert tasks['Mount bpffs (no /etc/fstab to persist it in)']['changed'] is True
    assert runs[1]['stats']['localhost']['changed'] == 0
    with open(os.path.join(kbtq_dir, 'mounts.txt')) as handle:
        assert handle.read().split()[1:3] == ['/sys/fs/bpf', 'bpf']
    # and the host's own bpffs is still there
    with open('/proc/mounts') as handle:
        assert any(line.split()[1:3] == ['/sys/fs/bpf', 'bpf'] for line in handle)


SYSTEM_PYTHON = '/usr/bin/python3'
DEPS_VENV = '/opt/kbypass/venv'  # the path module_utils/_deps.py probes (docs/contracts.md)


def run_under(interpreter, module, args, check=True):
    cmd = [os.path.join(BIN, 'ansible'), 'localhost', '-i', 'localhost,', '-c', 'local',
           '-e', 'ansible_python_interpreter=%s' % interpreter,
           '-m', 'kbypass.xdp.%s' % module, '-a', json.dumps(args)]
    if check:
        cmd.append('--check')
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=300, check=False)
    try:
        return json.loads(proc.stdout)['plays'][0]['tasks'][0]['hosts']['localhost']
    except (ValueError, KeyError, IndexError) as exc:
        raise AssertionError('rc=%s\n%s\n%s' % (proc.returncode, proc.stdout, proc.stderr)) from exc


def test_role_venv_lets_modules_respawn_from_a_python_without_pyroute2(kbtq_dir):
    """What a remote target sees: its interpreter lacks pyroute2, the role's venv has it."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip('no %s' % SYSTEM_PYTHON)
    if subprocess.run([SYSTEM_PYTHON, '-c', 'import pyroute2'], capture_output=True,
                      check=False).returncode == 0:
        pytest.skip('%s already imports pyroute2' % SYSTEM_PYTHON)
    if os.path.exists(DEPS_VENV):
        pytest.skip('%s exists already (a real install); not touching it' % DEPS_VENV)
    # check mode: would create the namespace, creates nothing
    args = {'namespaces': ['kbtq-respawn'], 'links': []}
    try:
        res = run_under(SYSTEM_PYTHON, 'netns_veth', args)
        assert res.get('failed') and 'pyroute2' in res['msg'] and 'toolchain' in res['msg']

        stats, tasks = run_role(kbtq_dir, {'toolchain_venv_force': True})
        assert stats['failures'] == 0, tasks
        res = run_under(SYSTEM_PYTHON, 'netns_veth', args)
        assert not res.get('failed'), res.get('msg')
        assert res['changed'] is True
        assert not os.path.exists('/run/netns/kbtq-respawn')
    finally:
        run_role(kbtq_dir, {'toolchain_state': 'absent'})
        shutil.rmtree(DEPS_VENV, ignore_errors=True)
        if os.path.isdir('/opt/kbypass') and not os.listdir('/opt/kbypass'):
            os.rmdir('/opt/kbypass')
