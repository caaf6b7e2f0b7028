# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tunable options of ``kbypass-fwd``, once: flag, type, range, power of two, the
forwarder's default, and the relations between them.

The other side is ``parse_args()`` in files/forwarder/fwd.c. From this table come
afxdp_forwarder's validation, its argument spec and command line, the table in
docs/contracts.md and the ranges in the forwarder role's meta/argument_specs.yml (both
checked by tests/unit/plugins/module_utils/test_fwdopts.py). The integration test
tests/integration/test_forwarder_options.py runs the real binary at every boundary and
proves that it and the module accept exactly the same values.
"""

from __future__ import annotations

from collections import namedtuple

# name: module option; flag: kbypass-fwd flag; kind: int | float | bool | str;
# lo/hi: inclusive range; pow2: must be a power of two; default: the forwarder's own
# default (what an omitted option means); always: the module always passes it;
# requires: a bool option that must be true (the module's rule: the value is passed
# only together with that switch); doc: one line for documentation.
Opt = namedtuple('Opt', 'name flag kind lo hi pow2 default always requires doc')


def _opt(name, flag, kind, lo=None, hi=None, pow2=False, default=None, always=False,
         requires=None, doc=''):
    return Opt(name, flag, kind, lo, hi, pow2, default, always, requires, doc)


# In command-line order (afxdp_forwarder puts them after --bind).
OPTIONS = (
    _opt('batch_size', '--batch', 'int', 1, 1024, default=64,
         doc='Descriptors processed per ring operation'),
    _opt('frame_size', '--frame-size', 'int', 2048, 4096, pow2=True, default=4096,
         doc='UMEM frame size in bytes'),
    _opt('multi_buffer', '--multi-buffer', 'bool', default=False,
         doc='Bind with XDP_USE_SG: packets larger than a frame (jumbo MTU) as several '
             'descriptors; needs kernel >= 6.6 (copy mode) or a multi-buffer zero-copy driver'),
    _opt('num_frames', '--frames', 'int', 256, 1 << 20, default=4096,
         doc='UMEM frames per socket'),
    _opt('rx_ring_size', '--rx-ring', 'int', 64, 32768, pow2=True, default=2048,
         doc='RX ring size'),
    _opt('tx_ring_size', '--tx-ring', 'int', 64, 32768, pow2=True, default=2048,
         doc='TX ring size'),
    _opt('fill_ring_size', '--fill-ring', 'int', 64, 32768, pow2=True, default=4096,
         doc='Fill ring size'),
    _opt('comp_ring_size', '--comp-ring', 'int', 64, 32768, pow2=True, default=2048,
         doc='Completion ring size'),
    _opt('need_wakeup', '--no-need-wakeup', 'bool', default=True,
         doc='Use the need_wakeup flag (fewer syscalls); false passes --no-need-wakeup'),
    _opt('busy_poll', '--busy-poll', 'bool', default=False,
         doc='Preferred busy polling on the sockets'),
    _opt('busy_poll_usec', '--busy-poll-usec', 'int', 0, 1000000, default=20,
         requires='busy_poll', doc='SO_BUSY_POLL time in microseconds'),
    _opt('busy_poll_budget', '--busy-poll-budget', 'int', 1, 65535, default=64,
         requires='busy_poll', doc='SO_BUSY_POLL_BUDGET packets'),
    _opt('spin_usec', '--spin-usec', 'int', 0, 10000, default=0,
         doc='Microseconds to keep polling the rings before sleeping (a dedicated core: '
             'shorter latency tail, more CPU); 0 sleeps at once'),
    _opt('coalesce_usec', '--coalesce-usec', 'int', 0, 1000, default=100,
         doc='While traffic flows, microseconds to let a batch gather between passes '
             'instead of waking per packet (less CPU, adds up to that much latency); 0 off'),
    _opt('tap', '--tap', 'str', doc='TAP device name for mode kernel'),
    _opt('stats_interval', '--interval', 'float', 0.05, 3600, default=1.0, always=True,
         doc='Seconds between stats file updates'),
)
BY_NAME = dict((o.name, o) for o in OPTIONS)

# (option, factor, other): option >= factor * other, omitted ones at the forwarder's
# default (fwd.c checks them after parsing).
RELATIONS = (
    ('num_frames', 2, 'batch_size'),
    ('rx_ring_size', 1, 'batch_size'),
    ('tx_ring_size', 1, 'batch_size'),
)


def _pow2(n):
    return n > 0 and (n & (n - 1)) == 0


def fmt(value):
    """A value as the forwarder's command line spells it."""
    return '%g' % value if isinstance(value, float) else str(value)


