# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A NIC's interrupts: find them in /proc/interrupts, read and set their CPU affinity.

Discovery combines two sources, because neither is enough alone:
- the PCI function's ``msi_irqs/`` directory in sysfs (exactly the vectors of this
  function, but no names; virtio_net has it on the parent of ``device``), and
- ``/proc/interrupts`` names, which drivers build from the interface name
  (``ice-ens1f0-TxRx-0``, ``i40e-eth0-TxRx-0``, ``eth0-TxRx-0``), the PCI address
  (``mlx5_comp0@pci:0000:3b:00.0``) or the virtio device (``virtio2-input.0``).
IRQs are global (not per network namespace); /proc/irq is read in the module's own view.
Everything except the three small file helpers at the bottom is a pure function.
"""

from __future__ import annotations

import os
import re

# Re-exported: the CPU list helpers live in _common, shared with _supervise.
from ansible_collections.kbypass.xdp.plugins.module_utils._common import (  # noqa: F401
    format_cpulist,
    parse_cpulist,
)

PROC_ROOT = '/proc'

_QUEUE_PATTERNS = (
    (re.compile(r'-TxRx-(\d+)$'), 'txrx'),
    (re.compile(r'-rx-(\d+)$'), 'rx'),
    (re.compile(r'-tx-(\d+)$'), 'tx'),
    (re.compile(r'-input\.(\d+)$'), 'rx'),
    (re.compile(r'-output\.(\d+)$'), 'tx'),
    (re.compile(r'^mlx5_comp(\d+)@'), 'txrx'),
    (re.compile(r'-fp-(\d+)$'), 'txrx'),  # bnx2x/qede fast path
)


def parse_proc_interrupts(text):
    """/proc/interrupts -> [{irq, counts, total, chip, name}] for numbered IRQs only."""
    lines = text.splitlines()
    if not lines:
        return []
    ncpu = len([t for t in lines[0].split() if t.startswith('CPU')])
    out = []
    for line in lines[1:]:
        head, sep, rest = line.partition(':')
        if not sep or not head.strip().isdigit():
            continue
        toks = rest.split()
        counts = []
        for t in toks[:ncpu]:
            counts.append(int(t) if t.isdigit() else 0)
        tail = toks[ncpu:]
        chip = tail[0] if tail else ''
        name = ''
        # "<chip> [<hwirq>-]<edge|level|fasteoi...> <name...>" on current kernels,
        # "<chip>-edge <name>" on old ones; the name is what follows the trigger type.
        for k, t in enumerate(tail):
            if re.search(r'-(edge|level|fasteoi)$', t, re.I) or t.lower() in ('edge', 'level'):
                name = ' '.join(tail[k + 1:])
        if not name and len(tail) > 1:
            name = tail[-1]
        out.append({'irq': int(head.strip()), 'counts': counts, 'total': sum(counts),
                    'chip': chip, 'name': name})
    return out


def queue_of(name):
    """('txrx'|'rx'|'tx', index) when ``name`` is a queue vector, else (None, None)."""
    for rx, kind in _QUEUE_PATTERNS:
        m = rx.search(name)
        if m:
            return kind, int(m.group(1))
    return None, None


def _mentions(name, token):
    if not token:
        return False
    return re.search(r'(^|[-@:_ ])' + re.escape(token) + r'($|[-@: .])', name) is not None


def discover_irqs(interrupts, ifname, msi_irqs=None, bus_info=None, device_name=None):
    """The interrupts that belong to one network interface.

    ``interrupts``: parse_proc_interrupts() output. ``msi_irqs``: vectors listed in the
    PCI function's sysfs ``msi_irqs`` (None/empty when unknown or not PCI). ``bus_info``:
    ethtool's bus-info (``0000:3b:00.0``). ``device_name``: basename of the netdev's
    ``device`` link (``virtio2`` for virtio_net, the PCI address otherwise).
    Returns [{irq, name, kind ('txrx'|'rx'|'tx'|'other'), queue}] sorted by IRQ number.
    """
    msi = set(msi_irqs or [])
    virtio = device_name if device_name and re.match(r'^virtio\d+$', device_name) else None
    found = []
    for entry in interrupts:
        name = entry['name']
        named = (_mentions(name, ifname) or _mentions(name, bus_info)
                 or (virtio is not None and name.startswith(virtio + '-')))
        if msi:
            if entry['irq'] not in msi:
                continue
        elif not named:
            continue
        kind, queue = queue_of(name)
        found.append({'irq': entry['irq'], 'name': name, 'kind': kind or 'other',
                      'queue': queue, 'total': entry['total']})
    return sorted(found, key=lambda x: x['irq'])


def plan_affinity(irqs, cpus, mode='spread', current=None):
    """Desired CPU list per queue IRQ, and which IRQs need a change.

    ``mode='spread'``: queue *n*'s vectors go to ``cpus[n % len(cpus)]`` (rx and tx of one
    queue stay together); ``mode='all'``: every queue vector may run on all of ``cpus``.
    Non-queue vectors (misc, async, config) are left alone. ``current``: {irq: [cpus]}.
    Returns ({irq: [cpus]} desired, [irq] to change).
    """
    if mode not in ('spread', 'all'):
        raise ValueError('irq affinity mode must be spread or all, not %r' % mode)
    cpus = sorted(set(cpus))
    if not cpus:
        return {}, []
    current = current or {}
    desired = {}
    for item in irqs:
        if item['queue'] is None:
            continue
        if mode == 'spread':
            desired[item['irq']] = [cpus[item['queue'] % len(cpus)]]
        else:
            desired[item['irq']] = list(cpus)
    change = [irq for irq in sorted(desired)
              if sorted(current.get(irq) or []) != desired[irq]]
    return desired, change


def affinity_applied(requested, effective):
    """An affinity change took when the effective CPUs are a non-empty subset of the request."""
    return bool(effective) and set(effective) <= set(requested)


# --- thin file helpers (proc_root lets unit tests use a recorded tree) -----------------

def read_affinity(irq, proc_root=PROC_ROOT):
    """{'smp_affinity_list': [..] or None, 'effective_affinity_list': [..] or None}."""
    out = {}
    for leaf in ('smp_affinity_list', 'effective_affinity_list'):
        try:
            with open(os.path.join(proc_root, 'irq', str(irq), leaf)) as f:
                out[leaf] = parse_cpulist(f.read().strip())
        except (OSError, ValueError):
            out[leaf] = None
    return out


def write_affinity(irq, cpus, proc_root=PROC_ROOT):
    """Write smp_affinity_list; return None or the error text (the kernel may refuse)."""
    try:
        with open(os.path.join(proc_root, 'irq', str(irq), 'smp_affinity_list'), 'w') as f:
            f.write(format_cpulist(cpus))
        return None
    except OSError as exc:
        return '%s: %s' % (type(exc).__name__, exc.strerror or exc)


def read_interrupts(proc_root=PROC_ROOT):
    with open(os.path.join(proc_root, 'interrupts')) as f:
        return parse_proc_interrupts(f.read())


def cpus_option(value, what, online):
    """A CPU-list option (``"2-3,6"``, ``[1, 2]``, ``3``) -> sorted CPUs; None when unset.

    Raises ValueError naming the option when the list is malformed, empty, or names a
    CPU that is not in ``online`` (so nothing is planned against CPUs the host lacks).
    """
    if value in (None, '', []):
        return None
    items = value if isinstance(value, list) else [value]
    if any(isinstance(v, bool) or not isinstance(v, (int, str)) or (isinstance(v, int) and v < 0)
           for v in items):
        raise ValueError('%s: %r is not a CPU list (use "2-3,6" or a list of CPU numbers)'
                         % (what, value))
    try:
        cpus = parse_cpulist(items)
    except ValueError as exc:
        raise ValueError('%s: %s' % (what, exc))
    if not cpus:
        raise ValueError('%s is empty' % what)
    missing = [c for c in cpus if c not in set(online)]
    if missing:
        raise ValueError('%s: CPU %s does not exist or is offline (online CPUs: %s)'
                         % (what, format_cpulist(missing), format_cpulist(online)))
    return cpus
