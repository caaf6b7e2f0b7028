# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel preflight: what the running kernel offers and what kbypass.xdp needs from it.

Everything here except the small ``read_*``/``probe_*`` helpers is pure so unit tests
can feed it any kernel config text, release string or probe result.
"""

from __future__ import annotations

import errno
import gzip
import os
import re
import resource
import socket

MIN_KERNEL = (5, 10)
BTF_VMLINUX = '/sys/kernel/btf/vmlinux'
AF_XDP = 44  # socket.AF_XDP is missing from older Pythons

# (config option, accepted values, why we need it).  Tristate options that may be a
# module accept "m"; the rest must be built in.
CORE_REQUIREMENTS = (
    ('CONFIG_BPF', ('y',), 'eBPF core'),
    ('CONFIG_BPF_SYSCALL', ('y',), 'the bpf() syscall (load programs, maps, pins)'),
    ('CONFIG_XDP_SOCKETS', ('y',), 'AF_XDP sockets for the user-space forwarder'),
)
BTF_REQUIREMENTS = (
    ('CONFIG_DEBUG_INFO_BTF', ('y',), 'kernel BTF, needed by libxdp/libbpf CO-RE'),
)
TESTBED_REQUIREMENTS = (
    ('CONFIG_NET_NS', ('y',), 'network namespaces for the test bed'),
    ('CONFIG_VETH', ('y', 'm'), 'veth pairs for the test bed'),
)
# Nice to have: a missing one is a warning, never a failure.
RECOMMENDED = (
    ('CONFIG_BPF_JIT', ('y',), 'JIT-compiled XDP programs (interpreted ones are slow)'),
    ('CONFIG_TUN', ('y', 'm'), 'TAP devices for the forwarder\'s kernel reinjection mode'),
)

# Runtime probe that can stand in for a config option when no config file exists.
PROBE_FOR = {
    'CONFIG_BPF_SYSCALL': 'bpf_syscall',
    'CONFIG_XDP_SOCKETS': 'xdp_sockets',
    'CONFIG_DEBUG_INFO_BTF': 'btf_vmlinux',
    'CONFIG_NET_NS': 'netns',
}

_CONFIG_SET_RE = re.compile(r'^(CONFIG_[A-Za-z0-9_]+)=(.*)$')
_CONFIG_UNSET_RE = re.compile(r'^# (CONFIG_[A-Za-z0-9_]+) is not set$')
_RELEASE_RE = re.compile(r'^(\d+)\.(\d+)(?:\.(\d+))?')
_OPTION_RE = re.compile(r'^CONFIG_[A-Z0-9_]+$')

# Capability bits (linux/capability.h) worth reporting.
CAPABILITIES = {
    'cap_net_admin': 12,
    'cap_net_raw': 13,
    'cap_ipc_lock': 14,
    'cap_sys_admin': 21,
    'cap_sys_resource': 24,
    'cap_bpf': 39,
}


def parse_kconfig(text):
    """Parse kernel config text into ``{option: value}``; "is not set" lines map to "n".

    String values keep their quotes stripped; unknown lines are ignored.
    """
    config = {}
    for raw in text.splitlines():
        line = raw.strip()
        match = _CONFIG_SET_RE.match(line)
        if match:
            value = match.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            config[match.group(1)] = value
            continue
        match = _CONFIG_UNSET_RE.match(line)
        if match:
            config[match.group(1)] = 'n'
    return config


def parse_release(release):
    """Return ``(major, minor, patch)`` from a ``uname -r`` string, or None."""
    match = _RELEASE_RE.match(release or '')
    if not match:
        return None
    return (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))


def parse_min_version(text):
    """Parse "5.10" / "5.10.0" into a tuple; raise ValueError with a readable message."""
    parts = str(text).strip().split('.')
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ValueError('min_kernel_version %r is not a version like "5.10"' % (text,))
    return tuple(int(p) for p in parts)


def option_name_error(name):
    """Return a message when ``name`` is not a kernel config option name, else None."""
    if not _OPTION_RE.match(name or ''):
        return ('%r is not a kernel config option name (expected e.g. CONFIG_TUN)' % (name,))
    return None


def config_candidates(release):
    """Where the running kernel's config usually lives, most trusted first."""
    return ['/proc/config.gz', '/boot/config-%s' % release, '/lib/modules/%s/config' % release]


