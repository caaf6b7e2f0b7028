# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for module_utils/_netlink.py.

Address helpers are pure. Namespace listing is tested against a temporary directory
standing in for /run/netns. The read-only netlink helpers are exercised on ``lo`` of the
current namespace (reading it changes nothing); nothing here creates or deletes anything.
"""
from __future__ import annotations

import os

import pytest

from ansible_collections.kbypass.xdp.plugins.module_utils import _netlink as nl


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


def test_list_netns_exact_names(tmp_path, monkeypatch):
    for name in ('ns10', 'kbtn1'):
        (tmp_path / name).touch()
    monkeypatch.setattr(nl, 'NETNS_RUN_DIR', str(tmp_path))
    assert nl.list_netns() == ['kbtn1', 'ns10']
    assert nl.netns_exists('ns10') and not nl.netns_exists('ns1')  # no substring match
    assert nl.netns_exists(None)
    monkeypatch.setattr(nl, 'NETNS_RUN_DIR', str(tmp_path / 'missing'))
    assert nl.list_netns() == []


def test_netlink_missing_namespace_is_not_created(tmp_path, monkeypatch):
    monkeypatch.setattr(nl, 'NETNS_RUN_DIR', str(tmp_path))
    with pytest.raises(nl.NetnsMissing) as err:
        with nl.netlink('kbtn-never'):
            pass  # pragma: no cover
    assert 'kbtn-never' in str(err.value)
    assert not os.listdir(str(tmp_path))


@pytest.mark.skipif(nl.IPRoute is None, reason='pyroute2 missing')
def test_read_helpers_on_lo():
    with nl.netlink(None) as ipr:
        lo = nl.find_link(ipr, 'lo')
        assert lo is not None
        info = nl.link_info(lo)
        assert info['ifname'] == 'lo' and info['kind'] is None and info['ifindex'] == 1
        assert nl.find_link(ipr, 'kbtn-nonexist') is None
        assert '127.0.0.1/8' in nl.link_addresses(ipr, info['ifindex'])


@pytest.mark.skipif(nl.IPRoute is None, reason='pyroute2 missing')
def test_netlink_context_closes_on_error():
    holder = {}
    with pytest.raises(RuntimeError):
        with nl.netlink(None) as ipr:
            holder['ipr'] = ipr
            raise RuntimeError('boom')
    with pytest.raises(Exception):
        holder['ipr'].link('get', ifname='lo')
