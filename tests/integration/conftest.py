"""Shared fixtures for integration tests: run real modules against the real kernel.

Modules are invoked through `ansible` ad hoc with the json callback, exactly as a
playbook would run them (AnsiballZ, argument_spec validation, check/diff mode).
Every test uses its own namespace and link names (prefix ``kbt``), builds its bed with
``veth_bed`` and so cleans up in fixtures' finalizers, so a failing test leaves nothing behind and a user's ``ns1``/
``ns2`` bed is never touched.
"""
import contextlib
import glob
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.kbypass.xdp.plugins.module_utils import _bpf, _supervise
from ansible_collections.kbypass.xdp.plugins.module_utils._common import PIN_ROOT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def _env():
    env = dict(os.environ)
    env.update({
        'ANSIBLE_CONFIG': os.path.join(ROOT, 'ansible.cfg'),
        'ANSIBLE_COLLECTIONS_PATH': os.path.join(ROOT, '.collections'),
        'ANSIBLE_LOAD_CALLBACK_PLUGINS': '1',
        'ANSIBLE_STDOUT_CALLBACK': 'json',
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_DEPRECATION_WARNINGS': '0',
    })
    return env


def run_module(name, args, check=False, diff=False, timeout=300):
    """Run module ``kbypass.xdp.<name>`` on localhost; return its result dict."""
    cmd = [os.path.join(BIN, 'ansible'), 'localhost', '-i', 'localhost,', '-c', 'local',
           '-e', 'ansible_python_interpreter=%s' % sys.executable,
           '-m', 'kbypass.xdp.%s' % name, '-a', json.dumps(args)]
    if check:
        cmd.append('--check')
    if diff:
        cmd.append('--diff')
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)
    try:
        out = json.loads(proc.stdout)
        return out['plays'][0]['tasks'][0]['hosts']['localhost']
    except (ValueError, KeyError, IndexError) as exc:
        raise AssertionError('could not run %s: rc=%s\nstdout=%s\nstderr=%s'
                             % (name, proc.returncode, proc.stdout, proc.stderr)) from exc


# What a module returns only for the controller: Ansible keeps these out of a registered
# result, so a result handed on as another module's argument must not carry them (warnings
# are serialised as tagged Event objects a module cannot decode).
CONTROLLER_ONLY_KEYS = ('warnings', 'deprecations', 'invocation', 'exception')


def run_in_process(module, args, capsys):
    """Run a module's main() in this process: the same code as through ansible, without its
    start-up (seconds per call on a loaded 2-core machine). Returns the result the way a
    ``register`` holds it; the module's warnings go to stderr for the test log."""
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    out = json.loads(capsys.readouterr().out)
    for key in CONTROLLER_ONLY_KEYS:
        value = out.pop(key, None)
        if value and key != 'invocation':
            sys.stderr.write('%s %s: %s\n' % (module.__name__, key, json.dumps(value)))
    return out


def run_playbook(playbook, extra_vars, tmp_path, timeout=300):
    """Run ``playbooks/<playbook>`` on the local inventory with ``extra_vars``; returns
    (rc, parsed json-callback output or None, CompletedProcess)."""
    varfile = tmp_path / 'extra-vars.json'
    varfile.write_text(json.dumps(extra_vars))
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', 'inventory/local',
                           os.path.join('playbooks', playbook), '-e', '@%s' % varfile,
                           '-e', 'ansible_python_interpreter=%s' % sys.executable],
                          cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        out = None
    return proc.returncode, out, proc


def sh(cmd, netns=None, check=True, timeout=60):
    """Run a shell command (optionally inside a namespace) and return CompletedProcess."""
    if netns:
        cmd = ['ip', 'netns', 'exec', netns] + list(cmd)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check)


def remove_netns(*names):
    """Delete the named namespaces that exist (their veths go with them)."""
    for ns in names:
        if ns in netns_list():
            sh(['ip', 'netns', 'del', ns], check=False)


def make_veth_bed(ns_a, if_a, ns_b, if_b, addrs_a=(), addrs_b=(), more=(), no_ipv6=()):
    """Namespaces ``ns_a``/``ns_b`` (recreated) joined by veth ``if_a``<->``if_b``, loopback
    and every end up, ``addrs_*`` (CIDR; IPv6 without DAD) on each end. ``more``: further
    pairs ``(if_a, ns_b, if_b, addrs_a, addrs_b)`` from ``ns_a``; ``no_ipv6``: ends whose
    IPv6 is off before they go up (no ND/MLD chatter in their counters). Pins stay."""
    remove_netns(ns_a, ns_b)
    for ns in (ns_a, ns_b):
        sh(['ip', 'netns', 'add', ns])
        sh(['ip', 'link', 'set', 'lo', 'up'], netns=ns)
    pairs = ((if_a, ns_b, if_b, addrs_a, addrs_b),) + tuple(more)
    for a, nsb, b, addrs_a, addrs_b in pairs:
        sh(['ip', 'link', 'add', a, 'netns', ns_a, 'type', 'veth', 'peer', 'name', b,
            'netns', nsb])
        for ns, dev, addrs in ((ns_a, a, addrs_a), (nsb, b, addrs_b)):
            if dev in no_ipv6:
                sh(['sysctl', '-qw', 'net.ipv6.conf.%s.disable_ipv6=1' % dev], netns=ns)
            for addr in addrs:
                sh(['ip', 'addr', 'add', addr, 'dev', dev] + (['nodad'] if ':' in addr else []),
                   netns=ns)
    for pair in pairs:
        for ns, dev in ((ns_a, pair[0]), (pair[1], pair[2])):
            sh(['ip', 'link', 'set', dev, 'up'], netns=ns)


