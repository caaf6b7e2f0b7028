# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for kernel_view's pure helpers (the module itself runs against the kernel in
tests/integration/test_xdp_capture.py)."""
from __future__ import annotations

from ansible_collections.kbypass.xdp.plugins.modules import kernel_view


def test_attached_prog_ids_single_and_multi():
    doc = [{'xdp': [{'devname': 'veth0', 'ifindex': 3, 'mode': 'driver', 'id': 7},
                    {'devname': 'eth0', 'ifindex': 2,
                     'multi_attachments': [{'mode': 'driver', 'id': 8},
                                           {'mode': 'generic', 'id': 9}]}],
            'tc': [{'devname': 'veth0', 'id': 99}]}]
    assert kernel_view.attached_prog_ids(doc) == {7, 8, 9}
    assert kernel_view.attached_prog_ids(None) == set()


def test_xsk_registrations_from_the_forwarders_own_stats():
    stats = {'b': {'iface': 'veth0', 'iface2': 'veth2', 'netns': 'ns1', 'queues': [0, 1],
                   'running': True, 'bind_mode': 'copy'},
             'a': {'iface': 'eth1', 'netns': None, 'queues': [0], 'running': False}}
    regs = kernel_view.xsk_registrations(stats)
    assert [(r['instance'], r['iface'], r['queues']) for r in regs] == \
        [('a', 'eth1', [0]), ('b', 'veth0', [0, 1]), ('b', 'veth2', [0, 1])]
    assert regs[1]['bind_mode'] == 'copy' and regs[0]['running'] is False


def test_note_names_the_command_that_shows_the_packets():
    assert 'tcpdump' in kernel_view.NOTE and 'make observe' in kernel_view.NOTE
