#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: kernel_preflight
short_description: Check that the running kernel can run an XDP/AF_XDP bench
version_added: 0.1.0
description:
  - Reads the kernel configuration (C(/proc/config.gz), C(/boot/config-<release>) or
    C(/lib/modules/<release>/config), or O(config_path)), the kernel release, the presence of
    C(/sys/kernel/btf/vmlinux), effective capabilities, RLIMIT_MEMLOCK and whether bpffs is
    mounted at C(/sys/fs/bpf).
  - Fails with one message naming every missing requirement (kernel older than
    O(min_kernel_version), no C(CONFIG_BPF_SYSCALL), no C(CONFIG_XDP_SOCKETS), no BTF, ...)
    unless O(fail_on_missing=false).
  - When no configuration file exists it falls back to runtime probes (the bpf sysctl,
    creating and closing an AF_XDP socket, the BTF file).
  - With O(probe_bpf) it also uses C(bpf()) for real, as the bench will. It loads a trivial
    XDP program, creates an XSKMAP and opens an AF_XDP socket. When the kernel refuses, the
    failure names the likely cause (a container's seccomp filter, a missing capability such
    as C(CAP_BPF), kernel lockdown, C(kernel.unprivileged_bpf_disabled) for a non-root user).
  - With O(probe_bpf) it also probes multi-buffer (jumbo frames) for real, in a network
    namespace of its own that vanishes with the probe process - attaching an
    C(xdp.frags) program to a veth with MTU 9000 (XDP multi-buffer) and binding an AF_XDP
    socket with C(XDP_USE_SG) (AF_XDP multi-buffer) - and reports both in RV(multi_buffer).
    When O(mtu) needs multi-buffer and either probe fails, that is missing, with what to do.
  - Read-only; never changes anything. A RLIMIT_MEMLOCK that cannot be raised is a warning.
author:
  - kbypass.xdp developers (@kbypass)
options:
  config_path:
    description:
      - Kernel configuration file to read instead of searching the usual places.
        Plain text or gzip-compressed.
    type: path
  min_kernel_version:
    description:
      - Oldest acceptable kernel, as C(major.minor[.patch]).
    type: str
    default: '5.10'
  require_btf:
    description:
      - Require kernel BTF (C(CONFIG_DEBUG_INFO_BTF) and C(/sys/kernel/btf/vmlinux)).
    type: bool
    default: true
  require_testbed:
    description:
      - Require network namespaces and veth, which the netns test bed needs. Hosts that only
        drive physical NICs can turn this off.
    type: bool
    default: true
  extra_options:
    description:
      - Further config options that must be C(y) or C(m), for example C(CONFIG_TUN).
    type: list
    elements: str
    default: []
  bpffs_path:
    description:
      - Where bpffs is expected; RV(bpffs_mounted) tells whether one is mounted there.
    type: path
    default: /sys/fs/bpf
  probe_bpf:
    description:
      - Load a trivial XDP program, create an XSKMAP and open an AF_XDP socket (each closed
        at once) to prove this process may use them. Turn off only to inspect a kernel config.
    type: bool
    default: true
  mtu:
    description:
      - The MTU the bench will use. When packets of this MTU do not fit one AF_XDP frame
        of O(frame_size) bytes (above 3818 for 4096-byte frames) the host needs XDP and
        AF_XDP multi-buffer, and a failed multi-buffer probe is listed in RV(missing).
      - Omit to only report the multi-buffer probes.
    type: int
    version_added: 0.3.0
  frame_size:
    description: The forwarder's UMEM frame size, for O(mtu).
    type: int
    choices: [2048, 4096]
    default: 4096
    version_added: 0.3.0
  fail_on_missing:
    description:
      - Fail when something is missing. With V(false) only report it in RV(missing).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: The module only reads; it behaves the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
notes:
  - Runs on Linux targets only. No third-party Python libraries are needed.
'''

EXAMPLES = r'''
- name: Fail early when the kernel cannot run AF_XDP
  kbypass.xdp.kernel_preflight:

- name: Only report, and also require TUN for the kernel reinjection mode
  kbypass.xdp.kernel_preflight:
    extra_options: [CONFIG_TUN]
    fail_on_missing: false
  register: kbypass_kernel

- name: A jumbo bed (MTU 9000) - fail with what to do unless multi-buffer works here
  kbypass.xdp.kernel_preflight:
    mtu: 9000

- name: Check a kernel config shipped next to an image
  kbypass.xdp.kernel_preflight:
    config_path: /srv/images/vmlinuz-6.6.config
    min_kernel_version: '6.1'
'''

RETURN = r'''
kernel_release:
  description: The running kernel release (C(uname -r)).
  returned: always
  type: str
  sample: 6.18.44-fc-v669
kernel_version:
  description: Major, minor and patch of the running kernel (empty when unparseable).
  returned: always
  type: list
  elements: int
  sample: [6, 18, 44]