@contextlib.contextmanager
def veth_bed(ns_a, *args, **kw):
    """The test bed of ``make_veth_bed``, removed on exit, also when the test fails, with
    any pins under /sys/fs/bpf/kbypass/<ns>; a bed that would not go away fails the test."""
    ns_b = args[1]
    remove_bed(ns_a, ns_b)
    try:
        make_veth_bed(ns_a, *args, **kw)
        yield
    finally:
        remove_bed(ns_a, ns_b)
    assert ns_a not in netns_list() and ns_b not in netns_list()


def remove_bed(*names):
    """Delete the namespaces and their pin directories (bpffs has no rm -r)."""
    remove_netns(*names)
    for ns in names:
        path = os.path.join(PIN_ROOT, ns)
        if os.path.isdir(path):
            _bpf.remove_tree(path)


def copy_build(src, dst, *targets):
    """Copy the C sources and Makefile of ``src`` to a fresh ``dst`` and build ``targets``
    (default all) there (never in files/, which other builds use); returns ``dst``."""
    os.makedirs(dst)
    for f in glob.glob(os.path.join(src, '*.[ch]')) + [os.path.join(src, 'Makefile')]:
        shutil.copy(f, dst)
    proc = subprocess.run(['make', '-C', dst] + list(targets), capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, 'build failed:\n%s%s' % (proc.stdout, proc.stderr)
    return dst


def stop_process(proc, timeout=10):
    """SIGTERM the Popen ``proc``, SIGKILL when it is still there after ``timeout`` s."""
    proc.terminate()
    try:
        proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def state_processes(state_dir):
    """PIDs of forwarders whose arguments point into ``state_dir`` (a test's own)."""
    return _supervise.find_processes(
        lambda argv: any(a.startswith(state_dir + '/') for a in argv))


def kill_state_processes(state_dir, remove=False):
    """SIGKILL what still runs with ``state_dir`` (finalizers), optionally remove the dir."""
    for pid in state_processes(state_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if remove:
        shutil.rmtree(state_dir, ignore_errors=True)


def netns_list():
    try:
        return sorted(os.listdir('/run/netns'))
    except FileNotFoundError:
        return []


@pytest.fixture(scope='session', autouse=True)
def no_empty_pin_root():
    """Tests pin under /sys/fs/bpf/kbypass/<their netns>/ and remove their own
    directories; the shared parent goes too once it is empty (rmdir fails, and so
    leaves it, while a user's bed still has pins there)."""
    yield
    try:
        os.rmdir(PIN_ROOT)
    except OSError:
        pass


# iproute2's pin tree, made on first `ip link ... obj` (test_ovs, test_facts, test_jumbo_bed, ...)
IPROUTE2_PINS = ('/sys/fs/bpf/ip', '/sys/fs/bpf/tc', '/sys/fs/bpf/xdp')


@pytest.fixture(scope='session', autouse=True)
def no_iproute2_pin_tree():
    """What the session's `ip` calls created on bpffs goes when it holds no pin: the `ip`
    link and the empty tc/, xdp/ and their globals/ (an rmdir refuses a directory in use)."""
    before = set(p for p in IPROUTE2_PINS if os.path.lexists(p))
    yield
    for path in IPROUTE2_PINS:
        if path in before or not os.path.lexists(path):
            continue
        if os.path.islink(path):
            os.unlink(path)
            continue
        for top, dirs, _files in os.walk(path, topdown=False):
            for d in dirs:
                try:
                    os.rmdir(os.path.join(top, d))
                except OSError:
                    pass
        try:
            os.rmdir(path)
        except OSError:
            pass


def descendants(pid):
    """PIDs below ``pid``: a test signals only processes it started itself (other
    sessions on this machine run the same modules)."""
    children = {}
    for p in os.listdir('/proc'):
        if not p.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % p) as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(p))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def module_pids(module, parent=None):
    """PIDs of module ``kbypass.xdp.<module>`` (its AnsiballZ payload) below ``parent``
    (default: this test process)."""
    pids = []
    for pid in descendants(parent or os.getpid()):
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                if ('AnsiballZ_%s' % module).encode() in f.read():
                    pids.append(pid)
        except OSError:
            pass
    return pids


def pcapng_comments(path):
    """The opt_comment of every enhanced packet block of a pcapng file."""
    data, off, out = path.read_bytes(), 0, []
    while off + 12 <= len(data):
        btype, size = struct.unpack_from('=II', data, off)
        if btype == 6:
            cap = struct.unpack_from('=I', data, off + 20)[0]
            opt = off + 28 + cap + (-cap % 4)
            while opt < off + size - 4:
                code, length = struct.unpack_from('=HH', data, opt)
                if code == 1:
                    out.append(data[opt + 4:opt + 4 + length].decode())
                if code == 0:
                    break
                opt += 4 + length + (-length % 4)
        off += size
    return out


def attached_prog(ifname, netns):
    """bpf prog info of the XDP program attached to ``ifname`` in ``netns``."""
    from ansible_collections.kbypass.xdp.plugins.module_utils import _xdp
    for _try in range(20):  # the program can be swapped between the query and the open
        try:
            return _bpf.prog_info_by_id(_xdp.query(ifname, netns)['xdp']['prog_id'])
        except _bpf.BpfError:
            time.sleep(0.05)
    raise AssertionError('no program attached to %s' % ifname)


def copy_builds(top):
    """files/bpf and files/forwarder built from copies under ``top``: (bpf dir, forwarder dir)."""
    return tuple(copy_build(os.path.join(ROOT, 'files', name), os.path.join(str(top), name))
                 for name in ('bpf', 'forwarder'))