def parse_cap_eff(status_text):
    """Return the effective capability mask from /proc/<pid>/status text, or None."""
    for line in status_text.splitlines():
        if line.startswith('CapEff:'):
            try:
                return int(line.split(':', 1)[1].strip(), 16)
            except ValueError:
                return None
    return None


def capabilities_from_mask(mask):
    """Map our capability names to True/False (None when the mask is unknown)."""
    return dict((name, None if mask is None else bool(mask >> bit & 1))
                for name, bit in CAPABILITIES.items())


def _version_text(version):
    return '.'.join(str(p) for p in version)


def evaluate(config, release, probes, min_version=MIN_KERNEL, require_btf=True,
             require_testbed=True, extra_options=(), config_source=None):
    """Decide what the kernel lacks.

    ``config`` is the parsed config (None when no config file was found), ``probes`` maps
    probe names (see PROBE_FOR, plus ``btf_vmlinux``) to True/False/None (unknown).
    Returns ``(missing, warnings)``: ``missing`` is a list of ``{'item', 'reason'}`` dicts,
    each naming exactly what is absent; ``warnings`` a list of strings.
    """
    missing = []
    warnings = []

    version = parse_release(release)
    if version is None:
        warnings.append('cannot tell the kernel version from release %r; assuming it is recent enough'
                        % (release,))
    elif version[:len(min_version)] < tuple(min_version):
        missing.append({
            'item': 'kernel >= %s' % _version_text(min_version),
            'reason': 'running kernel %s is older than %s (AF_XDP need_wakeup, BPF links and '
                      'libxdp dispatchers need it)' % (release, _version_text(min_version)),
        })

    required = list(CORE_REQUIREMENTS)
    if require_btf:
        required.extend(BTF_REQUIREMENTS)
    if require_testbed:
        required.extend(TESTBED_REQUIREMENTS)
    known = set(name for name, _values, _why in required)
    for name in extra_options:
        if name not in known:
            required.append((name, ('y', 'm'), 'requested by the caller'))
            known.add(name)

    where = config_source or 'the kernel config'
    for name, accepted, why in required:
        if config is not None:
            value = config.get(name)
            if value not in accepted:
                shown = 'not set' if value in (None, 'n') else '=%s' % value
                missing.append({
                    'item': name,
                    'reason': '%s is %s in %s; need %s (%s)'
                              % (name, shown, where, '=' + ' or ='.join(accepted), why),
                })
            continue
        probe = PROBE_FOR.get(name)
        result = probes.get(probe) if probe else None
        if result is False:
            missing.append({'item': name,
                            'reason': 'no kernel config found and the %s probe failed: the '
                                      'kernel lacks %s (%s)' % (probe, name, why)})
        elif result is None:
            warnings.append('no kernel config found and no probe for %s (%s): assuming present'
                            % (name, why))

    if require_btf and probes.get('btf_vmlinux') is False and not any(
            m['item'] == 'CONFIG_DEBUG_INFO_BTF' for m in missing):
        missing.append({'item': BTF_VMLINUX,
                        'reason': '%s does not exist: the running kernel exposes no BTF' % BTF_VMLINUX})

    if config is not None:
        for name, accepted, why in RECOMMENDED:
            if name in known:
                continue
            if config.get(name) not in accepted:
                warnings.append('%s is not enabled in %s (%s); continuing without it'
                                % (name, where, why))
    return missing, warnings


# --- bpf() refused at run time: name the likely cause ------------------------------------
BPF_STEPS = {
    'prog_load': 'loading a trivial XDP program with bpf(BPF_PROG_LOAD)',
    'xskmap': 'creating an XSKMAP with bpf(BPF_MAP_CREATE)',
    'xdp_socket': 'opening an AF_XDP socket',
}
# What each step needs beyond bpf() itself being allowed.
_STEP_CAPS = {
    'prog_load': ('cap_bpf', 'cap_sys_admin'),
    'xskmap': ('cap_bpf', 'cap_sys_admin'),
    'xdp_socket': ('cap_net_raw',),
}


