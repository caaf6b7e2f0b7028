"""kbypass.xdp.traffic_bench, bench_report and role bench against the real kernel.

Real namespaces and veth pairs, the real steering program and XDP_TX reflector
(files/bpf), the real kbypass-fwd / kbypass-gen / kbypass-udpecho built from files/
in a temporary directory. Nothing is mocked.

Names (prefix ``kbb``): the throttle test's bed kbb5/kbb6 (kbbv4 198.18.250.41 <->
kbbv5 198.18.250.42); the two-port test's "ports" kbb3/kbb4 (kbbv2 198.18.250.21 <->
kbbv3 198.18.250.22); the role's own default bed kbb1/kbb2 (kbbv0/kbbv1). Forwarder
runtime files go to /run/kbypass/kbb-test. Everything is removed in finalizers, also on
failure. About 3 minutes on the 2-core box.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import (BIN, ROOT, _env, copy_build, kill_state_processes, netns_list, run_module, sh,
                      state_processes)

from ansible_collections.kbypass.xdp.plugins.module_utils import _bench

STATE = '/run/kbypass/kbb-test'
PIN_ROOT = '/sys/fs/bpf/kbypass'
CGROUP = '/sys/fs/cgroup/cpu/kbb-throttle'

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (netns, XDP, AF_XDP)')


@pytest.fixture(scope='module')
def build(tmp_path_factory):
    top = tmp_path_factory.mktemp('kbb_build')
    bpf = copy_build(os.path.join(ROOT, 'files', 'bpf'), str(top / 'bpf'))
    fwd = copy_build(os.path.join(ROOT, 'files', 'forwarder'), str(top / 'forwarder'))
    return {'bpf': bpf, 'bin': fwd, 'top': str(top)}


def _kill_ours():
    kill_state_processes(STATE, remove=True)


def _remove(*namespaces):
    for ns in namespaces:
        if ns in netns_list():
            sh(['ip', 'netns', 'del', ns], check=False)
        shutil.rmtree(os.path.join(PIN_ROOT, ns), ignore_errors=True)


def _pair(ns_a, if_a, addr_a, ns_b, if_b, addr_b):
    _remove(ns_a, ns_b)
    r = run_module('netns_veth', {'namespaces': [ns_a, ns_b], 'links': [
        {'name': if_a, 'netns': ns_a, 'addresses': [addr_a + '/24'],
         'peer': {'name': if_b, 'netns': ns_b, 'addresses': [addr_b + '/24']}}]})
    assert not r.get('failed'), r


def _unpair(*ends):
    """Stop our forwarders, detach our programs, remove the namespaces of ``ends``."""
    _kill_ours()
    for ns, ifname in ends:
        run_module('xdp_attach', {'interface': ifname, 'netns': ns, 'state': 'absent'})
    _remove(*[ns for ns, ifname in ends])


def _attach(build, ifname, netns, ports, program='xdp_steer'):
    r = run_module('xdp_attach', {'interface': ifname, 'netns': netns, 'ports': ports,
                                  'object': os.path.join(build['bpf'], program + '.o'),
                                  'program': program})
    assert not r.get('failed'), r


def _attached(netns, ifname):
    out = sh(['bpftool', '-j', 'net', 'show', 'dev', ifname], netns=netns).stdout
    data = json.loads(out)
    data = data[0] if isinstance(data, list) else data
    names = []
    for x in data.get('xdp') or []:
        prog = json.loads(sh(['bpftool', '-j', 'prog', 'show', 'id', str(x['id'])]).stdout)
        names.append(prog.get('name'))
    return names


# --------------------------------------------------------------------------- bad input
def _bench_args(build, **kw):
    args = {'path': 'afxdp-echo', 'sizes': [64], 'gen_netns': 'kbb6', 'gen_ifname': 'kbbv5',
            'gen_cpu': 0, 'dst': '198.18.250.41', 'dut_netns': 'kbb5', 'dut_ifname': 'kbbv4',
            'forwarder_stats_file': STATE + '/kbb-t.stats.json',
            'generator': os.path.join(build['bin'], 'kbypass-gen'),
            'udpecho': os.path.join(build['bin'], 'kbypass-udpecho')}
    args.update(kw)
    return args


@pytest.mark.parametrize('change, words', [
    ({'sizes': [64, 9100]}, 'sizes [9100] out of range: frames are 64-9014 bytes'),
    ({'max_rate': -5}, 'max_rate -5 out of range'),
    ({'gen_cpu': 4095}, 'gen_cpu 4095 does not exist on this host'),
])
def test_bad_input_fails_before_anything(build, change, words):
    # no bed exists at all: the arguments alone are refused
    r = run_module('traffic_bench', _bench_args(build, **change))
    assert r.get('failed') and words in r['msg'], r
    assert 'Traceback' not in r['msg']


@pytest.fixture
def pair(build):
    _pair('kbb5', 'kbbv4', '198.18.250.41', 'kbb6', 'kbbv5', '198.18.250.42')
    try:
        yield build
    finally:
        _unpair(('kbb5', 'kbbv4'), ('kbb6', 'kbbv5'))
        _rmcgroup()


def test_dut_without_steering_program_is_refused(pair):
    _attach(pair, 'kbbv5', 'kbb6', [40000])
    r = run_module('traffic_bench', _bench_args(pair, path='kernel-echo'))
    assert r.get('failed'), r
    assert 'DUT interface kbbv4 in netns kbb5 has no xdp_steer program pinned' in r['msg']


def test_generator_that_cannot_reach_the_dut_is_refused(pair):
    _attach(pair, 'kbbv5', 'kbb6', [40000])
    _attach(pair, 'kbbv4', 'kbb5', [4242])
    r = run_module('traffic_bench', _bench_args(pair, path='kernel-echo', dst='198.18.250.49'))
    assert r.get('failed'), r
    assert 'cannot reach the DUT at 198.18.250.49' in r['msg']


# --------------------------------------------------------------------------- the knee
def _rmcgroup():
    """Move our tasks back to the root cgroup, then remove the throttle group."""
    try:
        with open(CGROUP + '/tasks') as fh:
            tids = fh.read().split()
        for tid in tids:
            try:
                with open(os.path.dirname(CGROUP) + '/tasks', 'w') as fh:
                    fh.write(tid)
            except OSError:
                pass
        os.rmdir(CGROUP)
    except OSError:
        pass


def _throttle(pid, percent):
    """CPU quota for every thread of ``pid`` (cgroup v1 cpu controller)."""
    os.makedirs(CGROUP, exist_ok=True)
    with open(CGROUP + '/cpu.cfs_period_us', 'w') as fh:
        fh.write('100000')
    with open(CGROUP + '/cpu.cfs_quota_us', 'w') as fh:
        fh.write(str(percent * 1000))
    for tid in os.listdir('/proc/%d/task' % pid):
        with open(CGROUP + '/tasks', 'w') as fh:
            fh.write(tid)


@pytest.mark.skipif(not os.path.isdir(os.path.dirname(CGROUP)),
                    reason='no cgroup v1 cpu controller to throttle the forwarder with')
def test_sweep_finds_the_knee_of_a_throttled_forwarder(pair, tmp_path):
    """With the forwarder limited to 5 % of a CPU, loss begins at a far lower offered load,
    and the report says so."""
    _attach(pair, 'kbbv5', 'kbb6', [40000])
    _attach(pair, 'kbbv4', 'kbb5', [4242])
    r = run_module('afxdp_forwarder', {
        'name': 'kbb-t', 'mode': 'echo', 'interface': 'kbbv4', 'netns': 'kbb5', 'queues': [0],
        'cpus': [1], 'stats_interval': 0.1, 'state_dir': STATE, 'supervisor': 'process',
        'binary': os.path.join(pair['bin'], 'kbypass-fwd')})
    assert not r.get('failed'), r
    # 200 %: a forwarder that gets 5 ms of CPU per 100 ms absorbs a 0.3 s burst a little
    # above its maximum in its rings; twice its maximum it cannot
    args = _bench_args(pair, repetitions=3, percents=[10, 25, 50, 75, 100, 110, 200])
    free = run_module('traffic_bench', args)
    assert not free.get('failed'), free
    _throttle(r['pid'], 5)
    slow = run_module('traffic_bench', args)
    assert not slow.get('failed'), slow
    free, slow = free['results'][0], slow['results'][0]
    print('\n'.join(_bench.summary_lines([free], 'free') + _bench.summary_lines([slow], 'throttled')))
    assert slow['knee'] is not None, slow
    # the free forwarder carried (without loss, or delivered) well above where the
    # throttled one starts losing
    free_capacity = max(free['zero_loss']['rate'], free['max']['delivered_pps'])
    assert slow['knee']['offered_pps'] < 0.5 * free_capacity, (free, slow)
    assert slow['max']['delivered_pps'] < 0.5 * free['max']['delivered_pps'], (free, slow)
    # every point is min/median/max over 3 repetitions
    assert all(pt['repetitions'] == 3 and set(pt['loss']) == {'min', 'median', 'max'}
               for pt in slow['sweep'])
    # each point says how much CPU time the hypervisor took during its trials (/proc/stat)
    assert all(0.0 <= pt['steal_pct']['min'] <= pt['steal_pct']['max'] <= 100.0 for pt in slow['sweep'])

    for host, res in (('free', free), ('throttled', slow)):
        rep = run_module('bench_report', {'host': host, 'report_dir': str(tmp_path),
                                          'run': {'results': [res], 'profile': 'quick'}})
        assert not rep.get('failed'), rep
    md = (tmp_path / 'bench-throttled.md').read_text()
    row = [l for l in md.splitlines() if l.startswith('| afxdp-echo | 64 B |')][0]
    assert '%d %%)' % slow['knee']['percent'] in row, row
    for kind in ('delivered', 'loss', 'rtt', 'cpu'):
        png = tmp_path / ('bench-throttled-%s.png' % kind)
        assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    fleet = run_module('bench_report', {'scope': 'fleet', 'hosts': ['free', 'throttled'],
                                        'report_dir': str(tmp_path)})
    table = (tmp_path / 'bench-fleet.md').read_text()
    assert '| free | afxdp-echo |' in table and '| throttled | afxdp-echo |' in table, fleet


# --------------------------------------------------------------------------- the role
def _playbook(build, tmp_path, extra):
    vars_ = {'forwarder_bin_dir': build['bin'], 'bpf_programs_install_dir': build['bpf'],
             'bench_forwarder_state_dir': STATE, 'bench_report_dir': str(tmp_path / 'reports'),
             'bench_sizes': [64], 'bench_percents': [50, 100], 'bench_repetitions': 1}
    vars_.update(extra)
    (tmp_path / 'vars.json').write_text(json.dumps(vars_))
    (tmp_path / 'hosts.json').write_text(json.dumps({'kbypass_hosts': {'hosts': {'localhost': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}}}}))
    p = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', str(tmp_path / 'hosts.json'),
                        '-e', '@%s' % (tmp_path / 'vars.json'), '--skip-tags', 'build',
                        os.path.join(ROOT, 'playbooks', 'bench.yml')],
                       cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900,
                       check=False)
    out = json.loads(p.stdout)
    return out['stats']['localhost'], out


def _failure(out):
    for task in out['plays'][-1]['tasks']:
        res = task['hosts'].get('localhost') or {}
        if res.get('failed') and not res.get('ignored'):
            return [r.get('msg') for r in res.get('results') or [] if r.get('failed')] \
                or res.get('msg')
    return None


@pytest.fixture
def ports(build):
    """Two namespaces standing in for two ports of a NIC host; the DUT carries the steering
    program as a user's pipeline (bpf_programs role) would have left it."""
    _pair('kbb3', 'kbbv2', '198.18.250.21', 'kbb4', 'kbbv3', '198.18.250.22')
    _attach(build, 'kbbv2', 'kbb3', [4242, 4250])
    try:
        yield build
    finally:
        _unpair(('kbb3', 'kbbv2'), ('kbb4', 'kbbv3'))


