"""Unit tests for kbypass.xdp.bench_report: host report with four plots, fleet table,
check mode; and hack/bench.py's command lines (the Ctrl-C clean-up run)."""
import importlib.util
import json
import os

from ansible_collections.kbypass.xdp.plugins.module_utils import _bench
from ansible_collections.kbypass.xdp.plugins.modules import bench_report as br
from module_main import run_main  # tests/unit/module_main.py

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))


def run(capsys, args, check=False):
    return run_main(br, args, check)


def spread(v):
    return {'min': v * 0.9, 'median': v, 'max': v * 1.1}


def sample(path, size, peak):
    """A path whose loss starts at 90 % of ``peak``."""
    points = []
    for pct, target in _bench.sweep_targets(peak):
        loss = 0.0 if pct < 90 else 0.05
        gen = {'sent': int(target * 0.3), 'received': int(target * 0.3 * (1 - loss)),
               'rtt_us': {'p50': 10.0 + pct, 'p99': 40.0 + pct, 'max': 90.0 + pct},
               'cpu_of': {'cpu_s': 0.01, 'window_s': 0.3}}
        trial = _bench.trial_figures(gen, 0.3, replies=True, softirq_s=0.02)
        points.append(_bench.summarize_point(target, pct, [trial] * 3))
    search = [{'rate': peak, 'loss': 0.05}, {'rate': peak * 0.8, 'loss': 0.0}]
    return {'path': path, 'size': size, 'max': {'delivered_pps': peak},
            'zero_loss': {'rate': peak * 0.8, 'trials': search, 'converged': True},
            'sweep': points, 'knee': _bench.knee(points)}


# a sink path (no RTT) among echo paths, two frame sizes: every kind of panel, few of them
RUN = {'results': [sample(p, s, 100000.0 * (i + 1) / (1 + s / 512.0))
                   for i, p in enumerate(('afxdp-echo', 'afxdp-rxdrop', 'xdp-tx'))
                   for s in (64, 1500)],
       'profile': 'quick', 'topology': 'netns', 'timestamp': '2026-12-02T00:00:00Z'}


def test_host_report_has_markdown_json_and_four_plots(tmp_path, capsys):
    out = run(capsys, {'host': 'h1', 'run': RUN, 'report_dir': str(tmp_path)})
    assert out['changed'] is True
    assert br.HAS_MATPLOTLIB, 'matplotlib is in test-requirements.txt: the plots must render'
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ['bench-h1-cpu.png', 'bench-h1-delivered.png', 'bench-h1-loss.png',
                     'bench-h1-rtt.png', 'bench-h1.json', 'bench-h1.md']
    for kind in ('cpu', 'delivered', 'loss', 'rtt'):
        assert (tmp_path / ('bench-h1-%s.png' % kind)).read_bytes()[:4] == b'\x89PNG'
    md = (tmp_path / 'bench-h1.md').read_text()
    assert '![Round-trip time vs offered load](bench-h1-rtt.png)' in md
    # a line per path and size, then the ratios of the other paths to the reflector
    assert len(out['summary']) == 10 and out['summary'][0].startswith('h1: afxdp-echo 64B')
    assert out['summary'][6] == 'h1: afxdp-echo 64B / xdp-tx: zero-loss x0.33 (0.33–0.33), max x0.33'
    assert '## Against the in-kernel XDP_TX reflector' in md
    assert json.loads((tmp_path / 'bench-h1.json').read_text())['host'] == 'h1'
    # the same run again writes nothing (the plots render byte for byte the same)
    assert run(capsys, {'host': 'h1', 'run': RUN, 'report_dir': str(tmp_path)})['changed'] is False


def test_check_mode_writes_nothing(tmp_path, capsys):
    out = run(capsys, {'host': 'h1', 'run': RUN, 'report_dir': str(tmp_path / 'r')}, check=True)
    assert out['changed'] is True and not (tmp_path / 'r').exists()


def test_fleet_table_from_the_hosts_reports(tmp_path, capsys):
    for host in ('h2', 'h1'):
        run(capsys, {'host': host, 'run': RUN, 'report_dir': str(tmp_path), 'plot': False})
    out = run(capsys, {'scope': 'fleet', 'hosts': ['h1', 'h2', 'gone'], 'report_dir': str(tmp_path)})
    table = (tmp_path / 'bench-fleet.md').read_text()
    assert table.index('| h1 | afxdp-echo |') < table.index('| h2 | afxdp-echo |')
    assert '| 64 B zero-loss / max | 1500 B zero-loss / max |' in table
    assert 'no benchmark of gone' in json.dumps(out), out.keys()
    # the fleet JSON holds every host's whole run, not only its figures
    fleet = json.loads((tmp_path / 'bench-fleet.json').read_text())
    assert sorted(fleet) == ['h1', 'h2'] and fleet['h1']['profile'] == RUN['profile']


def test_a_host_name_that_is_no_file_name_is_refused(tmp_path, capsys):
    out = run(capsys, {'host': '../x', 'run': RUN, 'report_dir': str(tmp_path)})
    assert out['failed'] and 'cannot be used in a file name' in out['msg']


def _wrapper():
    spec = importlib.util.spec_from_file_location('kbb_hack_bench', os.path.join(ROOT, 'hack', 'bench.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_wrapper_cleans_up_with_the_same_arguments():
    mod = _wrapper()
    run_ = mod.playbook_argv(['-e', 'bench_profile=full'])
    clean = mod.cleanup_argv(['-e', 'bench_profile=full'])
    assert run_[1:] == ['-i', 'inventory/local', mod.PLAYBOOK, '-e', 'bench_profile=full']
    assert clean[-6:] == ['-e', 'bench_profile=full', '-e', 'bench_state=absent', '--skip-tags', 'build']
    assert mod.PLAYBOOK.endswith('playbooks/bench.yml')