def _container_hint(ctx):
    where = ('this host runs in a container (%s)' % ctx['container']) if ctx.get('container') \
        else 'a container runtime or systemd unit installed one'
    return ('a seccomp filter (Seccomp: filter mode, %s filter(s)) refuses the call although '
            'the process has the capabilities: %s. Allow it: systemd-nspawn '
            "--system-call-filter='bpf perf_event_open', docker/podman --security-opt "
            'seccomp=<a profile allowing bpf>, or SystemCallFilter=bpf in the unit'
            % (ctx.get('seccomp_filters', '?'), where))


def bpf_refusal_cause(step, err, ctx):
    """The most likely reason the kernel refused ``step`` with errno ``err``.

    ``ctx``: euid, capabilities (kc.capabilities_from_mask), seccomp (0/1/2 or None),
    seccomp_filters, container (name or None), lockdown ('none', 'integrity',
    'confidentiality' or None), unprivileged_bpf_disabled (int or None).
    """
    caps = ctx.get('capabilities') or {}
    if step != 'xdp_socket' and err == errno.ENOSYS:
        return ('the bpf() syscall does not exist here: the kernel lacks CONFIG_BPF_SYSCALL, '
                'or a seccomp filter answers ENOSYS')
    if step == 'xdp_socket' and err in (errno.EAFNOSUPPORT, errno.EINVAL):
        return 'the kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS is not set)'
    if step == 'xskmap' and err in (errno.EINVAL, 524):  # 524: ENOTSUPP
        return 'the kernel has no XSKMAP (CONFIG_XDP_SOCKETS is not set)'
    if err not in (errno.EPERM, errno.EACCES):
        return 'the kernel answered %s' % errno.errorcode.get(err, err)
    privileged = any(caps.get(cap) for cap in _STEP_CAPS[step])
    if not privileged:
        need = ' or '.join(cap.upper() for cap in _STEP_CAPS[step])
        if ctx.get('euid') != 0:
            disabled = ctx.get('unprivileged_bpf_disabled')
            why = (' and kernel.unprivileged_bpf_disabled=%s refuses bpf() to unprivileged '
                   'users' % disabled) if disabled and step != 'xdp_socket' else ''
            return ('the module runs as uid %s without %s%s: run it as root (become: true) '
                    'or grant the capability' % (ctx.get('euid'), need, why))
        return ('the process runs as root but lacks %s: the container or service dropped the '
                'capability (systemd-nspawn --capability=all, docker --cap-add=BPF '
                '--cap-add=NET_ADMIN --cap-add=NET_RAW, or AmbientCapabilities= in the unit)'
                % need)
    if ctx.get('seccomp') == 2:
        return _container_hint(ctx)
    if ctx.get('lockdown') not in (None, 'none'):
        return ('kernel lockdown is in %s mode, which restricts bpf(): boot without '
                'lockdown (lockdown= / Secure Boot policy) on a bench host' % ctx['lockdown'])
    return ('the process has the capabilities and no seccomp filter, so a security module '
            '(SELinux, AppArmor, BPF LSM) likely denies it: check the audit log')


def bpf_probe_missing(steps, ctx):
    """Turn [(step, errno or None)] into missing items naming the likely cause.

    Only the first refused step gets a cause: later ones usually fail for the same reason.
    """
    refused = [(step, err) for step, err in steps if err is not None]
    if not refused:
        return []
    step, err = refused[0]
    also = [BPF_STEPS[s] for s, _e in refused[1:]]
    reason = '%s failed with %s: %s' % (
        BPF_STEPS[step], errno.errorcode.get(err, err), bpf_refusal_cause(step, err, ctx))
    if also:
        reason += ' (also refused: %s)' % ', '.join(also)
    return [{'item': 'bpf() at run time', 'reason': reason, 'runtime': True}]


