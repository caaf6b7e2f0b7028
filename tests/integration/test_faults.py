"""Fault suite: break a running bed the way a crash or a user of a shared lab machine
would, then check that the next run converges and the path proves itself again.

Each test injects one fault into a running bed, then calls ``converge()`` (what
``make run`` does for this bed: the steering program attached, the forwarder started) and
``verify()`` (UDP datagrams from the peer come back echoed through the AF_XDP socket:
the kernel has no listener on the port, so a reply can only come from the forwarder).

Bed (prefix ``kbr``): kbrv0@kbr1 198.18.220.1/24 <-> kbrv1@kbr2 198.18.220.2/24, plus a
second pair kbrv2@kbr1 <-> kbrv3@kbr2 (198.18.220.5/.6) with its own attachment whose
pins another forwarder may try to take. Built with the sources copied to a temporary
directory; runtime files in /run/kbypass/kbr-forwarder. Every test is bounded (packet
counts, timeouts) and the bed goes away in finalizers, also on failure.

Malformed frames (#17 item 8): the forwarder's C tests cover each case in detail; here a
peer sends them to a running bed, which must not echo them and stays converged.
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import frames
from conftest import (BIN, ROOT, _env, copy_build, kill_state_processes, make_veth_bed, remove_bed,
                      run_module, sh, state_processes)

from ansible_collections.kbypass.xdp.plugins.module_utils import _supervise as sv

NS1, NS2 = 'kbr1', 'kbr2'
V0, V1, V2, V3 = 'kbrv0', 'kbrv1', 'kbrv2', 'kbrv3'
A1, A2, A5, A6 = '198.18.220.1', '198.18.220.2', '198.18.220.5', '198.18.220.6'
PIN = '/sys/fs/bpf/kbypass/%s/%s' % (NS1, V0)
PIN2 = '/sys/fs/bpf/kbypass/%s/%s' % (NS1, V2)
STATE = '/run/kbypass/kbr-forwarder'
PORT = 4242
N = 200

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (netns, XDP, AF_XDP)')


def _ours():
    return state_processes(STATE)


def _kill_ours():
    kill_state_processes(STATE)


def _make_bed():
    make_veth_bed(NS1, V0, NS2, V1, [A1 + '/24'], [A2 + '/24'],
                  more=[(V2, NS2, V3, [A5 + '/24'], [A6 + '/24'])])


@pytest.fixture(scope='module')
def bed(tmp_path_factory):
    build = tmp_path_factory.mktemp('kbr_build')
    bpf = copy_build(os.path.join(ROOT, 'files', 'bpf'), str(build / 'bpf'))
    fwd = copy_build(os.path.join(ROOT, 'files', 'forwarder'), str(build / 'forwarder'))
    b = {'obj': os.path.join(bpf, 'xdp_steer.o'), 'fwd_src': os.path.join(fwd, 'kbypass-fwd'),
         'gen': os.path.join(fwd, 'kbypass-gen'), 'bin': str(build / 'bin')}
    os.makedirs(b['bin'])
    b['fwd'] = os.path.join(b['bin'], 'kbypass-fwd')
    _kill_ours()
    try:
        _make_bed()
        yield b
    finally:
        _kill_ours()
        shutil.rmtree(STATE, ignore_errors=True)
        for ifname in (V0, V2):
            run_module('xdp_attach', {'interface': ifname, 'netns': NS1, 'state': 'absent',
                                      'object': b['obj']})
        remove_bed(NS1, NS2)


def install(bed):
    """What the forwarder role does: a fresh copy (new inode) of the binary."""
    tmp = bed['fwd'] + '.new'
    shutil.copy(bed['fwd_src'], tmp)
    os.chmod(tmp, 0o755)
    os.rename(tmp, bed['fwd'])


def fwd_args(bed, **kw):
    args = {'name': 'kbr-echo', 'mode': 'echo', 'interface': V0, 'netns': NS1, 'queues': [0],
            'cpus': [1], 'binary': bed['fwd'], 'state_dir': STATE, 'supervisor': 'process',
            'stats_interval': 0.2}
    args.update(kw)
    return args


def converge(bed, **kw):
    """One `make run` of this bed; returns the forwarder's result."""
    if not os.path.exists(bed['fwd']):
        install(bed)
    r = run_module('xdp_attach', {'interface': V0, 'netns': NS1, 'ports': [PORT],
                                  'object': bed['obj']})
    assert not r.get('failed'), r
    r = run_module('afxdp_forwarder', fwd_args(bed, **kw))
    assert not r.get('failed'), r
    return r


