# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Supervise long-running helper processes, with or without systemd.

Without systemd as PID 1 a process is started detached (its own session, stdin from
/dev/null, stdout/stderr into a log file) and tracked with a pidfile that holds the pid
*and* its start time (field 22 of /proc/<pid>/stat), so a pid the kernel later reuses
for another program is never mistaken for ours. Liveness also rejects zombies: on hosts
whose PID 1 does not reap orphans a killed process lingers as ``Z``.

With systemd as PID 1 the same instance runs as ``<template>@<name>.service``; the exact
command line and CPU affinity go into a runtime drop-in, so the template unit installed
by a role stays generic.

Everything here is plain Python (no Ansible imports) so unit tests can exercise it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import time

from ansible_collections.kbypass.xdp.plugins.module_utils._common import STATE_ROOT, parse_cpulist, prune_dir

FORWARDER_STATE_DIR = STATE_ROOT + '/forwarder'
SYSTEMD_RUNTIME_UNIT_DIR = '/run/systemd/system'
PROC = '/proc'

# The module's own process: module_utils are imported there before anything forks.
MAIN_PID = os.getpid()


def die_if_forked_helper(signum):
    """In a signal handler: True (after re-raising the signal with the default action)
    when this is not the module's own process. pyroute2 forks helpers into namespaces and
    ends them with SIGTERM; a fork inherits the module's handlers and must simply die, not
    unwind (and answer for) the module a second time."""
    if os.getpid() == MAIN_PID:
        return False
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return True


_INSTANCE_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$')


# --------------------------------------------------------------------------- names/paths
def instance_name_error(name):
    """Return a message when ``name`` cannot name an instance (file names, unit names)."""
    if not name or not _INSTANCE_RE.match(name) or name in ('.', '..'):
        return ('instance name %r is invalid: use 1-63 characters from letters, digits, '
                '"_", "." and "-", starting with a letter or digit' % (name,))
    return None


class InstancePaths(object):
    """The runtime files of one supervised instance."""

    def __init__(self, name, state_dir=FORWARDER_STATE_DIR):
        self.name = name
        self.state_dir = state_dir
        base = os.path.join(state_dir, name)
        self.pid = base + '.pid'
        self.log = base + '.log'
        self.stats = base + '.stats.json'
        self.args = base + '.args.json'

    def all(self):
        return [self.pid, self.args, self.stats, self.log]

    def existing(self):
        return [p for p in self.all() if os.path.exists(p)]


# --------------------------------------------------------------------------- /proc
def parse_proc_stat(text):
    """Parse /proc/<pid>/stat text into ``{'comm', 'state', 'ppid', 'start_time'}``.

    comm may contain spaces and parentheses, so split at the *last* ')'.
    """
    lpar = text.index('(')
    rpar = text.rindex(')')
    rest = text[rpar + 2:].split()
    # rest[0] is field 3 (state); start time is field 22 -> rest[19]
    return {
        'comm': text[lpar + 1:rpar],
        'state': rest[0],
        'ppid': int(rest[1]),
        'start_time': int(rest[19]),
    }


def proc_stat(pid, proc=PROC):
    try:
        with open('%s/%d/stat' % (proc, pid)) as f:
            return parse_proc_stat(f.read())
    except (IOError, OSError, ValueError, IndexError):
        return None


def proc_cmdline(pid, proc=PROC):
    try:
        with open('%s/%d/cmdline' % (proc, pid), 'rb') as f:
            raw = f.read()
    except (IOError, OSError):
        return None
    if not raw:
        return []
    return [a.decode('utf-8', 'replace') for a in raw.rstrip(b'\0').split(b'\0')]


def is_alive(pid, start_time=None, exe_name=None, proc=PROC):
    """True when ``pid`` runs, is not a zombie, and (if given) has the recorded start
    time and an argv[0] whose basename is ``exe_name``."""
    if not pid or pid <= 0:
        return False
    st = proc_stat(pid, proc)
    if st is None or st['state'] in ('Z', 'X', 'x'):
        return False
    if start_time is not None and st['start_time'] != start_time:
        return False
    if exe_name is not None and not argv_runs(proc_cmdline(pid, proc), exe_name):
        return False
    return True


