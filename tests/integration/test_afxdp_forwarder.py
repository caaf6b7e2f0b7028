"""kbypass.xdp.afxdp_forwarder and role forwarder against the real kernel.

Real namespaces, a real veth pair, the real steering program (files/bpf, attached with
kbypass.xdp.xdp_attach), the real kbypass-fwd with real AF_XDP sockets and real UDP
datagrams from kbypass-gen. Nothing is mocked; systemd is not PID 1 here, so the
``process`` supervisor is what runs (the systemd path is unit-tested with a fake
systemctl in tests/unit).

Bed (prefix ``kbtm``): kbtmv0@kbtm1 198.18.77.1/24 <-> kbtmv1@kbtm2 198.18.77.2/24, plus
kbtmv2@kbtm1 without a steering program. Sources are copied and built in a temporary
directory (never in files/, which other builds use). Runtime files go to
/run/kbypass/kbtm-forwarder so a teardown of the default /run/kbypass/forwarder elsewhere
cannot touch these tests. Every forwarder is stopped, the program detached and the bed
removed in finalizers, also on failure.
"""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import (BIN, ROOT, _env, copy_build, kill_state_processes, run_module, sh, state_processes,
                      veth_bed)

from ansible_collections.kbypass.xdp.plugins.module_utils import _supervise as sv

NS1, NS2 = 'kbtm1', 'kbtm2'
V0, V1, V2 = 'kbtmv0', 'kbtmv1', 'kbtmv2'
A1, A2 = '198.18.77.1', '198.18.77.2'
PIN = '/sys/fs/bpf/kbypass/%s/%s' % (NS1, V0)
STATE = '/run/kbypass/kbtm-forwarder'
PORT = 4242
N = 300  # datagrams per echo test; bounded in count and time below

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (netns, XDP, AF_XDP)')


def _kill_leftovers():
    """Whatever kbypass-fwd still runs with our state dir: kill it (finalizer)."""
    kill_state_processes(STATE, remove=True)


@pytest.fixture(scope='module')
def bed(tmp_path_factory):
    build = tmp_path_factory.mktemp('kbtm_build')
    bpf = copy_build(os.path.join(ROOT, 'files', 'bpf'), str(build / 'bpf'))
    fwd = copy_build(os.path.join(ROOT, 'files', 'forwarder'), str(build / 'forwarder'))
    _kill_leftovers()
    # kbtmv3's rx counter must count only what l2fwd sends: no IPv6 (ND/MLD) chatter
    with veth_bed(NS1, V0, NS2, V1, [A1 + '/24'], [A2 + '/24'],
                  more=[(V2, NS1, 'kbtmv3', (), ())], no_ipv6=(V2, 'kbtmv3')):
        try:
            r = run_module('xdp_attach', {'interface': V0, 'netns': NS1, 'ports': [PORT],
                                          'object': os.path.join(bpf, 'xdp_steer.o')})
            assert not r.get('failed'), r
            assert os.path.exists(PIN + '/xsks_map')
            yield {'fwd': os.path.join(fwd, 'kbypass-fwd'),
                   'gen': os.path.join(fwd, 'kbypass-gen'),
                   'src': os.path.join(ROOT, 'files', 'forwarder'), 'build': str(build)}
        finally:
            _kill_leftovers()
            run_module('xdp_attach', {'interface': V0, 'netns': NS1, 'state': 'absent'})


@pytest.fixture
def fwd(bed):
    """Module args of one echo instance; the instance is stopped afterwards, whatever happened."""
    args = {'name': 'kbtm-echo', 'mode': 'echo', 'interface': V0, 'netns': NS1, 'queues': [0],
            'cpus': [1], 'binary': bed['fwd'], 'state_dir': STATE, 'supervisor': 'process',
            'stats_interval': 0.2}
    yield args
    run_module('afxdp_forwarder', {'name': args['name'], 'state': 'stopped', 'state_dir': STATE})
    _kill_leftovers()


def _ours():
    return state_processes(STATE)