config_source:
  description: The configuration file that was read, or null when none was found.
  returned: always
  type: str
  sample: /proc/config.gz
config:
  description: The values of the options this module looks at (C(n) = not set, null = absent).
  returned: always
  type: dict
  sample: {"CONFIG_BPF_SYSCALL": "y", "CONFIG_XDP_SOCKETS": "y", "CONFIG_XDP_SOCKETS_DIAG": "n"}
probes:
  description: Runtime probe results (true, false, or null when undecidable).
  returned: always
  type: dict
  sample: {"bpf_syscall": true, "xdp_sockets": true, "btf_vmlinux": true, "netns": true,
           "bpf_prog_load": true, "bpf_xskmap": true, "xdp_socket_open": true}
btf:
  description: Whether C(/sys/kernel/btf/vmlinux) exists.
  returned: always
  type: bool
bpffs_mounted:
  description: Whether a bpf filesystem is mounted at O(bpffs_path) in this mount namespace.
  returned: always
  type: bool
capabilities:
  description: Effective capabilities relevant to XDP work (null when unknown).
  returned: always
  type: dict
  sample: {"cap_bpf": true, "cap_net_admin": true, "cap_ipc_lock": true, "cap_sys_resource": false}
memlock:
  description: RLIMIT_MEMLOCK (bytes, -1 = unlimited) and whether raising it to unlimited works.
  returned: always
  type: dict
  sample: {"soft": 8388608, "hard": 8388608, "can_raise_to_unlimited": false}
missing:
  description: What the kernel lacks; empty when everything needed is there.
  returned: always
  type: list
  elements: dict
  sample: [{"item": "CONFIG_XDP_SOCKETS", "reason": "CONFIG_XDP_SOCKETS is not set in /boot/config-6.1.0"}]
multi_buffer:
  description:
    - Whether this kernel does XDP multi-buffer (C(xdp), an C(xdp.frags) program attached to
      a veth with MTU 9000) and AF_XDP multi-buffer (C(af_xdp), a bind with C(XDP_USE_SG));
      null when not probed (O(probe_bpf=false)) or the probe could not run (C(error) says why).
    - C(single_frame_mtu) is the largest MTU one O(frame_size) frame holds; C(needed) whether
      O(mtu) exceeds it; C(reasons) why a probe failed.
  returned: always
  type: dict
  version_added: 0.3.0
  sample: {"xdp": true, "af_xdp": true, "single_frame_mtu": 3818, "needed": true,
           "mtu": 9000, "reasons": {}, "error": null}
ok:
  description: True when RV(missing) is empty.
  returned: always
  type: bool
