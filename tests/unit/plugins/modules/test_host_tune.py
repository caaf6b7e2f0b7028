"""host_tune: defaults-file editing, forwarder affinity judgement, input checks."""
from __future__ import annotations


import pytest

from ansible_collections.kbypass.xdp.plugins.modules import host_tune as m
from module_main import run_main  # tests/unit/module_main.py

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


def test_check_processes_on_a_recorded_tree(tmp_path):
    """The forwarder is found by its comm (not bash), and judged per thread."""
    for pid, comm, tasks in ((100, 'kbypass-fwd', {100: '0-1', 101: '1'}),
                             (200, 'bash', {200: '0-1'})):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / 'stat').write_text(
            '%d (%s) S 1 %s\n' % (pid, comm, ' '.join(['0'] * 18 + ['4242'])))
        for tid, cpus in tasks.items():
            d = tmp_path / str(pid) / 'task' / str(tid)
            d.mkdir(parents=True)
            d.joinpath('status').write_text('Name:\t%s\nCpus_allowed_list:\t%s\n' % (comm, cpus))
    assert m.check_processes('kbypass-fwd', [1], str(tmp_path)) == [
        {'pid': 100, 'cpus': '0-1', 'thread_cpus': {'100': '0-1', '101': '1'}, 'matches': True}]
    assert m.check_processes('kbypass-fwd', [0], str(tmp_path))[0]['matches'] is False


def _current(**sysctls):
    return {'sysctls': sysctls, 'irqbalance_installed': True, 'banned_cpulist': '0'}


def test_compute_plan_changes_only_what_differs():
    plan = m.compute_plan(_current(**{'net.ipv4.ip_forward': '0', 'net.core.somaxconn': '4096'}),
                          {'net.ipv4.ip_forward': '1', 'net.core.somaxconn': '4096'}, '0-1')
    assert plan['changes'] == {'sysctls': {'net.ipv4.ip_forward': '1'},
                               'irqbalance': {'banned_cpulist': '0-1'}}
    assert plan['before'] == {'sysctls': {'net.ipv4.ip_forward': '0'},
                              'irqbalance': {'banned_cpulist': '0'}}
    assert m.compute_plan(_current(), {}, '0')['changes'] == {}


def test_compute_plan_unsupported_and_restore_of_absent_line():
    plan = m.compute_plan(_current(**{'net.core.busy_poll': None}), {'net.core.busy_poll': '50'},
                          None, netns='ns1')
    assert plan['changes'] == {} and 'global' in plan['unsupported'][0]['reason']
    plan = m.compute_plan(_current(), {}, m.ABSENT, restoring=True)
    assert plan['changes'] == {'irqbalance': {'banned_cpulist': None}}
    cur = dict(_current(), irqbalance_installed=False)
    assert m.compute_plan(cur, {}, '1')['unsupported'][0]['key'] == 'irqbalance_banned_cpus'


@pytest.mark.parametrize('args,fragment', [
    ({'sysctls': {'net.core.somaxconn': [1]}}, 'not a sysctl value'),
    ({'sysctls': {'net.core.somaxconn': 'a\nb'}}, 'not a sysctl value'),
    ({'expected_cpus': [0, 4096]}, 'CPU 4096 does not exist'),
    ({'expected_cpus': [-1]}, 'not a CPU list'),
    ({'irqbalance_banned_cpus': True}, 'not a CPU list'),
    ({'state_dir': 'rel/dir'}, 'relative'),
    ({'state_dir': '/proc/kb'}, 'kernel pseudo file system'),
])
def test_validate_rejects_before_touching(args, fragment):
    p = dict({'netns': None, 'sysctls': {}, 'state_dir': '/run/kbypass/tuning'}, **args)
    with pytest.raises(ValueError, match=fragment):
        m.validate(p, [0, 1])


@pytest.mark.parametrize('args,fragment', [
    ({'sysctls': {'net/core/x': 1}}, 'not a sysctl name'),
    ({'netns': 'a b'}, 'invalid'),
    ({'irqbalance_banned_cpus': '3-1'}, 'invalid CPU range'),
    ({'check_process': 'kbypass-fwd'}, 'expected_cpus'),
])
def test_main_bad_input(args, fragment, monkeypatch):
    monkeypatch.setattr(m, 'fs_op', lambda *a, **k: pytest.fail('touched the host'))
    res = run_main(m, args)
    assert res['failed'] and fragment in res['msg']


def test_state_file_names_cannot_collide():
    from ansible_collections.kbypass.xdp.plugins.module_utils._tuning_state import state_file
    objects = [('a-b', 'c'), ('a', 'b-c'), (None, 'host'), (None, None), ('nic', None),
               ('ns1', 'x'), ('init_net', 'eth0'), (None, 'eth0'), (None, 'a-b-c')]
    names = [state_file('/d', ns, ifname) for ns, ifname in objects]
    assert len(set(names)) == len(names), names


def test_read_config_refuses_a_directory(tmp_path):
    with pytest.raises(ValueError, match='is a directory'):
        m.read_config(str(tmp_path))
    assert m.read_config(str(tmp_path / 'none')) == {'path': str(tmp_path / 'none'), 'text': None}
