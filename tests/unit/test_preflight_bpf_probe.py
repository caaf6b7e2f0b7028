# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kernel_preflight's real bpf() probe: which cause the message names for a refusal.

The decision (module_utils/_kconfig.bpf_probe_missing) is pure and fed here with the errno
of each step and the process context. The probe itself runs for real in
tests/integration/test_toolchain.py (root here, and a non-root user) and in the fleet
scenario (a container under nspawn's default seccomp filter, molecule/fleet/prepare.yml).
"""
from __future__ import annotations

import errno
import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.kbypass.xdp.plugins.module_utils import _kconfig as kc
from ansible_collections.kbypass.xdp.plugins.modules import kernel_preflight as mod

ALL_CAPS = {'cap_bpf': True, 'cap_sys_admin': True, 'cap_net_admin': True,
            'cap_net_raw': True}
NO_CAPS = dict((name, False) for name in ALL_CAPS)
ROOT = dict(euid=0, capabilities=ALL_CAPS, seccomp=0, seccomp_filters=0, container=None,
            lockdown='none', unprivileged_bpf_disabled=2)
ALL_REFUSED = [('prog_load', errno.EPERM), ('xskmap', errno.EPERM),
               ('xdp_socket', None)]


def reason(steps, **ctx):
    [missing] = kc.bpf_probe_missing(steps, dict(ROOT, **ctx))
    assert missing['runtime'] is True
    return missing['reason']


def test_nothing_missing_when_every_step_works():
    steps = [('prog_load', None), ('xskmap', None), ('xdp_socket', None)]
    assert kc.bpf_probe_missing(steps, ROOT) == []


def test_container_seccomp_filter_is_named_with_the_fix():
    text = reason(ALL_REFUSED, seccomp=2, seccomp_filters=5, container='systemd-nspawn')
    assert text.startswith('loading a trivial XDP program with bpf(BPF_PROG_LOAD) failed '
                           'with EPERM')
    assert 'seccomp filter' in text and '5 filter(s)' in text
    assert 'this host runs in a container (systemd-nspawn)' in text
    assert "--system-call-filter='bpf perf_event_open'" in text
    assert 'also refused: creating an XSKMAP' in text
    assert 'erifier' not in text


def test_seccomp_outside_a_known_container_points_at_the_unit_or_runtime():
    text = reason(ALL_REFUSED, seccomp=2, seccomp_filters=1)
    assert 'a container runtime or systemd unit installed one' in text
    assert 'SystemCallFilter=bpf' in text


def test_non_root_with_unprivileged_bpf_disabled_is_told_to_become_root():
    text = reason(ALL_REFUSED, euid=1000, capabilities=NO_CAPS)
    assert 'runs as uid 1000 without CAP_BPF or CAP_SYS_ADMIN' in text
    assert 'kernel.unprivileged_bpf_disabled=2' in text
    assert 'become: true' in text
    assert 'seccomp' not in text


def test_non_root_without_the_sysctl_only_names_the_capability():
    text = reason(ALL_REFUSED, euid=1000, capabilities=NO_CAPS, unprivileged_bpf_disabled=0)
    assert 'unprivileged_bpf_disabled' not in text and 'CAP_BPF' in text


def test_root_without_capabilities_names_the_dropped_capability():
    text = reason(ALL_REFUSED, capabilities=dict(ALL_CAPS, cap_bpf=False, cap_sys_admin=False),
                  seccomp=2)
    assert 'runs as root but lacks CAP_BPF or CAP_SYS_ADMIN' in text
    assert '--capability=all' in text
    # The capability is checked first: a filter is there in every container.
    assert 'seccomp filter' not in text


def test_cap_sys_admin_alone_is_privileged_enough():
    text = reason(ALL_REFUSED, capabilities=dict(ALL_CAPS, cap_bpf=False), seccomp=2)
    assert 'seccomp filter' in text


def test_lockdown_is_named_when_nothing_else_explains_it():
    text = reason(ALL_REFUSED, lockdown='confidentiality')
    assert 'kernel lockdown is in confidentiality mode' in text


def test_privileged_unfiltered_unlocked_refusal_points_at_an_lsm():
    assert 'security module' in reason(ALL_REFUSED)


def test_missing_syscall_and_missing_af_xdp_name_the_kernel_option():
    assert 'CONFIG_BPF_SYSCALL' in reason([('prog_load', errno.ENOSYS)])
    text = reason([('prog_load', None), ('xskmap', errno.EINVAL),
                   ('xdp_socket', errno.EAFNOSUPPORT)])
    assert text.startswith('creating an XSKMAP') and 'CONFIG_XDP_SOCKETS' in text
    assert 'also refused: opening an AF_XDP socket' in text


def test_af_xdp_socket_needs_cap_net_raw():
    text = reason([('prog_load', None), ('xskmap', None), ('xdp_socket', errno.EPERM)],
                  capabilities=dict(ALL_CAPS, cap_net_raw=False))
    assert 'lacks CAP_NET_RAW' in text


def test_other_errno_is_reported_as_is():
    assert 'the kernel answered ENOMEM' in reason([('prog_load', errno.ENOMEM)])


def test_failure_message_separates_kernel_build_from_runtime_refusal():
    runtime = kc.bpf_probe_missing(ALL_REFUSED, dict(ROOT, seccomp=2))
    msg = kc.failure_message('6.1.0', runtime)
    assert msg.startswith('This host refuses what the bench needs from bpf():')
    assert 'Boot a kernel' not in msg
    both = [{'item': 'CONFIG_XDP_SOCKETS', 'reason': 'CONFIG_XDP_SOCKETS is not set'}] + runtime
    msg = kc.failure_message('6.1.0', both)
    assert msg.startswith('Kernel 6.1.0 lacks') and 'This host refuses' in msg


@pytest.mark.parametrize('text, expected', [
    ('none [integrity] confidentiality\n', 'integrity'),
    ('[none] integrity confidentiality\n', 'none'),
    ('', None),
])
def test_parse_lockdown(text, expected):
    assert kc.parse_lockdown(text) == expected


def test_parse_status_field():
    status = 'Name:\tpython3\nSeccomp:\t2\nSeccomp_filters:\t5\n'
    assert kc.parse_status_field(status, 'Seccomp') == 2
    assert kc.parse_status_field(status, 'Seccomp_filters') == 5
    assert kc.parse_status_field(status, 'NoNewPrivs') is None


def test_module_fails_with_the_cause_when_the_probe_is_refused(capsys, monkeypatch):
    """The module wires probe -> context -> message (the probe is replaced: refusing bpf()
    for real takes a container, see the fleet scenario)."""
    monkeypatch.setattr(mod._bpf, 'probe_afxdp_steps', lambda: ALL_REFUSED)
    monkeypatch.setattr(mod, '_bpf_context', lambda status, caps: dict(
        ROOT, seccomp=2, seccomp_filters=3, container='docker'))
    with patch_module_args({}):
        with pytest.raises(SystemExit):
            mod.main()
    res = json.loads(capsys.readouterr().out)
    assert res['failed'] and res['ok'] is False
    assert res['probes']['bpf_prog_load'] is False and res['probes']['xdp_socket_open'] is True
    assert 'this host runs in a container (docker)' in res['msg']


def test_module_skips_the_probe_when_asked(capsys, monkeypatch):
    def refuse():
        raise AssertionError('probe ran although probe_bpf=false')
    monkeypatch.setattr(mod._bpf, 'probe_afxdp_steps', refuse)
    with patch_module_args({'probe_bpf': False, 'fail_on_missing': False}):
        with pytest.raises(SystemExit):
            mod.main()
    res = json.loads(capsys.readouterr().out)
    assert 'bpf_prog_load' not in res['probes']
