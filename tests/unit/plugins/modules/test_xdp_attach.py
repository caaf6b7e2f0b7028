# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for kbypass.xdp.xdp_attach: validation, the pure plans, argument handling.

No kernel state is touched: plans take snapshot dicts, and the argument tests replace
the kernel-facing entry points with functions that fail the test if called.
"""
from __future__ import annotations


import pytest

from ansible_collections.kbypass.xdp.plugins.module_utils import _attach
from ansible_collections.kbypass.xdp.plugins.modules import xdp_attach as m
from module_main import run_main  # tests/unit/module_main.py

MAPS = {
    'xsks_map': {'id': 1, 'type': 'xskmap', 'key_size': 4, 'value_size': 4, 'max_entries': 64, 'flags': 0},
    'steer_ports': {'id': 2, 'type': 'array', 'key_size': 4, 'value_size': 1, 'max_entries': 65536, 'flags': 0},
    'steer_stats': {'id': 3, 'type': 'percpu_array', 'key_size': 4, 'value_size': 16, 'max_entries': 5, 'flags': 0},
}
FRESH = dict((k, dict(v, id=v['id'] + 100)) for k, v in MAPS.items())  # staging maps


def attached(mode='native', pid=10, tag='aa', name='xdp_steer', map_ids=(1, 2, 3)):
    return {'mode': mode, 'id': pid, 'tag': tag, 'name': name, 'map_ids': list(map_ids),
            'progs': {mode: pid}}


def current(att=None, pinned_id=10, maps='default', ports=(4242,)):
    maps = MAPS if maps == 'default' else maps
    return {'attached': att,
            'pinned_prog': {'id': pinned_id, 'tag': 'aa', 'name': 'xdp_steer'} if pinned_id else None,
            'pinned_maps': dict(maps) if maps else dict((k, None) for k in MAPS),
            'ports': list(ports) if ports is not None else None}


def desired(mode='native', tag='aa', ports=(4242,), force=False, maps=None):
    maps = FRESH if maps is None else maps
    return {'tag': tag, 'name': 'xdp_steer', 'mode': mode, 'ports': list(ports),
            'maps': dict(maps), 'force': force}


# ------------------------------------------------------------------ plan_present
def test_nothing_attached_first_time_fresh_maps():
    p = _attach.plan_present(current(None, pinned_id=None, maps=None, ports=None), desired())
    assert p['action'] == 'attach' and p['source'] == 'fresh' and p['ports'] and p['changed']


def test_same_program_same_mode_same_ports_is_no_change():
    p = _attach.plan_present(current(attached()), desired())
    assert p == dict(p, action='none', ports=False, changed=False, refuse=None)


def test_ports_only_change_keeps_program():
    p = _attach.plan_present(current(attached()), desired(ports=(4243, 4242)))
    assert p['action'] == 'none' and p['ports'] and p['changed']
    assert _attach.plan_present(current(attached(), ports=(4242, 4243)),
                                desired(ports=(4243, 4242, 4243)))['changed'] is False


def test_mode_switch_reuses_pinned_program():
    p = _attach.plan_present(current(attached('native')), desired('generic'))
    assert p['action'] == 'switch_mode' and p['source'] == 'pinned' and p['mode'] == 'generic'
    assert not p['ports']


def test_new_tag_same_mode_replaces_against_pinned_maps():
    p = _attach.plan_present(current(attached()), desired(tag='bb'))
    assert p['action'] == 'replace' and p['source'] == 'reload' and p['maps'] == 'reuse'
    assert not p['ports']
    assert any('tag differs' in r for r in p['reasons'])


def test_unknown_object_in_check_mode_is_a_replacement_against_pinned_maps():
    # check mode does not load an object whose hash differs from the pinned one: tag None
    p = _attach.plan_present(current(attached()), desired(tag=None, maps=MAPS))
    assert p['action'] == 'replace' and p['source'] == 'reload' and p['changed']
    assert any('content hash' in r for r in p['reasons'])


def test_incompatible_pinned_maps_get_fresh_maps():
    bad = dict(MAPS, xsks_map=dict(MAPS['xsks_map'], max_entries=32))
    p = _attach.plan_present(current(attached(), maps=bad), desired())
    assert p['action'] == 'replace' and p['source'] == 'fresh' and p['ports']
    missing = dict(MAPS, steer_stats=None)
    assert _attach.plan_present(current(attached(), maps=missing), desired())['source'] == 'fresh'


def test_attached_prog_not_using_pinned_maps_is_replaced():
    p = _attach.plan_present(current(attached(map_ids=(7, 8, 9))), desired())
    assert p['action'] == 'replace' and p['source'] == 'reload'


def test_foreign_program_refused_without_force():
    cur = current(attached(name='xdp_dispatcher', pid=99), pinned_id=None)
    p = _attach.plan_present(cur, desired())
    assert p['refuse'] and 'not ours' in p['refuse'] and 'force' in p['refuse']
    p = _attach.plan_present(cur, desired(force=True))
    assert p['refuse'] is None and p['action'] == 'replace'


def test_ours_by_pin_even_with_other_name():
    cur = current(attached(name='renamed', pid=10), pinned_id=10)
    assert _attach.plan_present(cur, desired())['refuse'] is None


def test_auto_keeps_mode_of_our_program():
    p = _attach.plan_present(current(attached('generic')), desired('auto'))
    assert p['action'] == 'none' and p['mode'] == 'generic' and not p['changed']
    p = _attach.plan_present(current(None, pinned_id=None, maps=None, ports=None), desired('auto'))
    assert p['action'] == 'attach' and p['mode'] == 'auto'


def test_multi_mode_refused():
    att = attached()
    att.update(mode='multi', progs={'native': 10, 'offload': 11})
    assert 'more than one' in _attach.plan_present(current(att), desired(force=True))['refuse']


# ------------------------------------------------------------------ plan_absent
def test_absent_detaches_ours_and_unpins():
    p = _attach.plan_absent(current(attached()), 'xdp_steer', False)
    assert p['detach'] and p['remove_pins'] and p['changed'] and not p['refuse']


def test_absent_nothing_there_is_no_change():
    p = _attach.plan_absent(current(None, pinned_id=None, maps=None), 'xdp_steer', False)
    assert not p['changed'] and not p['detach'] and not p['remove_pins']


def test_absent_refuses_foreign_unless_forced():
    cur = current(attached(name='other', pid=50), pinned_id=None, maps=None)
    p = _attach.plan_absent(cur, 'xdp_steer', False)
    assert p['refuse'] and not p['detach']
    assert _attach.plan_absent(cur, 'xdp_steer', True)['detach']


def test_absent_stale_pins_only():
    p = _attach.plan_absent(current(None), 'xdp_steer', False)
    assert p['remove_pins'] and not p['detach'] and p['changed']


def test_is_ours_truncates_long_names():
    assert _attach.is_ours({'id': 1, 'name': 'a_really_long_p'}, None, 'a_really_long_program')


# ------------------------------------------------------------------ validate
@pytest.mark.parametrize('kw, text', [
    ({'ports': [0]}, 'between 1 and 65535'),
    ({'ports': [70000]}, 'between 1 and 65535'),
    ({'ports': []}, 'at least one'),
    ({'interface': 'x' * 16}, 'at most 15'),
    ({'netns': 'a/b'}, 'invalid'),
    ({'pin_dir': 'relative/dir'}, 'absolute'),
    ({'interface': 'eth0.100'}, 'does not allow "."'),
    ({'program': ''}, 'program must name'),
])
def test_validate_rejects(kw, text):
    params = {'interface': 'veth0', 'netns': 'ns1', 'ports': [4242], 'state': 'present',
              'pin_dir': None, 'program': 'xdp_steer'}
    params.update(kw)
    errs = m.validate(params)
    assert errs and any(text in e for e in errs), errs


def test_validate_accepts_seed_and_absent_without_ports():
    base = {'interface': 'veth0', 'netns': 'ns1', 'ports': [4242], 'state': 'present',
            'pin_dir': None, 'program': 'xdp_steer'}
    assert m.validate(base) == []
    assert m.validate(dict(base, state='absent', ports=[])) == []
    assert m.validate(dict(base, interface='eth0.100', pin_dir='/sys/fs/bpf/kbypass/x/eth0_100')) == []


# ------------------------------------------------------------------ module arguments
@pytest.fixture
def no_kernel(monkeypatch):
    """Any attempt to reach the kernel fails the test."""
    def boom(*a, **k):
        raise AssertionError('the kernel must not be touched for bad input')
    monkeypatch.setattr(_attach._xdp, 'query', boom)
    monkeypatch.setattr(_attach._xdp, 'open_netlink', boom)
    monkeypatch.setattr(_attach.Attachment, 'present', boom)
    monkeypatch.setattr(_attach.Attachment, 'absent', boom)


@pytest.mark.parametrize('args, text', [
    ({'interface': 'veth0', 'ports': [0]}, 'between 1 and 65535'),
    ({'interface': 'veth0', 'mode': 'turbo'}, 'mode'),
    ({'interface': 'veth0', 'ports': ['abc']}, 'ports'),
    ({}, 'interface'),
    ({'interface': 'veth0', 'netns': '../etc'}, 'invalid'),
])
def test_bad_arguments_fail_before_kernel(args, text, no_kernel):
    out = run_main(m, args)
    assert out['failed'] and text in out['msg'], out


def test_missing_netns_fails_with_hint(no_kernel, monkeypatch):
    monkeypatch.setattr(m.os.path, 'exists', lambda p: False if p.startswith('/run/netns') else True)
    out = run_main(m, {'interface': 'veth0', 'netns': 'kbtbnone'})
    assert out['failed'] and 'does not exist' in out['msg']