def argv_runs(argv, exe_name):
    """True when ``argv`` (from /proc) runs program ``exe_name``: argv[0], or argv[1]
    for a script started through its interpreter (``python3 /path/exe_name ...``)."""
    if not argv:
        return False
    return exe_name in [os.path.basename(a) for a in argv[:2]]


def _other_pids(proc=PROC):
    """Pids under ``proc`` except our own."""
    try:
        entries = os.listdir(proc)
    except OSError:
        return []
    return [int(e) for e in entries if e.isdigit() and int(e) != os.getpid()]


def find_by_comm(comm, proc=PROC):
    """Pids of live processes whose comm (the kernel's 15-character name) is ``comm``."""
    found = []
    for pid in _other_pids(proc):
        st = proc_stat(pid, proc)
        if st and st['comm'] == comm[:15] and is_alive(pid, proc=proc):
            found.append(pid)
    return sorted(found)


def find_processes(match, proc=PROC):
    """Pids of live processes whose argv satisfies ``match(argv)``."""
    found = []
    for pid in _other_pids(proc):
        cmd = proc_cmdline(pid, proc)
        if not cmd:
            continue
        try:
            ok = match(cmd)
        except Exception:  # pylint: disable=broad-except
            ok = False
        if ok and is_alive(pid, proc=proc):
            found.append(pid)
    return sorted(found)


def online_cpus(sysfs='/sys/devices/system/cpu/online'):
    try:
        with open(sysfs) as f:
            return parse_cpulist(f.read())
    except (IOError, OSError, ValueError):
        return sorted(os.sched_getaffinity(0))


def thread_affinity(pid, proc=PROC):
    """One ``{'tid', 'name', 'cpus'}`` per thread of ``pid``, from Cpus_allowed_list."""
    threads = []
    try:
        tids = sorted(int(t) for t in os.listdir('%s/%d/task' % (proc, pid)) if t.isdigit())
    except OSError:
        return threads
    for tid in tids:
        name, cpus = None, None
        try:
            with open('%s/%d/task/%d/status' % (proc, pid, tid)) as f:
                for line in f:
                    if line.startswith('Name:'):
                        name = line.split(':', 1)[1].strip()
                    elif line.startswith('Cpus_allowed_list:'):
                        cpus = parse_cpulist(line.split(':', 1)[1])
        except (IOError, OSError):
            continue
        threads.append({'tid': tid, 'name': name, 'cpus': cpus or []})
    return threads


def effective_cpus(threads):
    """CPUs the worker threads may run on: the non-main threads when there are any
    (the main thread only supervises), else the single thread."""
    if not threads:
        return []
    workers = threads[1:] if len(threads) > 1 else threads
    cpus = set()
    for t in workers:
        cpus.update(t['cpus'])
    return sorted(cpus)


