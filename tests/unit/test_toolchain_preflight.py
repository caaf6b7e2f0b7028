# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the kernel preflight: config/release parsing and the decision function
in module_utils/_kconfig.py, and kbypass.xdp.kernel_preflight's input handling.

The module runs in-process with patch_module_args; config files are written to tmp_path.
Running it against the real kernel is tests/integration/test_toolchain.py.
"""
from __future__ import annotations

import gzip
import json
import resource

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.kbypass.xdp.plugins.module_utils import _kconfig as kc
from ansible_collections.kbypass.xdp.plugins.modules import kernel_preflight as mod

GOOD_CONFIG = """\
#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.18.44 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14) 12.2.0"
CONFIG_BPF=y
CONFIG_HAVE_EBPF_JIT=y
CONFIG_BPF_SYSCALL=y
CONFIG_BPF_JIT=y
CONFIG_NET_NS=y
CONFIG_XDP_SOCKETS=y
# CONFIG_XDP_SOCKETS_DIAG is not set
CONFIG_VETH=m
CONFIG_TUN=y
CONFIG_DEBUG_INFO_BTF=y
CONFIG_LOG_BUF_SHIFT=17
"""
ALL_PROBES_OK = {'bpf_syscall': True, 'xdp_sockets': True, 'btf_vmlinux': True, 'netns': True}


def cfg(text=GOOD_CONFIG, drop=(), **override):
    config = kc.parse_kconfig(text)
    for name in drop:
        config.pop(name, None)
    config.update(override)
    return config


def items(missing):
    return [m['item'] for m in missing]


# ------------------------------------------------------------------ parsing
def test_parse_kconfig_values_unset_and_strings():
    config = kc.parse_kconfig(GOOD_CONFIG)
    assert config['CONFIG_BPF_SYSCALL'] == 'y'
    assert config['CONFIG_VETH'] == 'm'
    assert config['CONFIG_XDP_SOCKETS_DIAG'] == 'n'
    assert config['CONFIG_LOG_BUF_SHIFT'] == '17'
    assert config['CONFIG_CC_VERSION_TEXT'] == 'gcc (Debian 12.2.0-14) 12.2.0'
    assert 'CONFIG_PKTGEN' not in config
    # comments that are not "is not set" lines are ignored
    assert all(k.startswith('CONFIG_') for k in config)


def test_parse_kconfig_tolerates_crlf_and_garbage():
    config = kc.parse_kconfig('garbage\r\nCONFIG_A=y\r\n# CONFIG_B is not set\r\n=y\n')
    assert config == {'CONFIG_A': 'y', 'CONFIG_B': 'n'}


@pytest.mark.parametrize('release,expected', [
    ('6.18.44-fc-v669', (6, 18, 44)),
    ('5.10.0-23-amd64', (5, 10, 0)),
    ('6.1', (6, 1, 0)),
    ('4.19.0+', (4, 19, 0)),
    ('5.14.0-362.8.1.el9_3.x86_64', (5, 14, 0)),
    ('weird', None),
    ('', None),
])
def test_parse_release(release, expected):
    assert kc.parse_release(release) == expected


def test_parse_min_version():
    assert kc.parse_min_version('5.10') == (5, 10)
    assert kc.parse_min_version(' 6.1.2 ') == (6, 1, 2)
    for bad in ('5.x', '', '5..10', '1.2.3.4', 'v5.10'):
        with pytest.raises(ValueError, match='not a version'):
            kc.parse_min_version(bad)


def test_option_name_error():
    assert kc.option_name_error('CONFIG_TUN') is None
    assert 'CONFIG_TUN' in kc.option_name_error('TUN')
    assert kc.option_name_error('CONFIG_tun') is not None


def test_capabilities_from_status():
    # CapEff of root without CAP_SYS_RESOURCE (bit 24) but with CAP_BPF (bit 39)
    mask = (1 << 41) - 1 & ~(1 << 24)
    status = 'Name:\tpython\nCapInh:\t0\nCapEff:\t%016x\n' % mask
    caps = kc.capabilities_from_mask(kc.parse_cap_eff(status))
    assert caps['cap_bpf'] and caps['cap_ipc_lock'] and caps['cap_net_admin']
    assert caps['cap_sys_resource'] is False
    assert kc.parse_cap_eff('Name: x\n') is None
    assert set(kc.capabilities_from_mask(None).values()) == {None}


def test_bpffs_mounted_matches_exact_mountpoint_and_type():
    mounts = ('sysfs /sys sysfs rw 0 0\n'
              'bpf /sys/fs/bpffoo bpf rw 0 0\n'
              'tmpfs /sys/fs/bpf tmpfs rw 0 0\n')
    assert not kc.bpffs_mounted(mounts)
    assert kc.bpffs_mounted(mounts + 'none /sys/fs/bpf bpf rw,relatime 0 0\n')


def test_read_config_plain_and_gzip(tmp_path):
    plain = tmp_path / 'config'
    plain.write_text(GOOD_CONFIG)
    packed = tmp_path / 'config.gz'
    packed.write_bytes(gzip.compress(GOOD_CONFIG.encode()))
    assert kc.read_config(str(plain)) == kc.read_config(str(packed)) == GOOD_CONFIG


# ------------------------------------------------------------------ decision
def test_evaluate_good_kernel_has_nothing_missing():
    missing, warnings = kc.evaluate(cfg(), '6.18.44', ALL_PROBES_OK, config_source='/proc/config.gz')
    assert missing == []
    assert warnings == []


def test_evaluate_names_missing_xdp_sockets_and_source():
    missing, _w = kc.evaluate(cfg(drop=['CONFIG_XDP_SOCKETS']), '6.1.0', ALL_PROBES_OK,
                              config_source='/boot/config-6.1.0')
    assert items(missing) == ['CONFIG_XDP_SOCKETS']
    assert 'not set in /boot/config-6.1.0' in missing[0]['reason']
    assert 'AF_XDP' in missing[0]['reason']


def test_evaluate_reports_every_missing_item_at_once():
    config = cfg(drop=['CONFIG_BPF_SYSCALL'], CONFIG_XDP_SOCKETS='n', CONFIG_DEBUG_INFO_BTF='n',
                 CONFIG_NET_NS='n')
    missing, _w = kc.evaluate(config, '4.19.0', ALL_PROBES_OK)
    assert items(missing) == ['kernel >= 5.10', 'CONFIG_BPF_SYSCALL', 'CONFIG_XDP_SOCKETS',
                              'CONFIG_DEBUG_INFO_BTF', 'CONFIG_NET_NS']
    msg = kc.failure_message('4.19.0', missing)
    for item in ('5.10', 'CONFIG_BPF_SYSCALL', 'CONFIG_XDP_SOCKETS', 'CONFIG_DEBUG_INFO_BTF',
                 'CONFIG_NET_NS', '4.19.0'):
        assert item in msg


@pytest.mark.parametrize('release,min_version,too_old', [
    ('5.9.16', (5, 10), True),
    ('5.10.0', (5, 10), False),
    ('5.4.0', (5, 10), True),
    ('6.0.0', (5, 10), False),
    ('6.1.10', (6, 1, 11), True),
    ('6.1.11', (6, 1, 11), False),
    ('10.0', (5, 10), False),
])
def test_evaluate_kernel_version_boundary(release, min_version, too_old):
    missing, _w = kc.evaluate(cfg(), release, ALL_PROBES_OK, min_version=min_version)
    assert (items(missing)[:1] == ['kernel >= %s' % '.'.join(map(str, min_version))]) is too_old


def test_evaluate_unparseable_release_only_warns():
    missing, warnings = kc.evaluate(cfg(), 'custom', ALL_PROBES_OK)
    assert missing == []
    assert any('cannot tell the kernel version' in w for w in warnings)


def test_evaluate_builtin_required_where_module_is_not_enough():
    missing, _w = kc.evaluate(cfg(CONFIG_XDP_SOCKETS='m', CONFIG_VETH='m'), '6.1', ALL_PROBES_OK)
    assert items(missing) == ['CONFIG_XDP_SOCKETS']
    assert '=m' in missing[0]['reason']


def test_evaluate_switches():
    config = cfg(CONFIG_DEBUG_INFO_BTF='n', CONFIG_VETH='n')
    probes = dict(ALL_PROBES_OK, btf_vmlinux=False)
    missing, _w = kc.evaluate(config, '6.1', probes)
    assert items(missing) == ['CONFIG_DEBUG_INFO_BTF', 'CONFIG_VETH']
    missing, _w = kc.evaluate(config, '6.1', probes, require_btf=False, require_testbed=False)
    assert missing == []


def test_evaluate_btf_file_missing_although_configured():
    missing, _w = kc.evaluate(cfg(), '6.1', dict(ALL_PROBES_OK, btf_vmlinux=False))
    assert items(missing) == [kc.BTF_VMLINUX]


def test_evaluate_extra_options():
    missing, _w = kc.evaluate(cfg(drop=['CONFIG_TUN']), '6.1', ALL_PROBES_OK,
                              extra_options=['CONFIG_TUN', 'CONFIG_VETH'])
    assert items(missing) == ['CONFIG_TUN']
    assert 'requested by the caller' in missing[0]['reason']


def test_evaluate_recommended_only_warns():
    missing, warnings = kc.evaluate(cfg(drop=['CONFIG_BPF_JIT', 'CONFIG_TUN']), '6.1', ALL_PROBES_OK)
    assert missing == []
    assert any('CONFIG_BPF_JIT' in w for w in warnings)
    assert any('CONFIG_TUN' in w for w in warnings)


def test_evaluate_without_config_uses_probes():
    probes = {'bpf_syscall': True, 'xdp_sockets': False, 'btf_vmlinux': True, 'netns': True}
    missing, warnings = kc.evaluate(None, '6.1', probes)
    assert items(missing) == ['CONFIG_XDP_SOCKETS']
    assert 'probe failed' in missing[0]['reason']
    # CONFIG_BPF and CONFIG_VETH have no probe: assumed present, with a warning each
    assert any('CONFIG_VETH' in w for w in warnings)
    assert any(w.startswith('no kernel config found and no probe for CONFIG_BPF ') for w in warnings)


def test_evaluate_without_config_undecidable_probe_warns():
    probes = dict(ALL_PROBES_OK, xdp_sockets=None)
    missing, warnings = kc.evaluate(None, '6.1', probes)
    assert missing == []
    assert any('CONFIG_XDP_SOCKETS' in w for w in warnings)


def test_memlock_warnings():
    inf = resource.RLIM_INFINITY
    assert kc.memlock_warnings(8 << 20, 8 << 20, True, {'cap_ipc_lock': True}) == []
    [warn] = kc.memlock_warnings(8 << 20, 8 << 20, False, {'cap_ipc_lock': True})
    assert '8388608 bytes' in warn and 'CAP_IPC_LOCK is present' in warn
    [warn] = kc.memlock_warnings(65536, inf, False, {'cap_ipc_lock': False})
    assert 'without CAP_IPC_LOCK' in warn and 'hard unlimited' in warn


# ------------------------------------------------------------------ module input handling
def run_main(capsys, **args):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            mod.main()
    return json.loads(capsys.readouterr().out)


def test_main_rejects_bad_min_version(capsys):
    res = run_main(capsys, min_kernel_version='five')
    assert res['failed'] and 'not a version like "5.10"' in res['msg']


def test_main_rejects_bad_extra_option(capsys):
    res = run_main(capsys, extra_options=['CONFIG_TUN', 'tun'])
    assert res['failed'] and "'tun' is not a kernel config option name" in res['msg']


def test_main_rejects_missing_config_path(capsys, tmp_path):
    res = run_main(capsys, config_path=str(tmp_path / 'nope'))
    assert res['failed'] and 'does not exist' in res['msg']


def test_main_rejects_file_that_is_not_a_config(capsys, tmp_path):
    path = tmp_path / 'motd'
    path.write_text('hello\n')
    res = run_main(capsys, config_path=str(path))
    assert res['failed'] and 'no CONFIG_ lines' in res['msg']


def test_main_reports_without_failing_when_asked(capsys, tmp_path):
    path = tmp_path / 'config.gz'
    path.write_bytes(gzip.compress(GOOD_CONFIG.replace('CONFIG_XDP_SOCKETS=y', '').encode()))
    res = run_main(capsys, config_path=str(path), fail_on_missing=False)
    assert not res.get('failed') and res['changed'] is False and res['ok'] is False
    assert res['config_source'] == str(path)
    assert res['config']['CONFIG_XDP_SOCKETS'] is None
    assert 'CONFIG_XDP_SOCKETS' in items(res['missing'])