'''

import os
import resource

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kbypass.xdp.plugins.module_utils import _bpf
from ansible_collections.kbypass.xdp.plugins.module_utils import _kconfig as kc
from ansible_collections.kbypass.xdp.plugins.module_utils import _mbuf

REPORTED_OPTIONS = (
    'CONFIG_BPF', 'CONFIG_BPF_SYSCALL', 'CONFIG_BPF_JIT', 'CONFIG_XDP_SOCKETS',
    'CONFIG_XDP_SOCKETS_DIAG', 'CONFIG_DEBUG_INFO_BTF', 'CONFIG_NET_NS', 'CONFIG_VETH',
    'CONFIG_TUN', 'CONFIG_BPF_EVENTS', 'CONFIG_CGROUP_BPF',
)

# Names in RV(probes) of _bpf.probe_afxdp_steps()' steps.
BPF_PROBE_NAMES = {'prog_load': 'bpf_prog_load', 'xskmap': 'bpf_xskmap',
                   'xdp_socket': 'xdp_socket_open'}


def _limit(value):
    return -1 if value == resource.RLIM_INFINITY else value


def _read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ''


def _memlock():
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    try:
        # Only this short-lived module process is affected; nothing persists.
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        raised = True
    except (ValueError, OSError):
        raised = False
    return soft, hard, raised


def _container():
    """The container manager's name when we run in one (systemd's own convention)."""
    for path in ('/run/systemd/container', '/run/container_type'):
        name = _read_text(path).strip()
        if name:
            return name
    if os.path.exists('/.dockerenv'):
        return 'docker'
    return 'podman' if os.path.exists('/run/.containerenv') else None


def _bpf_context(status, capabilities):
    disabled = _read_text('/proc/sys/kernel/unprivileged_bpf_disabled').strip()
    return dict(
        euid=os.geteuid(),
        capabilities=capabilities,
        seccomp=kc.parse_status_field(status, 'Seccomp'),
        seccomp_filters=kc.parse_status_field(status, 'Seccomp_filters'),
        container=_container(),
        lockdown=kc.parse_lockdown(_read_text('/sys/kernel/security/lockdown')),
        unprivileged_bpf_disabled=int(disabled) if disabled.isdigit() else None,
    )


def _multi_buffer(params, run):
    """RV(multi_buffer), plus the missing items for O(mtu) under key 'missing'."""
    results = _mbuf.probe() if run else {}
    out = dict(xdp=None, af_xdp=None, reasons={}, error=results.get('error'), mtu=params['mtu'],
               single_frame_mtu=_mbuf.single_frame_mtu(params['frame_size']),
               needed=_mbuf.needs_multi_buffer(params['mtu'], params['frame_size']))
    for name, key in zip(_mbuf.PROBES, ('xdp', 'af_xdp')):
        if name in results:
            ok, err = results[name]
            out[key] = ok
            if not ok:
                out['reasons'][key] = _mbuf.refusal_cause(name, err)
    out['missing'] = _mbuf.missing_for_mtu(params['mtu'], params['frame_size'], results)
    if out['needed'] and out['error']:
        out['missing'].append({'item': 'multi-buffer probe', 'runtime': True, 'reason': (
            'MTU %d needs multi-buffer but the probe could not run (%s)'
            % (params['mtu'], out['error']))})
    return out


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config_path=dict(type='path'),
            min_kernel_version=dict(type='str', default='5.10'),
            require_btf=dict(type='bool', default=True),
            require_testbed=dict(type='bool', default=True),
            extra_options=dict(type='list', elements='str', default=[]),
            bpffs_path=dict(type='path', default='/sys/fs/bpf'),
            probe_bpf=dict(type='bool', default=True),
            mtu=dict(type='int'),
            frame_size=dict(type='int', choices=[2048, 4096], default=4096),
            fail_on_missing=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params

    try:
        min_version = kc.parse_min_version(params['min_kernel_version'])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    bad = [kc.option_name_error(name) for name in params['extra_options']]
    bad = [msg for msg in bad if msg]
    if bad:
        module.fail_json(msg='extra_options: ' + '; '.join(bad))
    if params['mtu'] is not None and not 68 <= params['mtu'] <= 65535:
        module.fail_json(msg='mtu %d is outside 68-65535' % params['mtu'])

    release = os.uname().release
    if params['config_path']:
        candidates = [params['config_path']]
        if not os.path.isfile(params['config_path']):
            module.fail_json(msg='config_path %s does not exist or is not a file'
                             % params['config_path'])
    else:
        candidates = kc.config_candidates(release)

    config = None
    config_source = None
    for path in candidates:
        if not os.path.isfile(path):
            continue
        try:
            config = kc.parse_kconfig(kc.read_config(path))
        except (OSError, EOFError, ValueError) as exc:
            if params['config_path']:
                module.fail_json(msg='cannot read kernel config %s: %s' % (path, exc))
            continue
        config_source = path
        break
    if config is not None and not config:
        module.fail_json(msg='%s contains no CONFIG_ lines; is it a kernel config?' % config_source)

    probes = kc.probe_all()
    missing, warnings = kc.evaluate(
        config, release, probes, min_version=min_version,
        require_btf=params['require_btf'], require_testbed=params['require_testbed'],
        extra_options=params['extra_options'], config_source=config_source)

    status = _read_text('/proc/self/status')
    capabilities = kc.capabilities_from_mask(kc.parse_cap_eff(status))
    soft, hard, raised = _memlock()
    if params['probe_bpf'] and probes.get('bpf_syscall') is not False:
        # After raising RLIMIT_MEMLOCK, as the bench does (kernels < 5.11 charge maps to it).
        steps = _bpf.probe_afxdp_steps()
        probes.update((BPF_PROBE_NAMES[step], err is None) for step, err in steps)
        missing.extend(kc.bpf_probe_missing(steps, _bpf_context(status, capabilities)))
    mbuf = _multi_buffer(params, params['probe_bpf'] and probes.get('bpf_syscall') is not False)
    probes.update((name, mbuf[key]) for name, key in zip(_mbuf.PROBES, ('xdp', 'af_xdp')))
    missing.extend(mbuf.pop('missing'))
    warnings.extend(kc.memlock_warnings(soft, hard, raised, capabilities))
    for warning in warnings:
        module.warn(warning)

    shown = dict((name, (config or {}).get(name)) for name in
                 sorted(set(REPORTED_OPTIONS) | set(params['extra_options'])))
    result = dict(
        changed=False,
        kernel_release=release,
        kernel_version=list(kc.parse_release(release) or []),
        config_source=config_source,
        config=shown,
        probes=probes,
        btf=bool(probes.get('btf_vmlinux')),
        bpffs_mounted=kc.bpffs_mounted(_read_text('/proc/mounts'), params['bpffs_path']),
        capabilities=capabilities,
        memlock=dict(soft=_limit(soft), hard=_limit(hard), can_raise_to_unlimited=raised),
        multi_buffer=mbuf,
        missing=missing,
        ok=not missing,
    )
    if missing and params['fail_on_missing']:
        module.fail_json(msg=kc.failure_message(release, missing), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
