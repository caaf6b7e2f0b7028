# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for module_utils/_bpf.py and _xdp.py pure helpers (no bpf syscalls here;
the syscall paths are exercised against the real kernel in tests/integration)."""
from __future__ import annotations

import hashlib
import os
import re

from ansible_collections.kbypass.xdp.plugins.module_utils import _bpf, _xdp


def test_loadall_cmd_fresh_and_reuse():
    cmd = _bpf.bpftool_loadall_cmd('/usr/sbin/bpftool', '/o/x.o', '/p/progs', pinmaps_dir='/p')
    assert cmd == ['/usr/sbin/bpftool', '-d', 'prog', 'loadall', '/o/x.o', '/p/progs',
                   'type', 'xdp', 'pinmaps', '/p']
    cmd = _bpf.bpftool_loadall_cmd('bpftool', 'x.o', '/s/r',
                                   reuse_maps={'xsks_map': '/d/xsks_map', 'steer_ports': '/d/steer_ports'})
    assert cmd[cmd.index('map'):] == ['map', 'name', 'steer_ports', 'pinned', '/d/steer_ports',
                                      'map', 'name', 'xsks_map', 'pinned', '/d/xsks_map']
    assert 'pinmaps' not in cmd


def test_verifier_log_extracts_the_log():
    err = '\n'.join([
        'libbpf: loading x.o', "libbpf: elf: section(3) xdp, size 48",
        "libbpf: prog 'xdp_steer': BPF program load failed: Permission denied",
        "libbpf: prog 'xdp_steer': -- BEGIN PROG LOAD LOG --",
        '1: (71) r1 = *(u8 *)(r1 +12)',
        'invalid access to packet, off=12 size=1, R1(id=0,off=12,r=0)',
        '-- END PROG LOAD LOG --',
        "libbpf: prog 'xdp_steer': failed to load: -13",
        'Error: failed to load object file',
        'Warning: bpftool is now running in libbpf strict mode',
    ])
    log = _bpf.verifier_log(err)
    assert log.startswith('1: (71)') and 'invalid access to packet' in log
    assert 'Error: failed to load object file' in log
    assert 'section(3)' not in log and 'strict mode' not in log


def test_verifier_log_without_markers_keeps_errors():
    log = _bpf.verifier_log("libbpf: elf: noise\nlibbpf: failed to open x.o: No such file\nError: x")
    assert 'noise' not in log and 'No such file' in log


def test_steer_delta_before_then_after():
    before = {'seen': {'packets': 4, 'bytes': 400}}
    after = {'seen': {'packets': 10, 'bytes': 1000}, 'passed': {'packets': 3, 'bytes': 30}}
    assert _bpf.steer_delta(before, after) == {'seen': 6, 'matched': 0, 'redirected': 0,
                                               'redirect_missed': 0, 'passed': 3}
    assert _bpf.steer_delta(None, after) is None and _bpf.steer_delta(before, None) is None
    assert _bpf.steer_delta({'matched': 1}, {'matched': 3})['matched'] == 2


def test_counter_names_follow_the_c_enum():
    """STEER_COUNTERS[i] must be the counter the program increments at index i: the enum
    steer_counter in files/bpf/steer_maps.h (the steering program's maps) is the source,
    Python reads by position."""
    src = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'files', 'bpf',
                       'steer_maps.h')
    with open(src) as f:
        body = re.search(r'enum steer_counter\s*{([^}]*)}', f.read()).group(1)
    enum = {}
    for name, value in re.findall(r'STEER_(\w+)\s*=\s*(\d+)', body):
        enum[int(value)] = name.lower()
    assert 'STEER_NR_COUNTERS' in body
    assert tuple(enum[i] for i in sorted(enum)) == _bpf.STEER_COUNTERS
    assert sorted(enum) == list(range(len(_bpf.STEER_COUNTERS)))


def test_bpffs_error_on_plain_fs(tmp_path):
    msg = _bpf.bpffs_error(str(tmp_path / 'a' / 'b'))
    assert msg and 'mount -t bpf bpf /sys/fs/bpf' in msg and str(tmp_path) in msg


def test_remove_pins_stops_at_root(tmp_path):
    # plain files stand in for pins: remove_pins only unlinks and rmdirs
    root = tmp_path / 'kbypass'
    d = root / 'ns1' / 'veth0'
    d.mkdir(parents=True)
    for n in ('prog', 'xsks_map', 'steer_ports', 'steer_stats'):
        (d / n).write_text('')
    (root / 'ns1' / 'veth9').mkdir()
    removed = _bpf.remove_pins(str(d), stop_at=str(root))
    assert str(d / 'prog') in removed and not d.exists()
    assert (root / 'ns1').exists() and root.exists()   # sibling kept it, root never removed


def test_possible_cpus_positive():
    assert _bpf.possible_cpus() >= os.cpu_count() >= 1


def test_parse_xdp_modes():
    assert _xdp.parse_xdp([]) == {'mode': None, 'prog_id': None, 'progs': {}}
    assert _xdp.parse_xdp([('IFLA_XDP_ATTACHED', None)])['mode'] is None
    got = _xdp.parse_xdp([('IFLA_XDP_DRV_PROG_ID', 7), ('IFLA_XDP_ATTACHED', 'xdp'),
                          ('IFLA_XDP_PROG_ID', 7)])
    assert got == {'mode': 'native', 'prog_id': 7, 'progs': {'native': 7}}
    got = _xdp.parse_xdp([('IFLA_XDP_ATTACHED', 'xdpgeneric'), ('IFLA_XDP_PROG_ID', 9)])
    assert got['mode'] == 'generic' and got['prog_id'] == 9
    got = _xdp.parse_xdp([('IFLA_XDP_DRV_PROG_ID', 7), ('IFLA_XDP_HW_PROG_ID', 8),
                          ('IFLA_XDP_ATTACHED', 'xdpmulti')])
    assert got['mode'] == 'multi' and got['progs'] == {'native': 7, 'offload': 8}


def test_explain_messages():
    assert 'no native XDP support' in _xdp.explain(95, 'native')
    assert 'cannot offload' in _xdp.explain(22, 'offload')
    assert 'coexist' in _xdp.explain(17, 'generic')
    assert _xdp.explain(16, 'native').startswith('failed to attach')
    assert 'detach' in _xdp.explain(1, 'native', detach=True)


def test_set_xdp_encodes_replace_and_expected_fd():
    calls = []

    class FakeIpr(object):
        def link(self, cmd, **kw):
            calls.append((cmd, kw))

    _xdp.replace(FakeIpr(), 3, 11, 'native', 12)
    _xdp.detach(FakeIpr(), 3, 'generic', expected_fd=11)
    _xdp.set_xdp(FakeIpr(), 3, 11, 'generic', noexist=True)
    attrs = [dict(c[1]['xdp']['attrs']) for c in calls]
    assert attrs[0] == {'IFLA_XDP_FD': 11, 'IFLA_XDP_FLAGS': 4 | 16, 'IFLA_XDP_EXPECTED_FD': 12}
    assert attrs[1] == {'IFLA_XDP_FD': -1, 'IFLA_XDP_FLAGS': 2 | 16, 'IFLA_XDP_EXPECTED_FD': 11}
    assert attrs[2] == {'IFLA_XDP_FD': 11, 'IFLA_XDP_FLAGS': 2 | 1}


class _ScriptedIpr(object):
    """Netlink stand-in that fails the calls whose IFLA_XDP_FLAGS match ``fail_flags``."""

    def __init__(self, fail_flags, code):
        self.fail_flags, self.code, self.calls = fail_flags, code, []

    def link(self, cmd, **kw):
        attrs = dict(kw['xdp']['attrs'])
        self.calls.append(attrs)
        if attrs['IFLA_XDP_FLAGS'] in self.fail_flags:
            raise _xdp.NetlinkError(self.code)


def test_auto_falls_back_to_generic_only_on_eopnotsupp():
    ipr = _ScriptedIpr({4 | 1}, 95)
    assert _xdp.attach(ipr, 3, 11, 'auto') == 'generic'
    assert [c['IFLA_XDP_FLAGS'] for c in ipr.calls] == [4 | 1, 2 | 1]
    ipr = _ScriptedIpr({4 | 1}, 16)  # EBUSY is not "no native support": no fallback
    try:
        _xdp.attach(ipr, 3, 11, 'auto')
        raise AssertionError('expected XdpError')
    except _xdp.XdpError as e:
        assert e.errno == 16 and len(ipr.calls) == 1


def test_switch_mode_puts_old_program_back_when_attach_fails():
    ipr = _ScriptedIpr({2 | 1}, 22)  # generic attach fails
    try:
        _xdp.switch_mode(ipr, 3, 11, 'generic', 12, 'native')
        raise AssertionError('expected XdpError')
    except _xdp.XdpError:
        pass
    assert ipr.calls[0] == {'IFLA_XDP_FD': -1, 'IFLA_XDP_FLAGS': 4 | 16, 'IFLA_XDP_EXPECTED_FD': 12}
    assert ipr.calls[-1] == {'IFLA_XDP_FD': 12, 'IFLA_XDP_FLAGS': 4 | 1}


def test_sweep_staging_removes_only_old_staging_dirs(tmp_path):
    old = tmp_path / 'staging_old'
    (old / 'progs').mkdir(parents=True)
    (old / 'progs' / 'xdp_steer').write_text('')
    (old / 'xsks_map').write_text('')
    new = tmp_path / 'staging_new'
    new.mkdir()
    other = tmp_path / 'veth0'
    other.mkdir()
    os.utime(str(old), (1000, 1000))
    os.utime(str(other), (1000, 1000))
    removed = _bpf.sweep_staging(str(tmp_path), max_age=600, now=5000)
    assert removed == [str(old)]
    assert not old.exists() and new.exists() and other.exists()
    assert _bpf.sweep_staging(str(tmp_path / 'missing')) == []


def test_object_digest_recorded_beside_pins(tmp_path):
    obj = tmp_path / 'o.o'
    obj.write_bytes(b'\x7fELF object')
    digest = _bpf.object_digest(str(obj))
    assert digest == hashlib.sha256(b'\x7fELF object').hexdigest()
    pins = tmp_path / 'pins'
    pins.mkdir()
    assert _bpf.pinned_digest(str(pins)) is None
    _bpf.record_digest(str(pins), digest)
    assert _bpf.pinned_digest(str(pins)) == digest
    _bpf.record_digest(str(pins), 'ab' * 32)  # a new object replaces the mark
    assert os.listdir(str(pins)) == [_bpf.DIGEST_PREFIX + 'ab' * 32]
    assert _bpf.remove_pins(str(pins)) == [str(pins)]  # the mark goes with the pins


def test_owner_mark_round_trip_and_mismatch(tmp_path):
    d = str(tmp_path)
    assert _bpf.pinned_owner(d) is None and _bpf.owner_error(d, 'ns1', 'veth0') is None
    _bpf.record_owner(d, 'ns1', 'veth0')
    assert _bpf.pinned_owner(d) == ('ns1', 'veth0')
    assert _bpf.owner_error(d, 'ns1', 'veth0') is None
    assert 'holds the pins of veth0 in netns ns1, not of eth0 in the root namespace' in \
        _bpf.owner_error(d, None, 'eth0')
    _bpf.record_owner(d, None, 'a.b')      # re-marking replaces the mark, dots are encoded
    assert _bpf.pinned_owner(d) == (None, 'a.b') and '.' not in ''.join(os.listdir(d))
    _bpf.record_digest(d, 'ab' * 32)
    assert _bpf.pinned_digest(d) == 'ab' * 32 and _bpf.pinned_owner(d) == (None, 'a.b')