def test_role_two_port_setup_measures_and_restores(ports, tmp_path):
    stats, out = _playbook(ports, tmp_path, {
        'bench_topology': 'twoport',
        'bench_paths': ['afxdp-echo', 'afxdp-echo-busy', 'kernel-echo', 'xdp-tx'],
        'bench_dut_netns': 'kbb3', 'bench_dut_ifname': 'kbbv2',
        'bench_dut_address': '198.18.250.21', 'bench_dut_ports': [4242, 4250],
        'bench_gen_netns': 'kbb4', 'bench_gen_ifname': 'kbbv3',
        'bench_rates': [20000], 'bench_search_repetitions': 2})
    assert stats['failures'] == 0, _failure(out)
    reports = tmp_path / 'reports'
    names = sorted(p.name for p in reports.iterdir())
    assert names == ['bench-fleet.json', 'bench-fleet.md', 'bench-localhost-cpu.png',
                     'bench-localhost-delivered.png', 'bench-localhost-loss.png',
                     'bench-localhost-rtt.png', 'bench-localhost.json', 'bench-localhost.md']
    run = json.loads((reports / 'bench-localhost.json').read_text())
    by = dict((r['path'], r) for r in run['results'])
    assert sorted(by) == ['afxdp-echo', 'afxdp-echo-busy', 'kernel-echo', 'xdp-tx']
    assert all(r['max']['delivered_pps'] > 0 for r in run['results']), run['results']
    # two zero-loss searches each, a point at the fixed 20 kpps, the ratios to the reflector
    assert all(r['zero_loss']['searches'] == 2 and set(r['zero_loss']['rates']) ==
               {'min', 'median', 'max'} for r in run['results']), run['results']
    fixed = dict((p, by[p]['fixed'][0]) for p in by)
    assert all(pt['target_pps'] == 20000 for pt in fixed.values()), fixed
    # the dedicated-core forwarder never sleeps (a busy-poll loop between packets): it
    # takes more CPU than the sleeping one at the same rate
    assert fixed['afxdp-echo-busy']['dut_cpu_pct']['median'] > \
        fixed['afxdp-echo']['dut_cpu_pct']['median'], fixed
    # ... but one core at most: the generator's set-up and reply wait, which the busy
    # forwarder spins through too, are outside the window its CPU is read over (10 ms ticks)
    assert fixed['afxdp-echo-busy']['dut_cpu_pct']['max'] <= 105, fixed
    md = (reports / 'bench-localhost.md').read_text()
    assert '## At fixed offered rates' in md and '| afxdp-echo-busy | 64 B | 20 kpps |' in md
    assert '## Against the in-kernel XDP_TX reflector' in md
    # the user's steering program is back on the DUT with its ports; the generator's port
    # carries nothing of ours; no forwarder of the bench runs
    assert _attached('kbb3', 'kbbv2') == ['xdp_steer']
    r = run_module('xdp_attach', {'interface': 'kbbv2', 'netns': 'kbb3', 'ports': [4242, 4250],
                                  'object': os.path.join(ports['bpf'], 'xdp_steer.o')})
    assert r['changed'] is False, r
    assert _attached('kbb4', 'kbbv3') == []
    assert state_processes(STATE) == []


def test_role_removes_its_bed_after_a_failure(build, tmp_path):
    """The default bed (kbb1/kbb2) is built, the kernel path's binary is missing: the run
    fails before any traffic and leaves no namespace, pin or process behind."""
    _remove('kbb1', 'kbb2')
    empty = tmp_path / 'nobin'
    empty.mkdir()
    for name in ('kbypass-fwd', 'kbypass-gen'):
        os.symlink(os.path.join(build['bin'], name), str(empty / name))
    stats, out = _playbook(dict(build, bin=str(empty)), tmp_path, {'bench_paths': ['kernel-echo']})
    assert stats['failures'] == 1
    assert 'kbypass-udpecho is missing' in str(_failure(out))
    assert not {'kbb1', 'kbb2'} & set(netns_list())
    assert not os.path.exists(os.path.join(PIN_ROOT, 'kbb1'))
    assert not os.path.exists(os.path.join(PIN_ROOT, 'kbb2'))