def verify(bed, dst=A1, count=N):
    p = subprocess.run([bed['gen'], '--dst', dst, '--netns', NS2, '--dport', str(PORT),
                        '--count', str(count), '--rate', '5000', '--replies',
                        '--reply-timeout', '1000', '--json'],
                       capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out['sent'] == count and out['received'] == count, out
    return out


@pytest.fixture
def running(bed):
    """A converged, verified bed; afterwards the instance is stopped whatever happened."""
    r = converge(bed)
    verify(bed)
    yield r
    run_module('afxdp_forwarder', {'name': 'kbr-echo', 'state': 'stopped', 'state_dir': STATE})
    _kill_ours()


def _wait_dead(pid, timeout=5):
    deadline = time.time() + timeout
    while sv.is_alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    return not sv.is_alive(pid)


# ------------------------------------------------------------------ #17 item 1
def test_reattached_with_new_maps_restarts_the_forwarder(bed, running):
    """`umount /sys/fs/bpf; make run`: the program comes back with new maps; the
    forwarder stays registered in the orphaned map. (Unmounting bpffs would hit every
    user of this machine: removing the pins and re-attaching gives the same new maps.)"""
    pid = running['pid']
    r = run_module('xdp_attach', {'interface': V0, 'netns': NS1, 'state': 'absent',
                                  'object': bed['obj']})
    assert not r.get('failed'), r
    shutil.rmtree(PIN, ignore_errors=True)
    r = converge(bed)
    assert r['changed'] is True and r['operation'] == 'restart', r
    assert any('xsks_map id' in why for why in r['restart_reasons']), r
    assert r['pid'] != pid and _wait_dead(pid)
    verify(bed)
    assert converge(bed)['changed'] is False


def test_namespace_recreated_restarts_the_forwarder(bed, running):
    """`ip netns del ns1; make run -e testbed_recreate=true`: the old forwarder keeps
    the deleted namespace alive and receives nothing of the new one."""
    pid = running['pid']
    _make_bed()
    r = converge(bed)
    assert r['operation'] == 'restart' and r['changed'] is True, r
    assert any('no longer carries the name' in why for why in r['restart_reasons']), r
    assert _wait_dead(pid)
    verify(bed)
    assert converge(bed)['changed'] is False


# ------------------------------------------------------------------ #17 item 2
def test_failed_restart_brings_the_old_configuration_back(bed, running):
    """A new configuration that passes validation but that the forwarder refuses at
    start: the old one runs again and the task says changed (it restarted something)."""
    pid = running['pid']
    r = run_module('afxdp_forwarder', fwd_args(bed, bind_mode='zerocopy'))  # veth: copy only
    assert r.get('failed') and r['changed'] is True, r
    assert 'previous configuration was started again' in r['msg'], r['msg']
    assert r['running'] is True and r['pid'] != pid and sv.is_alive(r['pid'])
    verify(bed)
    assert converge(bed)['changed'] is False


# ------------------------------------------------------------------ #17 item 3
def test_pin_dir_of_another_attachment_is_refused(bed, running):
    r = run_module('xdp_attach', {'interface': V2, 'netns': NS1, 'ports': [PORT],
                                  'object': bed['obj']})
    assert not r.get('failed'), r
    try:
        r = run_module('afxdp_forwarder', fwd_args(bed, name='kbr-thief', pin_dir=PIN2))
        assert r.get('failed') and 'belongs to another attachment' in r['msg'], r
        assert sv.find_processes(lambda argv: STATE + '/kbr-thief.stats.json' in argv) == []
        verify(bed)  # the first forwarder still gets its traffic
    finally:
        run_module('xdp_attach', {'interface': V2, 'netns': NS1, 'state': 'absent',
                                  'object': bed['obj']})
        shutil.rmtree(PIN2, ignore_errors=True)


# ------------------------------------------------------------------ crashes and hands
def test_kill_9_converges(bed, running):
    os.kill(running['pid'], signal.SIGKILL)
    assert _wait_dead(running['pid'])
    r = converge(bed)
    assert r['operation'] == 'start' and r['changed'] is True, r
    verify(bed)


def test_program_detached_by_hand_converges(bed, running):
    sh(['ip', '-n', NS1, 'link', 'set', 'dev', V0, 'xdp', 'off'])
    r = converge(bed)
    verify(bed)
    assert converge(bed)['changed'] is False, r


def test_binary_removed_then_reinstalled_restarts(bed, running):
    os.unlink(bed['fwd'])
    r = run_module('afxdp_forwarder', fwd_args(bed))
    assert r.get('failed') and 'is missing or not executable' in r['msg'], r
    assert sv.is_alive(running['pid'])  # refused before anything was stopped
    r = converge(bed)  # the role installs it again
    assert r['operation'] == 'restart' and r['pid'] != running['pid'], r
    assert any('binary was replaced' in why for why in r['restart_reasons'])
    verify(bed)


def test_binary_upgraded_restarts(bed, running):
    install(bed)  # same bytes, new file: what the role's copy does after a rebuild
    r = converge(bed)
    assert r['operation'] == 'restart' and r['changed'] is True, r
    assert not os.path.exists('/proc/%d' % r['pid']) or \
        not os.readlink('/proc/%d/exe' % r['pid']).endswith('(deleted)')
    verify(bed)


def test_sigint_in_the_middle_of_a_run_converges(bed, running):
    """Ctrl-C while the module restarts the forwarder (between stop and start)."""
    cmd = [os.path.join(BIN, 'ansible'), 'localhost', '-i', 'localhost,', '-c', 'local',
           '-e', 'ansible_python_interpreter=%s' % sys.executable,
           '-m', 'kbypass.xdp.afxdp_forwarder',
           '-a', json.dumps(fwd_args(bed, batch_size=32, start_timeout=10))]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 20
    while sv.is_alive(running['pid']) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=30)
    converge(bed)
    verify(bed)
    assert len(_ours()) == 1


