# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for module_utils/_netlink.py.

Address helpers are pure. The read-only netlink helpers are exercised on ``lo`` of the
current namespace (reading it changes nothing); nothing here creates or deletes anything.
"""
from __future__ import annotations

import errno

import pytest

from ansible_collections.kbypass.xdp.plugins.module_utils import _netlink as nl
from ansible_collections.kbypass.xdp.plugins.module_utils import _netns as ns


def test_sort_addresses_v4_first_numeric_dedup():
    got = nl.sort_addresses(['2001:2::20/64', '198.18.0.100/24', '198.18.0.9/24',
                             '2001:2::3/64', '198.18.0.9/24'])
    assert got == ['198.18.0.9/24', '198.18.0.100/24', '2001:2::3/64', '2001:2::20/64']


def test_sort_addresses_canonical_v6():
    assert nl.sort_addresses(['2001:0002:0000::0010/64']) == ['2001:2::10/64']


@pytest.mark.parametrize('cidr, expect', [
    ('fe80::1/64', True), ('2001:2::1/64', False), ('169.254.1.1/16', False)])
def test_is_link_local(cidr, expect):
    assert nl.is_link_local(cidr) is expect


@pytest.mark.skipif(ns.IPRoute is None, reason='pyroute2 missing')
def test_read_helpers_on_lo():
    with ns.netlink(None) as ipr:
        lo = nl.find_link(ipr, 'lo')
        assert lo is not None
        info = nl.link_info(lo)
        assert info['ifname'] == 'lo' and info['kind'] is None and info['ifindex'] == 1
        assert nl.find_link(ipr, 'kbtn-nonexist') is None
        assert '127.0.0.1/8' in nl.link_addresses(ipr, info['ifindex'])


@pytest.mark.skipif(ns.IPRoute is None, reason='pyroute2 missing')
def test_netlink_context_closes_on_error():
    holder = {}
    with pytest.raises(RuntimeError):
        with ns.netlink(None) as ipr:
            holder['ipr'] = ipr
            raise RuntimeError('boom')
    with pytest.raises(OSError) as err:  # the socket is closed: EBADF
        holder['ipr'].link('get', ifname='lo')
    assert err.value.errno == errno.EBADF
