# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_mbuf's pure part: when an MTU needs multi-buffer, and the words for a refused probe.
The probes themselves run for real in tests/integration/test_jumbo_bed.py."""
from __future__ import annotations

import errno
import os
import re

import pytest

from ansible_collections.kbypass.xdp.plugins.module_utils import _mbuf


def test_single_frame_mtu_matches_the_forwarder():
    """The forwarder's kb_single_frame_mtu(): frame - XDP headroom - Ethernet + 2 VLAN tags."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))))
    with open(os.path.join(root, 'files', 'forwarder', 'xsk_common.h')) as handle:
        header = handle.read()
    for name, value in (('KB_XDP_HEADROOM', _mbuf.XDP_HEADROOM), ('KB_L2_OVERHEAD', _mbuf.L2_OVERHEAD)):
        assert int(re.search(r'#define %s (\d+)u' % name, header).group(1)) == value
    assert (_mbuf.single_frame_mtu(4096), _mbuf.single_frame_mtu(2048)) == (3818, 1770)


@pytest.mark.parametrize('mtu, frame, needed', [
    (1500, 4096, False), (3818, 4096, False), (3819, 4096, True), (9000, 4096, True),
    (1500, 2048, False), (1771, 2048, True), (None, 4096, False)])
def test_needs_multi_buffer(mtu, frame, needed):
    assert _mbuf.needs_multi_buffer(mtu, frame) is needed


def test_missing_only_when_the_mtu_needs_it_and_a_probe_said_no():
    refused = {'xdp_multi_buffer': (True, None), 'af_xdp_multi_buffer': (False, errno.EINVAL)}
    assert _mbuf.missing_for_mtu(1500, 4096, refused) == []
    assert _mbuf.missing_for_mtu(9000, 4096, {'xdp_multi_buffer': (True, None),
                                              'af_xdp_multi_buffer': (True, None)}) == []
    [item] = _mbuf.missing_for_mtu(9000, 4096, refused)
    assert item['item'] == 'af_xdp_multi_buffer' and item['runtime'] is True
    assert 'does not know XDP_USE_SG' in item['reason'] and 'at most 3818' in item['reason']


@pytest.mark.parametrize('probe, err, needle', [
    ('xdp_multi_buffer', errno.ERANGE, 'cannot run xdp.frags programs'),
    ('xdp_multi_buffer', errno.EINVAL, 'BPF_F_XDP_HAS_FRAGS'),
    ('af_xdp_multi_buffer', errno.EOPNOTSUPP, 'driver cannot do AF_XDP multi-buffer'),
    ('af_xdp_multi_buffer', errno.EPERM, 'the kernel answered EPERM')])
def test_refusal_cause(probe, err, needle):
    assert needle in _mbuf.refusal_cause(probe, err)
