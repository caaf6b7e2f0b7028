# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for module_utils/_netns.py, the one way into a network namespace.

Namespace listing runs against a temporary directory standing in for /run/netns. The
sysfs/procfs helper runs for real in the current namespace (reads only, plus a write to
a temporary file), so its JSON protocol is exercised end to end.
"""
from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.kbypass.xdp.plugins.module_utils import _netns as ns


class Runner(object):
    """The part of AnsibleModule that _netns uses: run_command with a list."""

    def __init__(self):
        self.calls = []

    def run_command(self, argv, **kwargs):
        self.calls.append((list(argv), kwargs))
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr


def test_list_netns_exact_names(tmp_path, monkeypatch):
    for name in ('ns10', 'kbtn1'):
        (tmp_path / name).touch()
    monkeypatch.setattr(ns, 'NETNS_RUN_DIR', str(tmp_path))
    assert ns.list_netns() == ['kbtn1', 'ns10']
    assert ns.netns_exists('ns10') and not ns.netns_exists('ns1')  # no substring match
    assert not ns.netns_exists('../' + tmp_path.name + '/ns10')   # no path tricks
    assert ns.netns_exists(None) and ns.netns_exists('')
    monkeypatch.setattr(ns, 'NETNS_RUN_DIR', str(tmp_path / 'missing'))
    assert ns.list_netns() == []
    assert not ns.netns_exists('ns10')


def test_netlink_missing_namespace_is_not_created(tmp_path, monkeypatch):
    monkeypatch.setattr(ns, 'NETNS_RUN_DIR', str(tmp_path))
    with pytest.raises(ns.NetnsMissing) as err:
        with ns.netlink('kbtn-never'):
            pass  # pragma: no cover
    assert 'kbtn-never' in str(err.value)
    assert not os.listdir(str(tmp_path))


def test_argv_in():
    assert ns.argv_in(['ip', 'link'], None) == ['ip', 'link']
    assert ns.argv_in(['ip', 'link'], 'kbtn1') == ['ip', 'netns', 'exec', 'kbtn1', 'ip', 'link']
    assert ns.argv_in(['bpftool'], 'kbtn1', keep_mounts=True) == [
        'nsenter', '--net=/run/netns/kbtn1', 'bpftool']


def test_run_json_reports_errors():
    r = Runner()
    assert ns.run_json(r, ['echo', '[1, 2]']) == ([1, 2], None)
    assert ns.run_json(r, ['echo', '{"error": "no such map"}']) == (None, 'no such map')
    data, err = ns.run_json(r, ['echo', 'not json'])
    assert data is None and err == 'not json'  # what the command printed
    data, err = ns.run_json(r, ['sh', '-c', 'echo boom >&2; exit 3'])
    assert data is None and err == 'boom'


def test_fs_op_reads_lists_writes_and_describes(tmp_path):
    f = tmp_path / 'knob'
    f.write_text('7\n')
    (tmp_path / 'sub').mkdir()
    r = Runner()
    res = ns.fs_op(r, None, read=[str(f), str(tmp_path / 'nope')],
                   listdir=[str(tmp_path), str(tmp_path / 'nope')],
                   write=[(str(f), 9), (str(tmp_path / 'nope' / 'x'), 1)], dev='lo')
    assert res['read'] == {str(f): '7', str(tmp_path / 'nope'): None}
    assert res['list'] == {str(tmp_path): ['knob', 'sub'], str(tmp_path / 'nope'): None}
    assert res['write'][0] == [str(f), None] and f.read_text() == '9'
    assert res['write'][1][1].startswith('FileNotFoundError')
    assert res['dev']['exists'] is True and res['dev']['device_path'] is None  # lo: virtual
    assert r.calls[0][0][0] != 'ip'  # the current namespace runs the helper directly


def test_fs_op_helper_failure_is_an_error():
    class Failing(object):
        def run_command(self, argv, **kwargs):
            return 1, '', 'Cannot open network namespace "kbtn-gone"'
    with pytest.raises(ns.HelperError) as err:
        ns.fs_op(Failing(), 'kbtn-gone', read=['/proc/sys/net/core/somaxconn'])
    assert 'in netns kbtn-gone' in str(err.value) and 'Cannot open' in str(err.value)


def test_entered_current_namespace_is_a_no_op():
    before = os.readlink('/proc/thread-self/ns/net')
    with ns.entered(None):
        assert os.readlink('/proc/thread-self/ns/net') == before
    rows = ns.proc_net(None, 'dev')
    assert any(row.split(':')[0].strip() == 'lo' for row in rows)
    assert ns.ifindex(None, 'lo') == 1 and ns.ifindex(None, 'kbtn-nonexist') is None
