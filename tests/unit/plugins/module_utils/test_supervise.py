# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for module_utils/_supervise.py.

Pure parsers are tested on text; process handling is tested on real, short-lived
``sleep``/``sh`` children (harmless, always reaped in finalizers). systemd cannot run
here (it is not PID 1), so SystemdUnit is driven with a recorded fake ``systemctl``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.kbypass.xdp.plugins.module_utils import _supervise as sv
from ansible_collections.kbypass.xdp.plugins.module_utils import _common as common


# ------------------------------------------------------------------ names and parsers
@pytest.mark.parametrize('name', ['echo-ns1-veth0', 'a', 'x.y_z-1', 'A' * 63])
def test_instance_name_ok(name):
    assert sv.instance_name_error(name) is None


@pytest.mark.parametrize('name', ['', '-x', '.', '..', 'a/b', 'a b', 'A' * 64, 'a@b', '../x'])
def test_instance_name_bad(name):
    assert 'invalid' in sv.instance_name_error(name)


def test_parse_proc_stat_comm_with_spaces_and_parens():
    fields = ['S', '1', '2', '3'] + ['0'] * 15 + ['987654'] + ['0'] * 10
    text = '4242 (we (ird) name) ' + ' '.join(fields)
    st = sv.parse_proc_stat(text)
    assert st == {'comm': 'we (ird) name', 'state': 'S', 'ppid': 1, 'start_time': 987654}


def test_parse_proc_stat_of_self_matches_real_proc():
    st = sv.proc_stat(os.getpid())
    assert st['state'] in ('R', 'S')
    assert st['ppid'] == os.getppid()
    assert st['start_time'] > 0


@pytest.mark.parametrize('text,cpus', [
    ('0-2,5', [0, 1, 2, 5]), ('1', [1]), ('', []), ('0,1\n', [0, 1]), ('3-3', [3]),
])
def test_parse_cpu_list(text, cpus):
    assert common.parse_cpulist(text) == cpus


@pytest.mark.parametrize('cpus,text', [
    ([0, 1, 2, 5], '0-2,5'), ([1], '1'), ([], ''), ([5, 1, 0, 2], '0-2,5'), ([0, 2, 4], '0,2,4'),
])
def test_format_cpu_list(cpus, text):
    assert common.format_cpulist(cpus) == text


def test_effective_cpus_prefers_worker_threads():
    threads = [{'tid': 1, 'name': 'm', 'cpus': [0, 1]}, {'tid': 2, 'name': 'w', 'cpus': [1]}]
    assert sv.effective_cpus(threads) == [1]
    assert sv.effective_cpus(threads[:1]) == [0, 1]
    assert sv.effective_cpus([]) == []


# ------------------------------------------------------------------ files
def test_pidfile_roundtrip_and_garbage(tmp_path):
    p = str(tmp_path / 'x.pid')
    assert sv.read_pidfile(p) == (None, None)
    sv.write_pidfile(p, 123, 456)
    assert sv.read_pidfile(p) == (123, 456)
    with open(p, 'w') as f:
        f.write('77\n')
    assert sv.read_pidfile(p) == (77, None)
    with open(p, 'w') as f:
        f.write('garbage')
    assert sv.read_pidfile(p) == (None, None)


def test_json_atomic_and_half_written(tmp_path):
    p = str(tmp_path / 'a.json')
    sv.write_json_atomic(p, {'argv': ['a', 'b']})
    assert sv.read_json(p) == {'argv': ['a', 'b']}
    assert oct(os.stat(p).st_mode & 0o777) == oct(0o644)
    assert [f for f in os.listdir(str(tmp_path)) if f.startswith('.')] == []
    with open(p, 'w') as f:
        f.write('{"argv": [')
    assert sv.read_json(p) is None
    with open(p, 'w') as f:
        f.write('[1, 2]')
    assert sv.read_json(p) is None


def test_instance_paths_and_remove(tmp_path):
    paths = sv.InstancePaths('fwd1', str(tmp_path))
    assert paths.pid == str(tmp_path / 'fwd1.pid')
    assert paths.stats.endswith('fwd1.stats.json') and paths.args.endswith('fwd1.args.json')
    open(paths.pid, 'w').close()
    open(paths.log, 'w').close()
    assert sorted(paths.existing()) == sorted([paths.pid, paths.log])
    assert sorted(sv.remove_files(paths.all())) == sorted([paths.pid, paths.log])
    assert paths.existing() == []
    assert sv.remove_files(paths.all()) == []


