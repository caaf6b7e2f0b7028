#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: nic_facts
short_description: Driver, offloads, queues and interrupts of chosen network interfaces
version_added: 0.1.0
description:
  - Reports for each listed interface (optionally inside a network namespace) the driver,
    driver version, firmware, bus info, NUMA node, link speed, features with their fixed
    flags, channels (current and maximum), rings, coalesce settings, selected statistics,
    the interface's IRQs and each IRQ's effective CPU affinity, plus the busy-poll sysfs
    attributes C(napi_defer_hard_irqs) and C(gro_flush_timeout).
  - Read-only. Only the interfaces you list are inspected, never every link of the host.
  - Features come from C(ethtool --json -k); ethtool 6.1 has no JSON for the other
    sub-commands, whose text is parsed (C(n/a) becomes null). Sub-commands a driver does
    not support (veth has no rings or coalesce) are reported as null with the reason in
    C(unsupported).
author:
  - kbypass.xdp developers (@kbypass)
requirements:
  - ethtool and iproute2 on the target
options:
  interfaces:
    description:
      - Interfaces to inspect. Each item is an interface name (then O(netns) applies) or a
        dict with C(name) and optional C(netns).
    type: list
    elements: raw
    required: true
  netns:
    description: Default network namespace for items that do not name one.
    type: str
  statistics:
    description:
      - V(selected) returns the ethtool statistics whose name matches O(statistics_filter),
        V(all) every counter, V(none) skips C(ethtool -S).
    type: str
    choices: [selected, all, none]
    default: selected
  statistics_filter:
    description: Regular expressions (searched, case-insensitive) selecting statistics.
    type: list
    elements: str
    default: ['drop', 'err', 'miss', 'xdp', 'xsk', 'fifo', 'timeout', 'busy', '^rx_packets$',
              '^tx_packets$']
  ignore_missing:
    description: Report a missing interface or namespace as C(exists=false) instead of failing.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
  facts:
    support: full
    description: Sets C(kbypass_nics).
seealso:
  - module: kbypass.xdp.xdp_facts
  - module: kbypass.xdp.nic_tune
'''

EXAMPLES = r'''
- name: Facts of the test bed's veth pair
  kbypass.xdp.nic_facts:
    interfaces:
      - {name: veth0, netns: ns1}
      - {name: veth1, netns: ns2}

- name: A bare-metal NIC, every statistic
  kbypass.xdp.nic_facts:
    interfaces: [ens1f0]
    statistics: all
  register: nic

- name: Show the queue IRQs and where they run
  ansible.builtin.debug:
    msg: "{{ nic.interfaces[0].irqs }}"
'''

RETURN = r'''
interfaces:
  description: One entry per requested interface, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Interface name., type: str, returned: always}
    netns: {description: Namespace or null., type: str, returned: always}
    exists: {description: Whether the interface was found., type: bool, returned: always}
    driver: {description: Driver name (ethtool -i)., type: str, returned: when exists}
    driver_version: {description: Driver version., type: str, returned: when exists}
    firmware_version: {description: Firmware version or null., type: str, returned: when exists}
    bus_info: {description: Bus address or null., type: str, returned: when exists}
    numa_node: {description: 'NUMA node of the device; null for virtual ones.', type: int, returned: when exists}
    speed_mbps: {description: Link speed or null., type: int, returned: when exists}
    features: {description: "Feature name to {active, fixed, requested}.", type: dict, returned: when exists}
    features_fixed: {description: Names of fixed features., type: list, returned: when exists}
    channels: {description: "{max, current} channel counts or null.", type: dict, returned: when exists}
    rings: {description: "{max, current, extra} ring sizes or null.", type: dict, returned: when exists}
    coalesce: {description: Coalesce settings or null., type: dict, returned: when exists}
    statistics: {description: Selected ethtool statistics., type: dict, returned: when exists}
    irqs:
      description: Interrupts of the device with smp/effective affinity as CPU lists.
      type: list
      returned: when exists
      sample: [{"irq": 38, "name": "virtio2-input.0", "kind": "rx", "queue": 0,
                "smp_affinity_list": "0-1", "effective_affinity_list": "1"}]
    sysfs: {description: napi_defer_hard_irqs gro_flush_timeout mtu tx_queue_len threaded., type: dict, returned: when exists}
    unsupported: {description: Sub-command to the error the driver gave., type: dict, returned: when exists}
ansible_facts:
  description: Facts set by the module.
  returned: always
  type: dict
  contains:
    kbypass_nics:
      description: The same entries keyed by C(name) or C(netns/name).
      type: dict
      returned: always
