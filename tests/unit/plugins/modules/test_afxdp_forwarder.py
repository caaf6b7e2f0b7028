# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for kbypass.xdp.afxdp_forwarder.

The pure functions (validation, argv, plan) are tested directly. main() is run in-process
with patch_module_args against a stand-in ``kbypass-fwd`` (a small Python script that
honours --stats-file and SIGTERM like the real one), on interface ``lo`` in the root
namespace with a fake pin directory: this exercises the supervision logic without root
networking. The real forwarder with real AF_XDP sockets is covered by
tests/integration/test_afxdp_forwarder.py.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest


from ansible_collections.kbypass.xdp.plugins.module_utils import _supervise as sv
from ansible_collections.kbypass.xdp.plugins.modules import afxdp_forwarder as mod
from module_main import run_main  # tests/unit/module_main.py


def params(**kw):
    p = {k: v.get('default') for k, v in mod.ARGUMENT_SPEC.items()}
    p.update(name='fwd1', interface='veth0')
    p.update(kw)
    return p


# ------------------------------------------------------------------ validation
def test_validate_defaults_ok():
    assert mod.validate_params(params(), online_cpus=[0, 1]) == []


@pytest.mark.parametrize('kw,needle', [
    (dict(name='bad/name'), 'instance name'),
    (dict(interface='x' * 16), 'at most 15'),
    (dict(netns='bad ns'), 'network namespace name'),
    (dict(mode='l2fwd'), 'needs interface2'),
    (dict(interface2='veth9'), 'only used by mode l2fwd'),
    (dict(tap='tap0'), 'only used by mode kernel'),
    (dict(pin_dir2='/x'), 'pin_dir2 is only used'),
    (dict(queues=[]), 'queues is empty'),
    (dict(queues=[0, 0]), 'duplicates'),
    (dict(queues=[64]), 'out of range'),
    (dict(cpus=[1, 1]), 'duplicates'),
    (dict(cpus=[7]), 'not online'),
    (dict(batch_size=0), 'batch_size'),
    (dict(frame_size=3000), 'frame_size'),
    (dict(rx_ring_size=1000), 'power of two'),
    (dict(num_frames=0), 'num_frames must be 256-1048576'),
    (dict(batch_size=1025), 'batch_size must be 1-1024'),
    (dict(batch_size=256, num_frames=300), 'at least 2 x batch_size'),
    (dict(busy_poll_usec=20), 'needs busy_poll'),
    (dict(stats_interval=0.0), 'stats_interval'),
    (dict(start_timeout=0.0), 'start_timeout'),
])
def test_validate_rejects(kw, needle):
    errors = mod.validate_params(params(**kw), online_cpus=[0, 1])
    assert errors and any(needle in e for e in errors), errors


def test_validate_stopped_needs_only_a_good_name():
    assert mod.validate_params(params(state='stopped', interface=None, queues=[])) == []
    assert mod.validate_params(params(state='stopped', name='..'))


# ------------------------------------------------------------------ argv
def test_build_argv_defaults():
    argv = mod.build_argv(params(netns='ns1', cpus=[1]), '/run/x.stats.json')
    assert argv == ['/usr/local/bin/kbypass-fwd', '--iface', 'veth0', '--mode', 'echo',
                    '--netns', 'ns1', '--pin-dir', '/sys/fs/bpf/kbypass/ns1/veth0',
                    '--queues', '0', '--cpus', '1', '--bind', 'auto',
                    '--interval', '1', '--stats-file', '/run/x.stats.json', '--quiet']


def test_build_argv_every_option():
    argv = mod.build_argv(params(
        mode='l2fwd', interface2='veth2', pin_dir='/p1', pin_dir2='/p2', queues=[0, 1],
        cpus=[0, 1], bind_mode='copy', batch_size=128, frame_size=2048, num_frames=8192,
        rx_ring_size=1024, tx_ring_size=512, fill_ring_size=2048, comp_ring_size=256,
        need_wakeup=False, busy_poll=True, busy_poll_usec=20, busy_poll_budget=64,
        stats_interval=0.5), '/s')
    joined = ' '.join(argv)
    for frag in ('--iface veth0 --iface2 veth2 --mode l2fwd', '--pin-dir /p1 --pin-dir2 /p2',
                 '--queues 0,1 --cpus 0,1 --bind copy', '--batch 128', '--frame-size 2048',
                 '--frames 8192', '--rx-ring 1024', '--tx-ring 512', '--fill-ring 2048',
                 '--comp-ring 256', '--no-need-wakeup', '--busy-poll --busy-poll-usec 20 '
                 '--busy-poll-budget 64', '--interval 0.5 --stats-file /s'):
        assert frag in joined
    assert '--netns' not in argv
    root = mod.build_argv(params(), '/s')
    assert root[root.index('--pin-dir') + 1] == '/sys/fs/bpf/kbypass/init_net/veth0'