# --------------------------------------------------------------------------- files
def write_file_atomic(path, data, mode=0o644):
    d = os.path.dirname(path)
    tmp = os.path.join(d, '.%s.tmp.%d' % (os.path.basename(path), os.getpid()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except Exception:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json_atomic(path, obj, mode=0o644):
    write_file_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + '\n', mode)


def read_json(path):
    """Parsed JSON object from ``path``; None when missing, empty or half-written."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (IOError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_pidfile(path, pid, start_time):
    write_file_atomic(path, '%d\n%d\n' % (pid, start_time))


def read_pidfile(path):
    """(pid, start_time) from a pidfile; (None, None) when absent or garbage.
    A classic one-line pidfile yields (pid, None)."""
    try:
        with open(path) as f:
            lines = f.read().split()
    except (IOError, OSError):
        return None, None
    try:
        pid = int(lines[0])
    except (ValueError, IndexError):
        return None, None
    try:
        start = int(lines[1])
    except (ValueError, IndexError):
        start = None
    return pid, start


def remove_files(paths):
    removed = []
    for p in paths:
        try:
            os.unlink(p)
            removed.append(p)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
    return removed


def log_tail(path, lines=15, max_bytes=16384):
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read().decode('utf-8', 'replace')
    except (IOError, OSError):
        return ''
    return '\n'.join(data.splitlines()[-lines:])


# --------------------------------------------------------------------------- process supervision
def spawn_detached(argv, log_path, cwd='/', env=None):
    """Start ``argv`` in its own session, output appended to ``log_path``.

    Returns the Popen object: as long as the caller lives, ``poll()`` sees an early death
    and its exit code; once the caller exits the process is re-parented (to PID 1 or a
    subreaper) and keeps running, holding none of the caller's pipes.
    """
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        header = '--- %s starting: %s\n' % (time.strftime('%Y-%m-%dT%H:%M:%S%z'), ' '.join(argv))
        os.write(fd, header.encode('utf-8'))
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fd,
                                stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                close_fds=True, start_new_session=True)
    finally:
        os.close(fd)


def wait_gone(pid, start_time, timeout, popen=None, interval=0.05, proc=PROC):
    """Wait up to ``timeout`` s for the process to end; True when it did."""
    deadline = time.monotonic() + timeout
    while True:
        if popen is not None and popen.poll() is not None:
            return True
        if not is_alive(pid, start_time, proc=proc):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def terminate(pid, start_time, term_timeout=5.0, kill_timeout=3.0, popen=None, proc=PROC):
    """SIGTERM, wait bounded, then SIGKILL. Returns 'absent', 'terminated' or 'killed'.

    Raises RuntimeError when even SIGKILL did not end it in ``kill_timeout``.
    """
    if not is_alive(pid, start_time, proc=proc):
        return 'absent'
    for sig, timeout, gone, done in ((signal.SIGTERM, term_timeout, 'absent', 'terminated'),
                                     (signal.SIGKILL, kill_timeout, 'killed', 'killed')):
        try:
            os.kill(pid, sig)
        except OSError as e:
            if e.errno == errno.ESRCH:
                return gone
            raise
        if wait_gone(pid, start_time, timeout, popen=popen, proc=proc):
            return done
    raise RuntimeError('process %d survived SIGKILL for %.1f s' % (pid, kill_timeout))


# --------------------------------------------------------------------------- systemd
def systemd_is_pid1(run_dir='/run/systemd/system'):
    """sd_booted(): systemd created this directory at boot when it is PID 1."""
    return os.path.isdir(run_dir)


def unit_name(template, name):
    return '%s@%s.service' % (template, name)


def systemd_dropin_path(template, name, unit_dir=SYSTEMD_RUNTIME_UNIT_DIR):
    return os.path.join(unit_dir, unit_name(template, name) + '.d', '50-kbypass.conf')


def _systemd_quote(arg):
    if arg and not any(c in arg for c in ' \t\n"\'\\;$%'):
        return arg
    return '"%s"' % arg.replace('\\', '\\\\').replace('"', '\\"').replace('$', '$$').replace('%', '%%')


def render_systemd_dropin(argv, cpus=None, log=None):
    """Drop-in that gives one template instance its exact command line and affinity, and
    its log in the instance's own state dir (the template's is the forwarder role's)."""
    lines = ['# Written by kbypass.xdp.afxdp_forwarder: do not edit.', '[Service]',
             'ExecStart=', 'ExecStart=' + ' '.join(_systemd_quote(a) for a in argv)]
    if log:
        lines.append('StandardOutput=append:' + log)
    if cpus:
        lines.append('CPUAffinity=' + ' '.join(str(c) for c in sorted(set(cpus))))
    return '\n'.join(lines) + '\n'


class SystemdUnit(object):
    """Start/stop one template instance through systemctl; ``run`` is a callable
    ``run(argv) -> (rc, stdout, stderr)`` (AnsibleModule.run_command fits)."""

    def __init__(self, run, template, name, systemctl='systemctl',
                 unit_dir=SYSTEMD_RUNTIME_UNIT_DIR):
        self.run = run
        self.template = template
        self.name = name
        self.unit = unit_name(template, name)
        self.systemctl = systemctl
        self.dropin = systemd_dropin_path(template, name, unit_dir)

    def _ctl(self, *args):
        rc, out, err = self.run([self.systemctl] + list(args))
        return rc, (out or '').strip(), (err or '').strip()

    def main_pid(self):
        rc, out, _err = self._ctl('show', '--property=MainPID', '--value', self.unit)
        try:
            pid = int(out) if rc == 0 else 0
        except ValueError:
            pid = 0
        return pid or None

    def is_active(self):
        rc, _out, _err = self._ctl('is-active', '--quiet', self.unit)
        return rc == 0

    def start(self, argv, cpus=None, log=None):
        d = os.path.dirname(self.dropin)
        if not os.path.isdir(d):
            os.makedirs(d, 0o755)
        write_file_atomic(self.dropin, render_systemd_dropin(argv, cpus, log))
        for args in (('daemon-reload',), ('reset-failed', self.unit), ('restart', self.unit)):
            rc, out, err = self._ctl(*args)
            if rc != 0 and args[0] != 'reset-failed':
                raise RuntimeError('systemctl %s failed (rc=%d): %s'
                                   % (' '.join(args), rc, err or out))
        return self.main_pid()

    def stop(self):
        rc, out, err = self._ctl('stop', self.unit)
        if rc not in (0, 5):  # 5: unit not loaded (template never installed): nothing runs
            raise RuntimeError('systemctl stop %s failed (rc=%d): %s' % (self.unit, rc, err or out))
        self._ctl('reset-failed', self.unit)
        removed = remove_files([self.dropin])
        prune_dir(os.path.dirname(self.dropin))
        if removed:
            self._ctl('daemon-reload')
        return removed


# --------------------------------------------------------------------------- health (kernel's view)
BPF_MAP_TYPE_XSKMAP = 17


def parse_fdinfo(text):
    """``key:\\tvalue`` lines of /proc/<pid>/fdinfo/<fd> as a dict of strings."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(':')
        if sep:
            out[key.strip()] = value.strip()
    return out


def proc_map_ids(pid, map_type=BPF_MAP_TYPE_XSKMAP, proc=PROC):
    """Ids of the BPF maps of ``map_type`` that process ``pid`` holds open (from fdinfo),
    or None when its fds cannot be read (process gone)."""
    base = '%s/%d/fdinfo' % (proc, pid)
    try:
        fds = os.listdir(base)
    except OSError:
        return None
    ids = set()
    for fd in fds:
        try:
            with open(os.path.join(base, fd)) as f:
                info = parse_fdinfo(f.read())
        except (IOError, OSError):
            continue  # closed meanwhile
        if info.get('map_type') == str(map_type) and info.get('map_id', '').isdigit():
            ids.add(int(info['map_id']))
    return sorted(ids)


def proc_netns_inode(pid, proc=PROC):
    """(st_dev, st_ino) of the network namespace ``pid`` lives in, or None."""
    try:
        st = os.stat('%s/%d/ns/net' % (proc, pid))
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def proc_exe_replaced(pid, binary, proc=PROC):
    """True when ``binary`` on disk is no longer the file that process ``pid`` runs
    (upgraded or removed since it started); False when it is, or when unknown."""
    try:
        running = os.stat('%s/%d/exe' % (proc, pid))
    except OSError:
        return False
    try:
        disk = os.stat(binary)
    except OSError:
        return True
    return (running.st_dev, running.st_ino) != (disk.st_dev, disk.st_ino)


def log_since_last_start(text, header='--- '):
    """The lines a log gained since its last ``--- ... starting`` header (spawn_detached
    writes one per start), so an earlier run's lines are never quoted as this one's."""
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith(header):
            return lines[i + 1:]
    return lines


def instance_names(state_dir):
    """Names of the instances that have runtime files in ``state_dir`` (InstancePaths)."""
    suffixes = ('.args.json', '.stats.json', '.pid', '.log')  # longest first
    names = set()
    try:
        entries = os.listdir(state_dir)
    except OSError:
        return []
    for entry in entries:
        for suffix in suffixes:
            if entry.endswith(suffix) and not entry.startswith('.'):
                name = entry[:-len(suffix)]
                if instance_name_error(name) is None:
                    names.add(name)
                break
    return sorted(names)