def _gen(bed, count=N):
    p = subprocess.run([bed['gen'], '--dst', A1, '--netns', NS2, '--dport', str(PORT),
                        '--count', str(count), '--rate', '5000', '--replies',
                        '--reply-timeout', '1000', '--json'],
                       capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def _wait_dead(pid, timeout=5):
    deadline = time.time() + timeout
    while sv.is_alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    return not sv.is_alive(pid)


def test_lifecycle_idempotence_restart_and_kill9(fwd):
    r = run_module('afxdp_forwarder', fwd)
    assert not r.get('failed'), r
    assert r['changed'] is True and r['operation'] == 'start' and r['running'] is True
    pid = r['pid']
    assert sv.is_alive(pid, exe_name='kbypass-fwd')
    assert r['stats']['running'] is True and r['stats']['pid'] == pid
    assert r['bind_mode'] == 'copy'  # veth: copy mode only
    assert r['cpus_in_effect'] == [1]  # worker thread pinned as asked
    assert os.getsid(pid) == pid  # detached: own session
    assert sv.read_pidfile(STATE + '/kbtm-echo.pid')[0] == pid

    r = run_module('afxdp_forwarder', fwd)
    assert r['changed'] is False and r['operation'] == 'none' and r['pid'] == pid

    r = run_module('afxdp_forwarder', dict(fwd, batch_size=32))
    assert r['changed'] is True and r['operation'] == 'restart', r
    assert r['pid'] != pid and _wait_dead(pid)
    pid = r['pid']
    assert '--batch' in r['argv']

    os.kill(pid, signal.SIGKILL)
    assert _wait_dead(pid)
    r = run_module('afxdp_forwarder', dict(fwd, batch_size=32))
    assert r['changed'] is True and r['operation'] == 'start' and r['running'] is True, r
    assert r['pid'] != pid and sv.is_alive(r['pid'])
    pid = r['pid']

    r = run_module('afxdp_forwarder', {'name': 'kbtm-echo', 'state': 'stopped',
                                       'state_dir': STATE})
    assert r['changed'] is True and r['operation'] == 'stop' and r['running'] is False
    assert _wait_dead(pid) and _ours() == []
    assert not os.path.exists(STATE + '/kbtm-echo.pid')
    assert glob.glob(STATE + '/kbtm-echo.*') == []
    assert not os.path.exists(STATE)  # the last instance gone: its state dir too
    r = run_module('afxdp_forwarder', {'name': 'kbtm-echo', 'state': 'stopped',
                                       'state_dir': STATE})
    assert r['changed'] is False and r['operation'] == 'none'


def test_check_mode_starts_nothing_and_diff(fwd):
    r = run_module('afxdp_forwarder', fwd, check=True, diff=True)
    assert not r.get('failed'), r
    assert r['changed'] is True and r['operation'] == 'start' and r['running'] is False
    assert r['diff']['before'] == {} and r['diff']['after']['argv'][0] == fwd['binary']
    assert _ours() == [] and glob.glob(STATE + '/kbtm-echo.*') == []

    r = run_module('afxdp_forwarder', fwd)
    pid = r['pid']
    r = run_module('afxdp_forwarder', dict(fwd, batch_size=16), check=True, diff=True)
    assert r['changed'] is True and r['operation'] == 'restart' and r['pid'] == pid
    assert '--batch' in r['diff']['after']['argv'] and '--batch' not in r['diff']['before']['argv']
    r = run_module('afxdp_forwarder', {'name': 'kbtm-echo', 'state': 'stopped',
                                       'state_dir': STATE}, check=True)
    assert r['changed'] is True and r['operation'] == 'stop'
    assert _ours() == [pid]  # check mode stopped nothing either


def test_echo_n_datagrams_through_user_space(bed, fwd):
    from ansible_collections.kbypass.xdp.plugins.module_utils import _bpf
    before = _bpf.read_steer_stats(PIN)
    r = run_module('afxdp_forwarder', fwd)
    assert r['running'] is True, r
    res = _gen(bed)
    assert res['sent'] == N and res['received'] == N, res
    time.sleep(0.6)  # > stats_interval: the stats file has caught up
    r = run_module('afxdp_forwarder', fwd)
    assert r['changed'] is False
    assert r['stats']['rx_packets'] == N and r['stats']['tx_packets'] == N, r['stats']
    after = _bpf.read_steer_stats(PIN)
    assert after['redirected']['packets'] - before['redirected']['packets'] == N


def test_rxdrop_counts_and_replies_nothing(bed, fwd):
    r = run_module('afxdp_forwarder', dict(fwd, mode='rxdrop'))
    assert r['running'] is True and '--mode' in r['argv'], r
    p = subprocess.run([bed['gen'], '--dst', A1, '--netns', NS2, '--dport', str(PORT),
                        '--count', '100', '--rate', '5000', '--json'],
                       capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0 and json.loads(p.stdout.strip().splitlines()[-1])['sent'] == 100
    time.sleep(0.6)
    r = run_module('afxdp_forwarder', dict(fwd, mode='rxdrop'))
    assert r['changed'] is False
    assert r['stats']['mode'] == 'rxdrop'
    assert r['stats']['rx_packets'] == 100 and r['stats']['tx_packets'] == 0, r['stats']
    # back to echo: a different configuration restarts it
    r2 = run_module('afxdp_forwarder', fwd)
    assert r2['changed'] is True and r2['operation'] == 'restart' and r2['pid'] != r['pid']


def test_kernel_mode_reinjects_through_tap_and_stop_removes_it(bed, fwd):
    tap = 'kbtmtap0'
    r = run_module('afxdp_forwarder', dict(fwd, mode='kernel', tap=tap))
    assert r['running'] is True, r
    assert sh(['ip', '-n', NS1, 'link', 'show', tap], check=False).returncode == 0
    echo = subprocess.Popen([os.path.join(os.path.dirname(bed['gen']), 'kbypass-udpecho'),
                             '--netns', NS1, '--port', str(PORT), '--duration', '20'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        res = _gen(bed, 100)
        assert res['received'] == 100, res  # echoed by the kernel after the TAP
        time.sleep(0.6)
        r = run_module('afxdp_forwarder', dict(fwd, mode='kernel', tap=tap))
        assert r['changed'] is False and r['stats']['rx_packets'] == 100, r['stats']
    finally:
        echo.terminate()
        echo.wait(timeout=10)
    r = run_module('afxdp_forwarder', {'name': fwd['name'], 'state': 'stopped', 'state_dir': STATE})
    assert r['changed'] is True
    assert sh(['ip', '-n', NS1, 'link', 'show', tap], check=False).returncode != 0


def _rx_packets(ns, dev):
    out = sh(['ip', '-n', ns, '-s', '-j', 'link', 'show', dev]).stdout
    return json.loads(out)[0]['stats64']['rx']['packets']


def test_l2fwd_sends_out_of_interface2(bed, fwd):
    # kbtmv0 -> user space -> kbtmv2 -> (veth) -> kbtmv3, all counted
    args = dict(fwd, mode='l2fwd', interface2=V2)
    r = run_module('afxdp_forwarder', args)
    assert r['running'] is True, r
    before = _rx_packets(NS1, 'kbtmv3')
    p = subprocess.run([bed['gen'], '--dst', A1, '--netns', NS2, '--dport', str(PORT),
                        '--count', '100', '--rate', '5000', '--json'],
                       capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    time.sleep(0.6)
    r = run_module('afxdp_forwarder', args)
    assert r['stats']['rx_packets'] == 100 and r['stats']['tx_packets'] == 100, r['stats']
    assert _rx_packets(NS1, 'kbtmv3') - before == 100


@pytest.mark.parametrize('kw,needle', [
    ({'interface': V2}, 'no xsks_map pinned at /sys/fs/bpf/kbypass/kbtm1/kbtmv2: attach the '
                        'steering program first (kbypass.xdp.xdp_attach)'),
    ({'interface': 'kbtmnope'}, 'interface kbtmnope does not exist in netns kbtm1'),
    ({'queues': [3]}, 'queue 3 does not exist on kbtmv0 in netns kbtm1 (1 RX queue: 0)'),
    ({'netns': 'kbtm9'}, 'network namespace kbtm9 does not exist'),
    ({'mode': 'l2fwd'}, 'mode l2fwd needs interface2'),
])
def test_bad_input_clear_error_nothing_started(fwd, kw, needle):
    r = run_module('afxdp_forwarder', dict(fwd, **kw))
    assert r.get('failed') is True and needle in r['msg'], r.get('msg')
    assert _ours() == [] and glob.glob(STATE + '/kbtm-echo.*') == []


def test_forwarder_failure_reports_log_tail_and_leaves_nothing_running(fwd):
    # zero-copy is refused on veth: the forwarder itself dies at start
    r = run_module('afxdp_forwarder', dict(fwd, bind_mode='zerocopy'))
    assert r.get('failed') is True, r
    assert 'exited with status' in r['msg'] and 'before its sockets were bound' in r['msg']
    assert r['log_tail'].strip()
    assert _ours() == []
    assert sorted(os.path.basename(p) for p in glob.glob(STATE + '/kbtm-echo.*')) == ['kbtm-echo.log']


def _playbook(bed, tmp_path, state, instances, prune=False):
    pb = tmp_path / 'pb.yml'
    pb.write_text(json.dumps([{
        'name': 'forwarder role', 'hosts': 'localhost', 'gather_facts': False,
        'roles': [{'role': 'kbypass.xdp.forwarder', 'vars': {
            'forwarder_state': state,
            'forwarder_source_dir': bed['src'],
            'forwarder_src_dir': os.path.join(bed['build'], 'role-src'),
            'forwarder_bin_dir': os.path.join(bed['build'], 'role-bin'),
            'forwarder_state_dir': STATE,
            'forwarder_supervisor': 'process',
            'forwarder_prune': prune,
            'forwarder_instances': instances}}]}]))
    os.makedirs(os.path.join(bed['build'], 'role-bin'), exist_ok=True)
    p = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
                        '-e', 'ansible_python_interpreter=%s' % sys.executable, str(pb)],
                       cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600,
                       check=False)
    out = json.loads(p.stdout)
    return out['stats']['localhost'], out


def test_role_builds_once_runs_and_stops(bed, tmp_path):
    inst = [{'name': 'kbtm-role', 'mode': 'echo', 'interface': V0, 'netns': NS1,
             'queues': [0], 'cpus': [1]}]
    try:
        stats, out = _playbook(bed, tmp_path, 'started', inst)
        assert stats['failures'] == 0 and stats['changed'] > 0, json.dumps(out)[-3000:]
        assert os.access(os.path.join(bed['build'], 'role-bin', 'kbypass-fwd'), os.X_OK)
        pid = sv.read_pidfile(STATE + '/kbtm-role.pid')[0]
        assert pid and sv.is_alive(pid, exe_name='kbypass-fwd')
        res = _gen(bed, 50)
        assert res['received'] == 50, res

        stats, out = _playbook(bed, tmp_path, 'started', inst)
        assert stats['failures'] == 0 and stats['changed'] == 0, json.dumps(out)[-3000:]
        assert sv.read_pidfile(STATE + '/kbtm-role.pid')[0] == pid

        # stopped: builds nothing, stops the listed instance and one it only knows from
        # its runtime files
        extra = dict(inst[0], name='kbtm-orphan', queues=[0])
        run_module('afxdp_forwarder', {'name': 'kbtm-role', 'state': 'stopped', 'state_dir': STATE})
        extra.update(binary=bed['fwd'], state_dir=STATE, supervisor='process')
        r = run_module('afxdp_forwarder', extra)
        assert r['running'] is True, r
        # without prune an unlisted instance is someone else's (a user's bed while
        # `make test` runs): left alone
        stats, out = _playbook(bed, tmp_path, 'stopped', inst)
        assert stats['failures'] == 0 and stats['changed'] == 0, json.dumps(out)[-3000:]
        assert sv.is_alive(r['pid'], exe_name='kbypass-fwd')
        stats, out = _playbook(bed, tmp_path, 'stopped', inst, prune=True)
        assert stats['failures'] == 0 and stats['changed'] == 1, json.dumps(out)[-3000:]
        assert _ours() == [] and glob.glob(STATE + '/*') == []
        stats, out = _playbook(bed, tmp_path, 'stopped', inst, prune=True)
        assert stats['failures'] == 0 and stats['changed'] == 0
    finally:
        _playbook(bed, tmp_path, 'stopped', inst, prune=True)
        _kill_leftovers()