def test_log_tail(tmp_path):
    p = str(tmp_path / 'l.log')
    with open(p, 'w') as f:
        f.write(''.join('line %d\n' % i for i in range(100)))
    assert sv.log_tail(p, lines=3) == 'line 97\nline 98\nline 99'
    assert sv.log_tail(str(tmp_path / 'missing')) == ''


# ------------------------------------------------------------------ real processes
@pytest.fixture
def children():
    procs = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
        try:  # and whatever a shell child left in its own session
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass


def test_spawn_detached_runs_in_own_session_and_logs(tmp_path, children):
    log = str(tmp_path / 'x.log')
    p = sv.spawn_detached(['/bin/sh', '-c', 'echo hello-out; echo hello-err >&2; exec sleep 30'], log)
    children.append(p)
    assert os.getsid(p.pid) == p.pid  # new session, leader
    st = sv.proc_stat(p.pid)
    deadline = time.time() + 5
    while 'hello-err' not in sv.log_tail(log) and time.time() < deadline:
        time.sleep(0.05)
    tail = sv.log_tail(log)
    assert 'starting: /bin/sh -c' in tail and 'hello-out' in tail and 'hello-err' in tail
    assert sv.is_alive(p.pid, st['start_time'])
    # stdin is /dev/null, not our terminal/pipe
    assert os.readlink('/proc/%d/fd/0' % p.pid) == '/dev/null'


def _wait_exec(pid):
    # right after execve /proc/<pid>/cmdline is briefly empty
    deadline = time.time() + 5
    while not sv.proc_cmdline(pid) and time.time() < deadline:
        time.sleep(0.01)


def test_is_alive_rejects_reused_pid_and_wrong_program(children):
    p = subprocess.Popen(['sleep', '30'])
    children.append(p)
    _wait_exec(p.pid)
    st = sv.proc_stat(p.pid)
    assert sv.is_alive(p.pid, st['start_time'], exe_name='sleep')
    assert not sv.is_alive(p.pid, st['start_time'] + 1)  # same pid, other start time
    assert not sv.is_alive(p.pid, st['start_time'], exe_name='kbypass-fwd')
    assert not sv.is_alive(0) and not sv.is_alive(None)


def test_is_alive_rejects_zombie(children):
    p = subprocess.Popen(['true'])
    children.append(p)
    deadline = time.time() + 5
    while sv.proc_stat(p.pid)['state'] != 'Z' and time.time() < deadline:
        time.sleep(0.02)
    assert sv.proc_stat(p.pid)['state'] == 'Z'  # not reaped yet: still in /proc
    assert not sv.is_alive(p.pid)


def test_terminate_sigterm(children):
    p = subprocess.Popen(['sleep', '30'])
    children.append(p)
    st = sv.proc_stat(p.pid)['start_time']
    assert sv.terminate(p.pid, st, term_timeout=5, popen=p) == 'terminated'
    assert p.wait(timeout=5) == -signal.SIGTERM
    assert sv.terminate(p.pid, st) == 'absent'


def test_terminate_escalates_to_sigkill(children):
    # a child that ignores SIGTERM: only SIGKILL ends it
    code = 'import signal,time,sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); print("ok", flush=True); time.sleep(30)'
    p = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE)
    children.append(p)
    assert p.stdout.readline().strip() == b'ok'
    st = sv.proc_stat(p.pid)['start_time']
    t0 = time.monotonic()
    assert sv.terminate(p.pid, st, term_timeout=0.5, popen=p) == 'killed'
    assert time.monotonic() - t0 < 5
    assert p.wait(timeout=5) == -signal.SIGKILL


def test_find_processes_by_argv(children, tmp_path):
    marker = str(tmp_path / 'marker')
    # a process that never forks: a shell's child carries its argv until it execs
    p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)', marker],
                         start_new_session=True)
    children.append(p)
    _wait_exec(p.pid)
    found = sv.find_processes(lambda argv: marker in argv)
    assert found == [p.pid]
    assert sv.find_processes(lambda argv: 'no-such-marker-xyz' in argv) == []


def test_thread_affinity_of_self():
    threads = sv.thread_affinity(os.getpid())
    assert threads and threads[0]['tid'] == os.getpid()
    assert set(threads[0]['cpus']) == set(os.sched_getaffinity(0))


