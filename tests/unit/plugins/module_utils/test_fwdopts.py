# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The forwarder option table and everything derived from it: the module's spec, its
documentation, the forwarder role's argument specs and the table in docs/contracts.md.
(tests/integration/test_forwarder_options.py holds it against the real binary.)"""
from __future__ import annotations

import os
import re

import pytest
import yaml

from ansible_collections.kbypass.xdp.plugins.module_utils import _fwdopts as fo
from ansible_collections.kbypass.xdp.plugins.modules import afxdp_forwarder as mod

ROOT = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..')


def test_module_spec_comes_from_the_table():
    for name, entry in fo.argument_spec().items():
        assert mod.ARGUMENT_SPEC[name] == entry, name


def test_module_documentation_states_each_range_and_type():
    doc = yaml.safe_load(mod.DOCUMENTATION)['options']
    for o in fo.OPTIONS:
        text = ' '.join(doc[o.name]['description']) if isinstance(
            doc[o.name]['description'], list) else doc[o.name]['description']
        assert doc[o.name]['type'] == o.kind, o.name
        assert fo.range_text(o) in text, (o.name, text)


def test_role_argument_specs_state_each_range_and_type():
    with open(os.path.join(ROOT, 'roles', 'forwarder', 'meta', 'argument_specs.yml')) as f:
        spec = yaml.safe_load(f)
    inst = spec['argument_specs']['main']['options']['forwarder_instances']['options']
    for o in fo.OPTIONS:
        assert inst[o.name]['type'] == o.kind, o.name
        assert fo.range_text(o) in inst[o.name]['description'], o.name
        # multi_buffer has no default there: omitted, forwarder_multi_buffer decides (auto)
        if (o.kind == 'bool' or o.always) and o.name != 'multi_buffer':
            assert inst[o.name]['default'] == o.default, o.name


def test_contracts_table_is_generated_from_the_table():
    with open(os.path.join(ROOT, 'docs', 'contracts.md')) as f:
        text = f.read()
    m = re.search(r'<!-- fwdopts:begin -->\n(.*?)\n<!-- fwdopts:end -->', text, re.S)
    assert m, 'docs/contracts.md lost its fwdopts markers'
    assert m.group(1) == fo.contracts_table(), (
        'docs/contracts.md is out of date; paste the output of '
        '_fwdopts.contracts_table() between the markers')


@pytest.mark.parametrize('params, needle', [
    ({'batch_size': 0}, 'batch_size must be 1-1024, got 0'),
    ({'batch_size': 1025}, 'batch_size must be 1-1024, got 1025'),
    ({'rx_ring_size': 32}, 'rx_ring_size must be 64-32768, a power of two, got 32'),
    ({'rx_ring_size': 65536}, 'rx_ring_size must be 64-32768'),
    ({'fill_ring_size': 96}, 'fill_ring_size must be a power of two'),
    ({'frame_size': 3072}, 'frame_size must be a power of two (2048 or 4096)'),
    ({'num_frames': 1048577}, 'num_frames must be 256-1048576'),
    ({'stats_interval': 0.04}, 'stats_interval must be 0.05-3600, got 0.04'),
    ({'busy_poll_budget': 0, 'busy_poll': True}, 'busy_poll_budget must be 1-65535'),
    ({'busy_poll_usec': 5}, 'busy_poll_usec needs busy_poll: true'),
    ({'batch_size': 1024, 'num_frames': 2047}, 'num_frames (2047) must be at least 2 x batch'),
    ({'batch_size': 1024, 'num_frames': 2048}, None),
    ({'batch_size': 256, 'num_frames': 511}, 'num_frames (511) must be at least 2 x batch_size'),
    ({'rx_ring_size': 64, 'batch_size': 128}, 'rx_ring_size (64) must be at least batch_size'),
    ({'tx_ring_size': 64}, None),  # the default batch (64) fits
])
def test_errors(params, needle):
    errs = fo.errors(params)
    if needle is None:
        assert errs == []
    else:
        assert any(needle in e for e in errs), errs


def test_argv_order_and_switches():
    assert fo.argv({'stats_interval': 1.0, 'need_wakeup': True, 'busy_poll': False}) == [
        '--interval', '1']
    assert fo.argv({'batch_size': 32, 'need_wakeup': False, 'busy_poll': True,
                    'busy_poll_usec': 0, 'stats_interval': 0.05}) == [
        '--batch', '32', '--no-need-wakeup', '--busy-poll', '--busy-poll-usec', '0',
        '--interval', '0.05']
    # a value whose switch is off is not passed
    assert fo.argv({'busy_poll_usec': 20, 'busy_poll': False}) == []


def test_range_text():
    assert [fo.range_text(fo.BY_NAME[n]) for n in ('frame_size', 'rx_ring_size', 'tap')] == [
        '2048 or 4096', '64-32768, a power of two', '']


def test_multi_buffer_is_a_switch_off_by_default():
    assert fo.BY_NAME['multi_buffer'].default is False
    assert fo.argv({'multi_buffer': True, 'stats_interval': 1.0}) == [
        '--multi-buffer', '--interval', '1']
    assert fo.argv({'multi_buffer': False}) == []
    assert fo.argument_spec()['multi_buffer'] == {'type': 'bool', 'default': False}