def parse_status_field(status_text, field):
    """An integer field of /proc/<pid>/status (e.g. Seccomp), or None."""
    for line in status_text.splitlines():
        if line.startswith(field + ':'):
            try:
                return int(line.split(':', 1)[1].strip())
            except ValueError:
                return None
    return None


def parse_lockdown(text):
    """The active mode from /sys/kernel/security/lockdown ('none [integrity] ...')."""
    match = re.search(r'\[(\w+)\]', text or '')
    return match.group(1) if match else None


def failure_message(release, missing):
    """One actionable sentence per kind of problem: the kernel build, or bpf() refused."""
    kernel = [m['reason'] for m in missing if not m.get('runtime')]
    runtime = [m['reason'] for m in missing if m.get('runtime')]
    parts = []
    if kernel:
        parts.append('Kernel %s lacks what kbypass.xdp needs: %s. Boot a kernel (>= %s) built '
                     'with these options, or pass config_path if its config lives elsewhere.'
                     % (release, '; '.join(kernel), _version_text(MIN_KERNEL)))
    if runtime:
        parts.append('This host refuses what the bench needs from bpf(): %s.'
                     % '; '.join(runtime))
    return ' '.join(parts)


def memlock_warnings(soft, hard, raised_to_unlimited, capabilities):
    """Explain whether AF_XDP UMEM registration may hit RLIMIT_MEMLOCK.

    ``raised_to_unlimited`` is whether setrlimit(RLIMIT_MEMLOCK, infinity) succeeded.
    With CAP_IPC_LOCK the kernel does not charge UMEM pages to the limit, so a capped limit
    is only a warning; without it the forwarder's UMEM must fit under the limit.
    """
    if raised_to_unlimited:
        return []
    limit = 'unlimited' if soft == resource.RLIM_INFINITY else '%d bytes' % soft
    msg = ('RLIMIT_MEMLOCK cannot be raised to unlimited here (soft %s, hard %s; no '
           'CAP_SYS_RESOURCE?)' % (limit, 'unlimited' if hard == resource.RLIM_INFINITY else hard))
    if capabilities.get('cap_ipc_lock'):
        msg += ('; CAP_IPC_LOCK is present, so AF_XDP UMEM registration still works. On hosts '
                'with systemd set LimitMEMLOCK=infinity for the forwarder.')
    else:
        msg += ('; without CAP_IPC_LOCK an AF_XDP UMEM larger than the limit fails with ENOBUFS/'
                'EPERM: keep --frames * --frame-size below it or raise the hard limit.')
    return [msg]


# --- readers and probes (touch the system; kept small) ----------------------------------

def read_config(path):
    """Return the text of a plain or gzip-compressed kernel config file."""
    with open(path, 'rb') as handle:
        data = handle.read()
    if data[:2] == b'\x1f\x8b':
        data = gzip.decompress(data)
    return data.decode('utf-8', 'replace')


def probe_xdp_sockets():
    """True when the kernel creates AF_XDP sockets, False when the family is unknown."""
    try:
        sock = socket.socket(AF_XDP, socket.SOCK_RAW, 0)
    except OSError as exc:
        if exc.errno in (errno.EAFNOSUPPORT, errno.EINVAL):
            return False
        return None  # EPERM and friends: we cannot tell
    sock.close()
    return True


def probe_bpf_syscall():
    """The sysctl exists only when the kernel was built with CONFIG_BPF_SYSCALL."""
    return os.path.exists('/proc/sys/kernel/unprivileged_bpf_disabled')


def probe_all():
    return {
        'bpf_syscall': probe_bpf_syscall(),
        'xdp_sockets': probe_xdp_sockets(),
        'btf_vmlinux': os.path.exists(BTF_VMLINUX),
        'netns': os.path.exists('/proc/self/ns/net'),
    }


def bpffs_mounted(mounts_text, path='/sys/fs/bpf'):
    """True when /proc/mounts text shows a bpf filesystem at ``path``."""
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == path and fields[2] == 'bpf':
            return True
    return False