def test_build_argv_kernel_mode_tap():
    argv = mod.build_argv(params(mode='kernel', tap='kbtap0'), '/s')
    assert argv[argv.index('--tap') + 1] == 'kbtap0'


# ------------------------------------------------------------------ plan
A = {'argv': ['x', '--batch', '64'], 'supervisor': 'process', 'cpus': [1]}
B = {'argv': ['x', '--batch', '128'], 'supervisor': 'process', 'cpus': [1]}


@pytest.mark.parametrize('state,status,current,desired,action', [
    ('started', 'absent', None, A, 'start'),
    ('started', 'dead', A, A, 'start'),
    ('started', 'running', A, A, 'none'),
    ('started', 'running', A, B, 'restart'),
    ('started', 'running', None, A, 'restart'),  # running but args file lost
    ('started', 'running', A, dict(A, supervisor='systemd'), 'restart'),
    ('started', 'running', A, dict(A, cpus=[0]), 'restart'),
    ('restarted', 'running', A, A, 'restart'),
    ('restarted', 'absent', None, A, 'start'),
    ('restarted', 'dead', A, A, 'start'),
    ('stopped', 'running', A, None, 'stop'),
    ('stopped', 'dead', A, None, 'cleanup'),
    ('stopped', 'absent', None, None, 'none'),
])
def test_compute_plan(state, status, current, desired, action):
    assert mod.compute_plan(state, status, current, desired) == action


def test_parse_rx_queues():
    assert mod.parse_rx_queues(['tx-0', 'rx-1', 'rx-0', 'rx-10', 'foo', 'rx-']) == [0, 1, 10]
    assert mod.parse_rx_queues([]) == []


def test_is_instance_argv():
    match = mod.is_instance_argv('/run/kbypass/forwarder/a.stats.json')
    assert match(['/usr/local/bin/kbypass-fwd', '--stats-file', '/run/kbypass/forwarder/a.stats.json'])
    assert match(['/usr/bin/python3', '/tmp/kbypass-fwd', '--stats-file', '/run/kbypass/forwarder/a.stats.json'])
    assert not match(['/usr/local/bin/kbypass-fwd', '--stats-file', '/run/kbypass/forwarder/ab.stats.json'])
    assert not match(['/usr/bin/other', '--stats-file', '/run/kbypass/forwarder/a.stats.json'])
    assert not match([])


# ------------------------------------------------------------------ main() with a stand-in binary
FAKE_FWD = r'''#!{python}
# Stand-in for kbypass-fwd: writes the stats file like the real one, obeys SIGTERM.
import json, os, signal, sys, time
a = sys.argv[1:]
sf = a[a.index('--stats-file') + 1]
if '--batch' in a and a[a.index('--batch') + 1] == '13':
    sys.stderr.write('kbypass-fwd: no xsks_map pinned at /nowhere\n')
    sys.exit(1)
def write(running):
    tmp = sf + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(dict(pid=os.getpid(), running=running, bind_mode='copy', rx_packets=0,
                       tx_packets=0), f)
    os.rename(tmp, sf)
def stop(*_):
    write(False)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
write(True)
sys.stderr.write('kbypass-fwd: fake up\n')
while True:
    time.sleep(0.1)
'''


@pytest.fixture
def bench(tmp_path):
    """A stand-in binary, a fake pin dir and a state dir; kills whatever was started."""
    binary = tmp_path / 'bin' / 'kbypass-fwd'
    binary.parent.mkdir()
    binary.write_text(FAKE_FWD.replace('{python}', sys.executable))
    binary.chmod(0o755)
    pins = tmp_path / 'pins'
    pins.mkdir()
    (pins / 'xsks_map').write_text('')
    state = tmp_path / 'state'
    b = {'binary': str(binary), 'pin_dir': str(pins), 'state_dir': str(state),
         'interface': 'lo', 'supervisor': 'process', 'cpus': [], 'start_timeout': 5.0,
         'stop_timeout': 2.0}
    yield b
    for pidfile in state.glob('*.pid') if state.exists() else []:
        pid, _start = sv.read_pidfile(str(pidfile))
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    for pid in sv.find_processes(lambda argv: str(binary) in argv):
        os.kill(pid, signal.SIGKILL)


