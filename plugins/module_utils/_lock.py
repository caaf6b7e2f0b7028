# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One interface's XDP attachment is changed by one task at a time.

xdp_attach and xdp_capture hold an exclusive flock(2) on a file per interface while they
change what is attached. The case it is for: on Ctrl-C ansible-playbook exits at once,
while the orphaned xdp_capture still puts the normal program back. Without the lock a
detach (or an attach of other ports) run right after could land first and be undone by
that swap back; with it, the next task waits until the capture has finished.

The file is removed on release, so nothing is left in /run. A waiter that locked a file
which was removed meanwhile starts again on the new one (the inode check below).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from contextlib import contextmanager, nullcontext

from ansible_collections.kbypass.xdp.plugins.module_utils._common import STATE_ROOT, prune_dir

LOCK_DIR = STATE_ROOT + '/lock'
_POLL = 0.05


class LockTimeout(Exception):
    pass


def lock_path(ifname, netns=None, lock_dir=LOCK_DIR):
    # neither a netns name (starts alphanumeric) nor an interface name contains ':', and
    # no netns name is '-': the name is unambiguous
    return os.path.join(lock_dir, '%s:%s.lock' % (netns or '-', ifname))


def _holder(path):
    try:
        with open(path) as fh:
            return fh.read().strip() or 'unknown'
    except OSError:
        return 'unknown'


def _open_locked(path, deadline, what):
    """An fd of ``path`` holding its exclusive lock, or LockTimeout at ``deadline``."""
    while True:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            if time.monotonic() > deadline:
                raise
            continue  # another task removed the directory between the two calls
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                if time.monotonic() > deadline:
                    raise LockTimeout('%s is being changed by another task (pid %s) and was not '
                                      'released in time; wait for that task (a capture holds it '
                                      'for its whole duration) or stop it'
                                      % (what, _holder(path)))
                time.sleep(_POLL)
            mine = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
            if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # released and removed by its holder meanwhile: lock the new file


@contextmanager
def interface_lock(ifname, netns=None, timeout=300.0, lock_dir=LOCK_DIR):
    """Hold the lock of interface ``ifname`` in ``netns`` for the ``with`` block; raises
    LockTimeout (naming the holder's pid) after ``timeout`` seconds of waiting."""
    path = lock_path(ifname, netns, lock_dir)
    what = 'the XDP attachment of %s in %s' % (
        ifname, 'network namespace %s' % netns if netns else 'the root namespace')
    fd = _open_locked(path, time.monotonic() + timeout, what)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, ('%d\n' % os.getpid()).encode())
        yield path
    finally:
        try:
            os.unlink(path)  # still locked: a waiter on this inode sees it gone and retries
        except OSError:
            pass
        os.close(fd)
        prune_dir(lock_dir)  # the last one out; stays while other locks exist


def module_lock(check_mode, ifname, netns=None):
    """interface_lock for a module's run; check mode changes nothing, so it waits for nobody."""
    return nullcontext() if check_mode else interface_lock(ifname, netns)