'''

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kbypass.xdp.plugins.module_utils._common import (
    FACTS_SPEC,
    exit_interface_facts,
    missing_error,
    normalize_interfaces,
)
from ansible_collections.kbypass.xdp.plugins.module_utils._ethtool import Ethtool, EthtoolError
from ansible_collections.kbypass.xdp.plugins.module_utils import _irq
from ansible_collections.kbypass.xdp.plugins.module_utils._netns import HelperError, fs_op, netns_exists

SYSFS_ATTRS = ('napi_defer_hard_irqs', 'gro_flush_timeout', 'mtu', 'tx_queue_len', 'threaded',
               'speed', 'operstate')


def select_stats(stats, mode, patterns):
    if stats is None or mode == 'none':
        return None if stats is None else {}
    if mode == 'all':
        return stats
    rx = [re.compile(p, re.I) for p in patterns]
    return dict((k, v) for k, v in stats.items() if any(r.search(k) for r in rx))


def irq_facts(irqs, affinity):
    """Merge discovered IRQs with {irq: read_affinity()} into the returned shape."""
    out = []
    for i in irqs:
        aff = affinity.get(i['irq']) or {}
        out.append({
            'irq': i['irq'], 'name': i['name'], 'kind': i['kind'], 'queue': i['queue'],
            'count': i.get('total'),
            'smp_affinity_list': None if aff.get('smp_affinity_list') is None
            else _irq.format_cpulist(aff['smp_affinity_list']),
            'effective_affinity_list': None if aff.get('effective_affinity_list') is None
            else _irq.format_cpulist(aff['effective_affinity_list']),
        })
    return out


def gather(module, name, netns, interrupts, stats_mode, stats_filter):
    entry = {'name': name, 'netns': netns, 'exists': False}
    base = '/sys/class/net/%s/' % name
    res = netns_exists(netns) and fs_op(module, netns, read=[base + a for a in SYSFS_ATTRS],
                                        dev=name)
    if not res or not res['dev']['exists']:
        entry['error'] = missing_error(name, netns, bool(res))
        return entry
    entry['exists'] = True
    eth = Ethtool(module, name, netns)
    unsupported = {}
    drv, err = eth.driver_info()
    if err:
        unsupported['driver_info'] = err
    drv = drv or {}
    settings, err = eth.settings()
    settings = settings or {}
    feats = eth.features()
    channels, err = eth.channels()
    if err:
        unsupported['channels'] = err
    rings, err = eth.rings()
    if err:
        unsupported['rings'] = err
    coalesce, err = eth.coalesce()
    if err:
        unsupported['coalesce'] = err
    stats = None
    if stats_mode != 'none':
        stats, err = eth.stats()
        if err:
            unsupported['statistics'] = err
    dev = res['dev']
    irqs = _irq.discover_irqs(interrupts, name, msi_irqs=dev.get('msi_irqs'),
                              bus_info=drv.get('bus_info'), device_name=dev.get('device_name'))
    affinity = dict((i['irq'], _irq.read_affinity(i['irq'])) for i in irqs)
    sysfs = dict((a, res['read'].get(base + a)) for a in SYSFS_ATTRS)
    speed = settings.get('speed_mbps')
    if speed is None and sysfs.get('speed') and sysfs['speed'].lstrip('-').isdigit():
        speed = int(sysfs['speed']) if int(sysfs['speed']) > 0 else None
    entry.update({
        'driver': drv.get('driver'),
        'driver_version': drv.get('version'),
        'firmware_version': drv.get('firmware_version'),
        'bus_info': drv.get('bus_info'),
        'device': dev.get('device_name'),
        'numa_node': dev.get('numa_node'),
        'speed_mbps': speed,
        'duplex': settings.get('duplex'),
        'link_detected': settings.get('link_detected'),
        'features': feats,
        'features_fixed': sorted(n for n, f in feats.items() if f['fixed']),
        'channels': channels,
        'rings': rings,
        'coalesce': coalesce,
        'statistics': select_stats(stats, stats_mode, stats_filter),
        'irqs': irq_facts(irqs, affinity),
        'sysfs': sysfs,
        'unsupported': unsupported,
    })
    return entry


def main():
    module = AnsibleModule(
        argument_spec=dict(
            FACTS_SPEC,
            statistics=dict(type='str', choices=['selected', 'all', 'none'], default='selected'),
            statistics_filter=dict(type='list', elements='str',
                                   default=['drop', 'err', 'miss', 'xdp', 'xsk', 'fifo',
                                            'timeout', 'busy', '^rx_packets$', '^tx_packets$']),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        items = normalize_interfaces(p['interfaces'], p['netns'])
        for pat in p['statistics_filter']:
            re.compile(pat)
    except (ValueError, re.error) as exc:
        module.fail_json(msg='bad input: %s' % exc)
    try:
        interrupts = _irq.read_interrupts()
    except OSError:
        interrupts = []
    exit_interface_facts(
        module, items, lambda it: gather(module, it['name'], it['netns'], interrupts,
                                         p['statistics'], p['statistics_filter']),
        'kbypass_nics', errors=(EthtoolError, HelperError))


if __name__ == '__main__':
    main()