def test_main_lifecycle_with_stand_in(bench):
    args = dict(bench, name='u1')
    r = run_main(mod, args)
    assert r['changed'] is True and r['operation'] == 'start' and r['running'] is True, r
    pid = r['pid']
    assert sv.read_pidfile(r['paths']['pid'])[0] == pid
    assert r['stats']['running'] is True and r['bind_mode'] == 'copy'
    assert r['threads'][0]['tid'] == pid and r['cpus_in_effect']
    assert sv.read_json(r['paths']['args'])['argv'] == r['argv']

    # same arguments: no change, same process
    r2 = run_main(mod, args)
    assert r2['changed'] is False and r2['operation'] == 'none' and r2['pid'] == pid

    # check mode with another batch size: predicts a restart, touches nothing
    r3 = run_main(mod, dict(args, batch_size=128, _ansible_check_mode=True, _ansible_diff=True))
    assert r3['changed'] is True and r3['operation'] == 'restart' and r3['pid'] == pid
    assert '--batch' in r3['diff']['after']['argv'] and '--batch' not in r3['diff']['before']['argv']
    assert sv.is_alive(pid)

    # the change for real: restarted with a new pid
    r4 = run_main(mod, dict(args, batch_size=128))
    assert r4['changed'] is True and r4['operation'] == 'restart' and r4['pid'] != pid
    assert not sv.is_alive(pid)

    # kill -9: pidfile is stale, the next run starts it again
    os.kill(r4['pid'], signal.SIGKILL)
    deadline = time.time() + 5
    while sv.is_alive(r4['pid']) and time.time() < deadline:
        time.sleep(0.05)
    r5 = run_main(mod, dict(args, batch_size=128))
    assert r5['changed'] is True and r5['operation'] == 'start' and r5['pid'] != r4['pid']

    # stopped: gone, files removed; again: unchanged
    r6 = run_main(mod, dict(name='u1', state='stopped', state_dir=bench['state_dir']))
    assert r6['changed'] is True and r6['operation'] == 'stop' and r6['running'] is False
    assert not sv.is_alive(r5['pid'])
    assert not os.path.exists(bench['state_dir'])  # its last files gone: the dir too
    r7 = run_main(mod, dict(name='u1', state='stopped', state_dir=bench['state_dir']))
    assert r7['changed'] is False and r7['operation'] == 'none'


def test_main_restarted_always_restarts(bench):
    args = dict(bench, name='u2')
    r = run_main(mod, args)
    r2 = run_main(mod, dict(args, state='restarted'))
    assert r2['changed'] is True and r2['operation'] == 'restart' and r2['pid'] != r['pid']
    run_main(mod, dict(name='u2', state='stopped', state_dir=bench['state_dir']))


def test_main_check_mode_starts_nothing(bench):
    r = run_main(mod, dict(bench, name='u3', _ansible_check_mode=True))
    assert r['changed'] is True and r['operation'] == 'start' and r['running'] is False
    assert not os.path.exists(bench['state_dir'])
    assert sv.find_processes(lambda argv: bench['binary'] in argv) == []


def test_main_process_dies_at_start_reports_log_and_cleans_up(bench):
    r = run_main(mod, dict(bench, name='u4', batch_size=13))
    assert r['failed'] is True
    assert 'exited with status 1' in r['msg'] and 'no xsks_map pinned at /nowhere' in r['msg']
    assert sorted(os.listdir(bench['state_dir'])) == ['u4.log']  # log kept for the user
    assert sv.find_processes(lambda argv: bench['binary'] in argv) == []


@pytest.mark.parametrize('kw,needle', [
    (dict(queues=[3]), 'queue 3 does not exist on lo in the root namespace (1 RX queue: 0)'),
    (dict(interface='kbtmnope0'), 'interface kbtmnope0 does not exist in the root namespace'),
    (dict(netns='kbtm-no-such-ns'), 'network namespace kbtm-no-such-ns does not exist'),
    (dict(pin_dir='/nonexistent/pins'), 'no xsks_map pinned at /nonexistent/pins: attach the '
                                        'steering program first (kbypass.xdp.xdp_attach)'),
    (dict(binary='/nonexistent/kbypass-fwd'), 'forwarder binary /nonexistent/kbypass-fwd is missing'),
])
def test_main_missing_prerequisites_fail_and_change_nothing(bench, kw, needle):
    r = run_main(mod, dict(bench, name='u5', **kw))
    assert r['failed'] is True and needle in r['msg'], r['msg']
    assert not os.path.exists(bench['state_dir'])
    # in check mode the same problems are warnings (earlier tasks did not run for real)
    r = run_main(mod, dict(bench, name='u5', _ansible_check_mode=True, **kw))
    assert not r.get('failed') and any(needle in w for w in r['problems'])
    assert needle in json.dumps(r.get('warnings'))
    assert not os.path.exists(bench['state_dir'])