# ------------------------------------------------------------------ systemd (faked: not PID 1 here)
def test_render_systemd_dropin():
    text = sv.render_systemd_dropin(['/usr/local/bin/kbypass-fwd', '--iface', 'veth0',
                                     '--stats-file', '/run/kbypass/forwarder/a b.json'], [3, 1])
    lines = text.splitlines()
    assert '[Service]' in lines
    assert lines.index('ExecStart=') < lines.index(
        'ExecStart=/usr/local/bin/kbypass-fwd --iface veth0 --stats-file "/run/kbypass/forwarder/a b.json"')
    assert 'CPUAffinity=1 3' in lines
    assert 'CPUAffinity' not in sv.render_systemd_dropin(['/bin/x'], [])
    # the log goes to the instance's state dir, not the template's (a bench's own state dir)
    assert 'StandardOutput=append:/run/kbypass/bench/b.log' in sv.render_systemd_dropin(
        ['/bin/x'], [], '/run/kbypass/bench/b.log').splitlines()


def test_systemd_unit_start_stop_sequence(tmp_path):
    calls = []

    def run(argv):
        calls.append(argv[1:])
        if argv[1] == 'show':
            return 0, '4242\n', ''
        return 0, '', ''

    unit = sv.SystemdUnit(run, 'kbypass-fwd', 'echo1', unit_dir=str(tmp_path))
    assert unit.unit == 'kbypass-fwd@echo1.service'
    pid = unit.start(['/usr/local/bin/kbypass-fwd', '--iface', 'veth0'], [1])
    assert pid == 4242
    dropin = tmp_path / 'kbypass-fwd@echo1.service.d' / '50-kbypass.conf'
    assert 'CPUAffinity=1' in dropin.read_text()
    assert [c[0] for c in calls] == ['daemon-reload', 'reset-failed', 'restart', 'show']
    calls[:] = []
    assert unit.stop() == [str(dropin)]
    assert not dropin.exists() and not dropin.parent.exists()
    assert [c[0] for c in calls] == ['stop', 'reset-failed', 'daemon-reload']


def test_systemd_unit_start_failure_is_reported(tmp_path):
    def run(argv):
        if argv[1] == 'restart':
            return 1, '', 'Job failed. See journalctl -xe'
        return 0, '', ''

    unit = sv.SystemdUnit(run, 'kbypass-fwd', 'echo1', unit_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match='systemctl restart kbypass-fwd@echo1.service failed'):
        unit.start(['/bin/x'])


def test_systemd_is_pid1(tmp_path):
    assert sv.systemd_is_pid1(str(tmp_path)) is True
    assert sv.systemd_is_pid1(str(tmp_path / 'nope')) is False


# ------------------------------------------------------------------ health from /proc
def test_proc_map_ids_reads_xskmaps_from_fdinfo(tmp_path):
    fdinfo = tmp_path / '42' / 'fdinfo'
    fdinfo.mkdir(parents=True)
    (fdinfo / '3').write_text('pos:\t0\nflags:\t02000002\nmap_type:\t17\nmap_id:\t77\n')
    (fdinfo / '4').write_text('pos:\t0\nmap_type:\t2\nmap_id:\t78\n')  # an array map
    (fdinfo / '5').write_text('pos:\t0\nflags:\t02\n')  # a socket
    assert sv.proc_map_ids(42, proc=str(tmp_path)) == [77]
    assert sv.proc_map_ids(43, proc=str(tmp_path)) is None


def test_proc_map_ids_of_a_real_process_holding_no_maps():
    assert sv.proc_map_ids(os.getpid()) == []


def test_proc_exe_replaced(tmp_path):
    me = os.getpid()
    exe = os.path.realpath('/proc/%d/exe' % me)
    assert sv.proc_exe_replaced(me, exe) is False
    assert sv.proc_exe_replaced(me, str(tmp_path / 'gone')) is True
    copy = tmp_path / 'copy'
    copy.write_bytes(b'x')
    assert sv.proc_exe_replaced(me, str(copy)) is True


def test_log_since_last_start():
    text = '--- a starting\nold\n--- b starting\nnew 1\nnew 2'
    assert sv.log_since_last_start(text) == ['new 1', 'new 2']
    assert sv.log_since_last_start('--- c starting') == []
    assert sv.log_since_last_start('no header') == ['no header']
