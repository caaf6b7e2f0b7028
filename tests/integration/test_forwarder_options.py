# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The forwarder option table (module_utils/_fwdopts.py) against the real kbypass-fwd.

kbypass-fwd is built from a private copy of files/forwarder. For every ranged option it
runs at min, min-1, max, max+1 (and a non-power-of-two inside the range where a power of
two is required), and for every relation just at and just past its limit, with the exact
command line afxdp_forwarder builds. The binary accepted the options when it gets past
parsing to opening the (deliberately missing) pinned xsks_map; it refused them when it
exits 2 naming the option. The module's validation must agree on every value: if
either side changes a range alone, this test fails. Nothing is attached or bound, no
namespace is used, so no host state is touched.
"""
import os
import shutil
import subprocess

import pytest

from conftest import copy_build
from ansible_collections.kbypass.xdp.plugins.module_utils import _fwdopts as fo
from ansible_collections.kbypass.xdp.plugins.modules import afxdp_forwarder as mod

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FWD_SRC = os.path.join(ROOT, 'files', 'forwarder')
NO_PINS = '/nonexistent/kbtf-options'  # parsing passed <=> "cannot open pinned xsks_map"

pytestmark = pytest.mark.skipif(shutil.which('cc') is None, reason='needs a C compiler')


@pytest.fixture(scope='module')
def fwd(tmp_path_factory):
    build = str(tmp_path_factory.mktemp('kbtf-opts') / 'forwarder')
    return os.path.join(copy_build(FWD_SRC, build, 'kbypass-fwd'), 'kbypass-fwd')


def _neutral(name):
    """Companion values that keep the relations out of the way of ``name``'s own range,
    so that a relation never hides a range that changed on one side only."""
    out = {}
    for left, _factor, right in fo.RELATIONS:
        if name == right:
            out[left] = fo.BY_NAME[left].hi
        elif name == left:
            out[right] = fo.BY_NAME[right].lo
    return out


def _cases():
    """(id, options) at every boundary of the table."""
    out = []
    for o in fo.OPTIONS:
        if o.lo is None:
            continue
        extra = dict(_neutral(o.name), **({o.requires: True} if o.requires else {}))
        if o.kind == 'float':
            values = [o.lo, round(o.lo * 0.8, 6), o.hi, o.hi * 1.01]
        else:
            values = [o.lo, o.lo - 1, o.hi, o.hi + 1]
            if o.pow2:
                values.append(o.lo + o.lo // 2)  # in range, not a power of two
        out += [('%s=%s' % (o.name, v), dict(extra, **{o.name: v})) for v in values]
    # relations just at and just past the limit (right side a power of two: rings)
    for left, factor, right in fo.RELATIONS:
        if fo.BY_NAME[left].pow2:   # rings are powers of two: move the batch instead
            out += [('%s=128,%s=%d' % (left, right, b), {left: 128, right: b})
                    for b in (128, 129)]
        else:
            out += [('%s=%d,%s=256' % (left, n, right), {left: n, right: 256})
                    for n in (factor * 256, factor * 256 - 1)]
    return out


def _module_accepts(opts):
    p = {k: v.get('default') for k, v in mod.ARGUMENT_SPEC.items()}
    p.update(name='kbtf-opts', interface='lo', pin_dir=NO_PINS, **opts)
    errors = mod.validate_params(p, online_cpus=None)
    return not errors, p, errors


@pytest.mark.parametrize('opts', [c[1] for c in _cases()], ids=[c[0] for c in _cases()])
def test_module_and_binary_accept_the_same_values(fwd, opts):
    ok, p, errors = _module_accepts(opts)
    argv = mod.build_argv(dict(p, binary=fwd), '/nonexistent/kbtf-options.stats.json')
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    binary_ok = 'cannot open pinned xsks_map' in proc.stderr
    if not binary_ok:
        assert proc.returncode == 2 and proc.stderr.startswith('error: '), proc.stderr
    assert ok == binary_ok, ('module %s (%s), kbypass-fwd %s (%s) for %s'
                             % ('accepts' if ok else 'refuses', '; '.join(errors) or '-',
                                'accepts' if binary_ok else 'refuses', proc.stderr.strip(),
                                ' '.join(argv[1:])))


def test_every_boundary_is_covered_both_ways():
    """The cases include, per ranged option, values both sides must accept and refuse."""
    verdicts = {}
    for case_id, opts in _cases():
        name = case_id.split('=')[0]
        verdicts.setdefault(name, set()).add(_module_accepts(opts)[0])
    ranged = [o.name for o in fo.OPTIONS if o.lo is not None]
    assert all(verdicts[n] == {True, False} for n in ranged), verdicts
    for left, _f, _r in fo.RELATIONS:
        assert verdicts[left] == {True, False}


@pytest.mark.parametrize('name', [o.name for o in fo.OPTIONS if o.kind == 'bool'])
def test_every_switch_is_known_to_the_binary(fwd, name):
    """Each bool option, set away from its default, is a flag kbypass-fwd parses."""
    opt = fo.BY_NAME[name]
    ok, p, errors = _module_accepts({name: not opt.default})
    assert ok, errors
    argv = mod.build_argv(dict(p, binary=fwd), '/nonexistent/kbtf-options.stats.json')
    assert opt.flag in argv
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    assert 'cannot open pinned xsks_map' in proc.stderr, proc.stderr