def test_main_bad_arguments_fail_and_change_nothing(bench):
    r = run_main(mod, dict(bench, name='u6', mode='l2fwd', queues=[0, 0]))
    assert r['failed'] is True
    assert 'needs interface2' in r['msg'] and 'duplicates' in r['msg']
    assert not os.path.exists(bench['state_dir'])
    r = run_main(mod, dict(bench, name='u6', bind_mode='fast'))
    assert r['failed'] is True and 'bind_mode' in r['msg']


def test_main_stopped_cleans_stale_files(bench, tmp_path):
    state = bench['state_dir']
    os.makedirs(state)
    paths = sv.InstancePaths('u7', state)
    sv.write_pidfile(paths.pid, 999999, 1)  # no such process
    sv.write_json_atomic(paths.args, {'argv': [bench['binary']], 'supervisor': 'process'})
    r = run_main(mod, dict(name='u7', state='stopped', state_dir=state, _ansible_check_mode=True))
    assert r['changed'] is True and r['operation'] == 'cleanup'
    assert os.path.exists(paths.pid)
    r = run_main(mod, dict(name='u7', state='stopped', state_dir=state))
    assert r['changed'] is True and r['operation'] == 'cleanup'
    assert sorted(r['removed']) == sorted([paths.pid, paths.args])
    assert not os.path.exists(state)  # its last files gone: the dir too


def test_main_stale_pidfile_of_reused_pid_is_not_ours(bench):
    """A pidfile naming a live process that is not our forwarder (pid reused) -> start."""
    state = bench['state_dir']
    os.makedirs(state)
    paths = sv.InstancePaths('u8', state)
    sv.write_pidfile(paths.pid, os.getpid(), sv.proc_stat(os.getpid())['start_time'] + 7)
    sv.write_json_atomic(paths.args, {'argv': [bench['binary']], 'supervisor': 'process'})
    r = run_main(mod, dict(bench, name='u8'))
    assert r['operation'] == 'start' and r['pid'] != os.getpid()
    run_main(mod, dict(name='u8', state='stopped', state_dir=state))
    assert not os.path.exists(state)  # its last files gone: the dir too


# ------------------------------------------------------------------ systemd supervisor
FAKE_SYSTEMCTL = r'''#!{python}
# Stand-in for systemctl (systemd is not PID 1 on the test hosts): runs the ExecStart of
# the module's drop-in as a detached process and answers show/is-active/stop for it.
import os, shlex, signal, subprocess, sys, time
units = os.environ['FAKE_SYSTEMD_DIR']
log = os.environ['FAKE_SYSTEMD_LOG']
args = [a for a in sys.argv[1:] if not a.startswith('--')]
with open(log, 'a') as f:
    f.write(' '.join(sys.argv[1:]) + '\n')
cmd, unit = args[0], (args[1] if len(args) > 1 else None)
pidf = os.path.join(units, '%s.mainpid' % unit)
def pid():
    try:
        p = int(open(pidf).read())
        st = open('/proc/%d/stat' % p).read()
        return p if st[st.rindex(')') + 2] != 'Z' else 0
    except (OSError, ValueError):
        return 0
if cmd == 'restart':
    if pid():
        os.kill(pid(), signal.SIGTERM)
    conf = open(os.path.join(units, unit + '.d', '50-kbypass.conf')).read()
    execs = [l[len('ExecStart='):] for l in conf.splitlines() if l.startswith('ExecStart=')]
    p = subprocess.Popen(shlex.split(execs[-1]), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    open(pidf, 'w').write(str(p.pid))
elif cmd == 'show':
    print(pid())
elif cmd == 'is-active':
    sys.exit(0 if pid() else 3)
elif cmd == 'stop':
    if pid():
        p = pid()
        os.kill(p, signal.SIGTERM)
        for _ in range(100):
            if not pid():
                break
            time.sleep(0.05)
    if os.path.exists(pidf):
        os.unlink(pidf)
'''


