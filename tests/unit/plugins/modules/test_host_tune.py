"""host_tune: defaults-file editing, forwarder affinity judgement, input checks."""
from __future__ import annotations

import json

import pytest

from ansible.module_utils.testing import patch_module_args
from ansible_collections.kbypass.xdp.plugins.modules import host_tune as m

DEFAULTS = '''#Configuration for the irqbalance daemon
#IRQBALANCE_ONESHOT=
IRQBALANCE_BANNED_CPULIST="0"
OPTIONS=""
'''


def test_env_var_get_set_remove():
    assert m.get_env_var(DEFAULTS, 'IRQBALANCE_BANNED_CPULIST') == '0'
    assert m.get_env_var(DEFAULTS, 'IRQBALANCE_ONESHOT') is None  # commented out
    new = m.set_env_var(DEFAULTS, 'IRQBALANCE_BANNED_CPULIST', '2-3')
    assert m.get_env_var(new, 'IRQBALANCE_BANNED_CPULIST') == '2-3'
    assert new.count('IRQBALANCE_BANNED_CPULIST') == 1 and 'OPTIONS=""' in new
    gone = m.set_env_var(new, 'IRQBALANCE_BANNED_CPULIST', None)
    assert 'IRQBALANCE_BANNED_CPULIST' not in gone and '#IRQBALANCE_ONESHOT=' in gone
    assert m.set_env_var('', 'K', 'v') == 'K="v"\n'


def test_process_matches():
    assert m.process_matches({10: [1], 11: [1]}, 10, [1])
    assert m.process_matches({10: [0, 1], 11: [1]}, 10, [1])   # unpinned supervisor thread
    assert not m.process_matches({10: [0, 1], 11: [0]}, 10, [1])
    assert not m.process_matches({10: [0, 1]}, 10, [1])
    assert not m.process_matches({}, 10, [1])


def test_norm_sysctl():
    assert m.norm_sysctl('4096\t87380\t6291456') == '4096 87380 6291456'
    assert m.norm_sysctl(True) == '1' and m.norm_sysctl(50) == '50'


def test_find_processes_on_a_recorded_tree(tmp_path):
    for pid, comm, tasks in ((100, 'kbypass-fwd', {100: '0-1', 101: '1'}),
                             (200, 'bash', {200: '0-1'})):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / 'comm').write_text(comm + '\n')
        for tid, cpus in tasks.items():
            d = tmp_path / str(pid) / 'task' / str(tid)
            d.mkdir(parents=True)
            d.joinpath('status').write_text('Name:\t%s\nCpus_allowed_list:\t%s\n' % (comm, cpus))
    (tmp_path / 'self').mkdir()
    got = m.find_processes('kbypass-fwd', proc_root=str(tmp_path))
    assert got == [{'pid': 100, 'tasks': {100: [0, 1], 101: [1]}}]


@pytest.mark.parametrize('args,fragment', [
    ({'sysctls': {'net/core/x': 1}}, 'not a sysctl name'),
    ({'netns': 'a b'}, 'invalid'),
    ({'irqbalance_banned_cpus': '3-1'}, 'invalid CPU range'),
    ({'check_process': 'kbypass-fwd'}, 'expected_cpus'),
])
def test_main_bad_input(args, fragment, monkeypatch, capsys):
    monkeypatch.setattr(m, 'fs_op', lambda *a, **k: pytest.fail('touched the host'))
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            m.main()
    res = json.loads(capsys.readouterr().out)
    assert res['failed'] and fragment in res['msg']
