"""Unit tests for _lock: one task at a time per interface, nothing left behind.

Real flock(2) between real processes, in a temporary lock directory."""
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.kbypass.xdp.plugins.module_utils import _lock

# a second process that takes the lock, says so on stdout, holds it for argv[2] seconds
HOLDER = r'''
import sys, time
from ansible_collections.kbypass.xdp.plugins.module_utils import _lock
with _lock.interface_lock('veth0', 'ns1', lock_dir=sys.argv[1]):
    print('locked', flush=True)
    time.sleep(float(sys.argv[2]))
'''


def hold(lock_dir, seconds):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))  # the collection
    proc = subprocess.Popen([sys.executable, '-c', HOLDER, str(lock_dir), str(seconds)],
                            stdout=subprocess.PIPE, universal_newlines=True, env=env)
    assert proc.stdout.readline().strip() == 'locked'
    return proc


def test_lock_names_are_unambiguous():
    assert _lock.lock_path('eth0', lock_dir='/l') == '/l/-:eth0.lock'
    assert _lock.lock_path('eth0', 'ns1', '/l') == '/l/ns1:eth0.lock'
    assert _lock.lock_path('eth0', 'ns1', '/l') != _lock.lock_path('ns1', 'eth0', '/l')


def test_the_lock_holds_the_pid_and_leaves_nothing_behind(tmp_path):
    lock_dir = tmp_path / 'lock'
    with _lock.interface_lock('veth0', 'ns1', lock_dir=str(lock_dir)) as path:
        assert open(path).read() == '%d\n' % os.getpid()
    assert not lock_dir.exists()


def test_a_second_task_waits_for_the_first(tmp_path):
    lock_dir = tmp_path / 'lock'
    proc = hold(lock_dir, 0.6)
    start = time.monotonic()
    try:
        with _lock.interface_lock('veth0', 'ns1', timeout=30, lock_dir=str(lock_dir)):
            waited = time.monotonic() - start
            assert proc.poll() is not None or waited >= 0.4
    finally:
        proc.wait(10)
    assert 0.4 <= waited < 10, waited
    assert not lock_dir.exists()
    # another interface does not wait
    proc = hold(lock_dir, 5)
    try:
        start = time.monotonic()
        with _lock.interface_lock('veth1', 'ns1', timeout=30, lock_dir=str(lock_dir)):
            assert time.monotonic() - start < 0.3
    finally:
        proc.kill()
        proc.wait(10)


def test_a_lock_not_released_in_time_names_its_holder(tmp_path):
    lock_dir = tmp_path / 'lock'
    proc = hold(lock_dir, 5)
    try:
        with pytest.raises(_lock.LockTimeout) as err:
            with _lock.interface_lock('veth0', 'ns1', timeout=0.3, lock_dir=str(lock_dir)):
                pass
        assert 'veth0 in network namespace ns1 is being changed by another task (pid %d)' % proc.pid \
            in str(err.value)
    finally:
        proc.kill()
        proc.wait(10)


def test_a_waiter_on_a_removed_file_locks_the_new_one(tmp_path, monkeypatch):
    """The holder unlinks its file on release; a waiter that had opened that file must
    not go on with a lock nobody else can see."""
    lock_dir = tmp_path / 'lock'
    path = _lock.lock_path('veth0', 'ns1', str(lock_dir))
    real_open, opened = os.open, []

    def open_and_swap(p, flags, mode=0o777):
        fd = real_open(p, flags, mode)
        if p == path and not opened:   # first open: the file is replaced right after it
            opened.append(p)
            os.unlink(p)
            real_open(p, flags, mode)
        return fd

    monkeypatch.setattr(_lock.os, 'open', open_and_swap)
    with _lock.interface_lock('veth0', 'ns1', lock_dir=str(lock_dir)) as held:
        assert opened and os.path.exists(held)
        fd = real_open(held, os.O_RDONLY)
        try:
            assert os.fstat(fd).st_size > 0   # the pid went into the file that is there now
        finally:
            os.close(fd)
    assert not lock_dir.exists()