# ------------------------------------------------------------------ a shared lab machine
def test_runtime_files_deleted_by_hand_converges(bed, running):
    """Someone cleans /run by hand: the orphan is found by its argv and replaced."""
    for f in glob.glob(STATE + '/kbr-echo.*'):
        os.unlink(f)
    r = converge(bed)
    assert r['changed'] is True and _wait_dead(running['pid'])
    assert len(_ours()) == 1
    verify(bed)


def test_second_forwarder_on_a_busy_queue_is_refused(bed, running):
    """A colleague starts another instance on the same queue: clear error, the
    running one keeps its traffic."""
    r = run_module('afxdp_forwarder', fwd_args(bed, name='kbr-second'))
    assert r.get('failed') and 'already bound by another forwarder' in r['msg'], r
    assert 'memlock' not in r['msg'].lower()
    verify(bed)


def test_stats_file_garbage_converges(bed, running):
    with open(STATE + '/kbr-echo.args.json', 'w') as f:
        f.write('{not json')
    converge(bed)
    verify(bed)
    assert converge(bed)['changed'] is False


def test_malformed_frames_are_not_echoed(bed, running):
    """#17 item 8 on a running bed: a peer sends frames whose lengths or IP version do not
    add up; none comes back (the steering program passes them to the kernel, which drops
    them), a valid datagram among them does, and the bed stays converged."""
    mac = dict((ifname, json.loads(sh(['ip', '-j', 'link', 'show', ifname], netns=ns).stdout)
                [0]['address']) for ns, ifname in ((NS1, V0), (NS2, V1)))
    bad, good = frames.malformed_frames(mac[V0], mac[V1], v4_addrs=(A2, A1))
    proc = sh(['python3', '-c', frames.PEER_SCRIPT, V1,
               json.dumps([f.hex() for _n, f in bad + good[:1]])], netns=NS2, timeout=30)
    replies = [bytes.fromhex(h) for h in json.loads(proc.stdout)]
    assert [r[-3:] for r in replies] == [b'ok4'], replies
    assert converge(bed)['changed'] is False
    verify(bed)