@pytest.fixture
def fake_systemd(bench, tmp_path, monkeypatch):
    fake_bin = tmp_path / 'fakebin'
    fake_bin.mkdir()
    ctl = fake_bin / 'systemctl'
    ctl.write_text(FAKE_SYSTEMCTL.replace('{python}', sys.executable))
    ctl.chmod(0o755)
    units = tmp_path / 'units'
    units.mkdir()
    calls = tmp_path / 'systemctl.log'
    monkeypatch.setenv('PATH', '%s:%s' % (fake_bin, os.environ.get('PATH', '')))
    monkeypatch.setenv('FAKE_SYSTEMD_DIR', str(units))
    monkeypatch.setenv('FAKE_SYSTEMD_LOG', str(calls))
    monkeypatch.setattr(sv, 'SYSTEMD_RUNTIME_UNIT_DIR', str(units))
    monkeypatch.setattr(sv, 'systemd_is_pid1', lambda *a, **k: True)
    yield {'units': units, 'calls': calls}
    for f in units.glob('*.mainpid'):
        try:
            os.kill(int(f.read_text()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def test_main_systemd_supervisor_with_fake_systemctl(bench, fake_systemd):
    """systemd is not PID 1 here: a recorded stand-in for systemctl runs the drop-in's
    ExecStart, so the module's unit path (drop-in, MainPID, idempotence, stop) is exercised."""
    args = dict(bench, name='u9', supervisor='auto', cpus=[0])
    r = run_main(mod, args)
    assert not r.get('failed'), r
    assert r['supervisor'] == 'systemd' and r['operation'] == 'start' and r['running'] is True
    dropin = fake_systemd['units'] / 'kbypass-fwd@u9.service.d' / '50-kbypass.conf'
    text = dropin.read_text()
    assert 'CPUAffinity=0' in text and '--stats-file %s' % r['paths']['stats'] in text
    mainpid = int((fake_systemd['units'] / 'kbypass-fwd@u9.service.mainpid').read_text())
    assert r['pid'] == mainpid and r['stats']['pid'] == mainpid
    assert 'restart kbypass-fwd@u9.service' in fake_systemd['calls'].read_text()

    r2 = run_main(mod, args)
    assert r2['changed'] is False and r2['pid'] == mainpid

    r3 = run_main(mod, dict(name='u9', state='stopped', state_dir=bench['state_dir'],
                            supervisor='auto'))
    assert r3['changed'] is True and r3['operation'] == 'stop'
    assert not sv.is_alive(mainpid) and not dropin.exists()
    assert 'stop kbypass-fwd@u9.service' in fake_systemd['calls'].read_text()
    assert not os.path.exists(bench['state_dir'])  # its last files gone: the dir too


def test_main_systemd_requested_without_systemd_fails_clearly(bench, monkeypatch):
    monkeypatch.setattr(sv, 'systemd_is_pid1', lambda *a, **k: False)
    r = run_main(mod, dict(bench, name='u10', supervisor='systemd'))
    assert r['failed'] is True and 'systemd is not PID 1' in r['msg']
    assert not os.path.exists(bench['state_dir'])
    # stopping is still possible (nothing can run under systemd): no error, no change
    r = run_main(mod, dict(name='u10', state='stopped', supervisor='systemd',
                           state_dir=bench['state_dir']))
    assert not r.get('failed') and r['changed'] is False


# ------------------------------------------------------------------ #17 items 1, 3, 10: health
ATT = {'prog_id': 40, 'map_ids': [5, 6, 7], 'pinned_xskmap': 7, 'netns': (4, 1000)}
PROC_OK = {'xskmaps': [7], 'netns': (4, 1000), 'exe_replaced': False}


def test_healthy_forwarder_has_no_problems():
    assert mod.health_problems('veth0', 'netns ns1', ATT, PROC_OK) == []


@pytest.mark.parametrize('proc,needle', [
    (dict(PROC_OK, xskmaps=[3]), 'registered in xsks_map id 3, but the program attached to '
                                 'veth0 in netns ns1 now uses xsks_map id 7'),
    (dict(PROC_OK, xskmaps=[]), 'registered in xsks_map id none'),
    (dict(PROC_OK, netns=(4, 999)), 'no longer carries the name'),
    (dict(PROC_OK, exe_replaced=True), 'binary was replaced or removed'),
])
def test_unhealthy_forwarder_is_named_why(proc, needle):
    problems = mod.health_problems('veth0', 'netns ns1', ATT, proc)
    assert len(problems) == 1 and needle in problems[0], problems


def test_unhealthy_running_forwarder_is_restarted_even_with_the_same_argv():
    assert mod.compute_plan('started', 'running', A, A, ['moved']) == 'restart'
    assert mod.compute_plan('started', 'running', A, A, []) == 'none'


@pytest.mark.parametrize('att,needle', [
    (dict(ATT, prog_id=None), 'no XDP program is attached to veth0'),
    (dict(ATT, map_ids=[]), 'maps none'),
    (dict(ATT, pinned_xskmap=9), 'pin_dir /p belongs to another attachment: its xsks_map '
                                 '(map id 9)'),
])
def test_pins_must_belong_to_the_attached_program(att, needle):
    problems = mod.attachment_problems('veth0', 'netns ns1', '/p', att)
    assert len(problems) == 1 and needle in problems[0], problems
    assert mod.attachment_problems('veth0', 'netns ns1', '/p', ATT) == []
    assert mod.attachment_problems('veth0', 'netns ns1', '/p', None) == []  # unknown


def test_busy_queue_is_named_before_starting():
    others = {
        11: ['/b/kbypass-fwd', '--iface', 'veth0', '--mode', 'echo', '--netns', 'ns1',
             '--queues', '0,1', '--stats-file', '/run/x/a.stats.json', '--quiet'],
        12: ['/b/kbypass-fwd', '--iface', 'veth0', '--queues', '0'],  # root namespace
        13: ['/b/kbypass-fwd', '--iface', 'veth9', '--netns', 'ns1', '--queues', '0'],
    }
    problems = mod.busy_queue_problems('veth0', 'ns1', [1, 2], others)
    assert problems == ['queue 1 of veth0 is already bound by another forwarder (pid 11, '
                        '/run/x/a.stats.json): stop that one first or pick another queue']
    assert mod.busy_queue_problems('veth0', 'ns1', [2], others) == []


def test_failed_restart_brings_the_old_one_back(bench):
    """#17 item 2: validation passed, the binary refused the new argv after the old
    process was stopped: the old configuration runs again and the task says changed."""
    args = dict(bench, name='u10')
    first = run_main(mod, args)
    r = run_main(mod, dict(args, batch_size=13))  # the stand-in exits 1 on --batch 13
    assert r['failed'] is True and r['changed'] is True, r
    assert 'previous configuration was started again' in r['msg']
    assert r['running'] is True and r['pid'] != first['pid'] and sv.is_alive(r['pid'])
    assert '--batch' not in sv.read_json(r['paths']['args'])['argv']
    again = run_main(mod, args)
    assert again['changed'] is False and again['pid'] == r['pid']
    run_main(mod, dict(name='u10', state='stopped', state_dir=bench['state_dir']))


def test_failed_start_quotes_only_its_own_log_lines(bench):
    """#17 item 10: an earlier run's last line is not this failure's reason."""
    state = bench['state_dir']
    os.makedirs(state)
    with open(os.path.join(state, 'u11.log'), 'w') as f:
        f.write('--- earlier starting\nkbypass-fwd: stale reason from yesterday\n')
    silent = os.path.join(os.path.dirname(bench['binary']), 'silent-fwd')
    with open(silent, 'w') as f:
        f.write('#!/bin/sh\nexit 3\n')
    os.chmod(silent, 0o755)
    r = run_main(mod, dict(bench, name='u11', binary=silent))
    assert r['failed'] is True and 'exited with status 3' in r['msg']
    assert 'stale reason' not in r['msg'], r['msg']


def test_instances_in_the_state_dir_are_returned(bench):
    """#13 item 5: the role takes instance names from the module, not from a regex."""
    state = bench['state_dir']
    os.makedirs(state)
    for f in ('a.pid', 'a.args.json', 'b.stats.json', 'c.d.log', '.x.tmp.1', 'junk'):
        open(os.path.join(state, f), 'w').close()
    r = run_main(mod, dict(name='zz', state='stopped', state_dir=state))
    assert r['instances'] == ['a', 'b', 'c.d'], r


@pytest.mark.parametrize('state_dir,needle', [('/proc/kbr', 'pseudo file system'),
                                              ('run/kbr', 'is relative')])
def test_state_dir_is_checked_first(bench, state_dir, needle):
    r = run_main(mod, dict(bench, name='u12', state_dir=state_dir))
    assert r['failed'] is True and needle in r['msg'] and '[Errno' not in r['msg']