def range_text(opt):
    """'1-1024', '64-32768, a power of two', '2048 or 4096', '' for flags and strings."""
    if opt.lo is None:
        return ''
    if opt.pow2:
        values = [v for v in (1 << i for i in range(64)) if opt.lo <= v <= opt.hi]
        if len(values) <= 2:
            return ' or '.join(fmt(v) for v in values)
        return '%s-%s, a power of two' % (fmt(opt.lo), fmt(opt.hi))
    return '%s-%s' % (fmt(opt.lo), fmt(opt.hi))


def relation_text(name):
    """The relations ``name`` takes part in, as words ('at least 2 x batch_size')."""
    out = []
    for left, factor, right in RELATIONS:
        if left == name:
            out.append('at least %s%s' % ('%d x ' % factor if factor != 1 else '', right))
        elif right == name:
            out.append('at most %s%s' % (left, ' / %d' % factor if factor != 1 else ''))
    return out


def argument_spec():
    """The module's argument spec entries for the table's options."""
    spec = {}
    for o in OPTIONS:
        entry = {'type': o.kind}
        if o.kind == 'bool' or o.always:
            entry['default'] = o.default
        spec[o.name] = entry
    return spec


def errors(params):
    """Every problem with the table's options in ``params`` (a list of messages)."""
    out = []
    for o in OPTIONS:
        v = params.get(o.name)
        if v is None or o.lo is None:
            continue
        if not o.lo <= v <= o.hi:
            out.append('%s must be %s, got %s' % (o.name, range_text(o), fmt(v)))
        elif o.pow2 and not _pow2(v):
            out.append('%s must be a power of two (%s), got %d' % (o.name, range_text(o), v))
        if o.requires and not params.get(o.requires):
            out.append('%s needs %s: true' % (o.name, o.requires))
    for left, factor, right in RELATIONS:
        if params.get(left) is None and params.get(right) is None:
            continue
        lv = params.get(left) if params.get(left) is not None else BY_NAME[left].default
        rv = params.get(right) if params.get(right) is not None else BY_NAME[right].default
        if lv < factor * rv:
            out.append('%s (%d%s) must be at least %s%s (%d%s)'
                       % (left, lv, '' if params.get(left) is not None else ', the default',
                          '%d x ' % factor if factor != 1 else '', right, rv,
                          '' if params.get(right) is not None else ', the default'))
    return out


def argv(params):
    """The flags for the table's options in ``params``, in command-line order."""
    out = []
    for o in OPTIONS:
        v = params.get(o.name)
        if o.kind == 'bool':
            if v is not None and bool(v) != o.default:
                out.append(o.flag)
        elif v is not None and (o.requires is None or params.get(o.requires)):
            out += [o.flag, fmt(float(v) if o.kind == 'float' else v)]
    return out


def contracts_table():
    """The Markdown table of docs/contracts.md (between the fwdopts markers)."""
    rows = ['| module option | flag | type | range | forwarder default | also |',
            '|---|---|---|---|---|---|']
    for o in OPTIONS:
        also = relation_text(o.name)
        if o.requires:
            also.append('needs %s' % o.requires)
        default = '' if o.default is None else (
            str(o.default).lower() if o.kind == 'bool' else fmt(o.default))
        rows.append('| `%s` | `%s` | %s | %s | %s | %s |'
                    % (o.name, o.flag, o.kind, range_text(o) or '-', default or '-',
                       '; '.join(also) or '-'))
    return '\n'.join(rows)
