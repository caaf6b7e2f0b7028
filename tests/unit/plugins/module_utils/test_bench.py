"""Pure logic of the benchmark: the zero-loss search, sweep targets, aggregation, knee,
validation and the reports."""
import json

import pytest

from ansible_collections.kbypass.xdp.plugins.module_utils import _bench


def capacity(limit):
    """A path that carries ``limit`` pps without loss and loses the excess above it."""
    calls = []

    def trial(rate):
        calls.append(rate)
        return max(0.0, (rate - limit) / rate)
    return trial, calls


# --------------------------------------------------------------------------- search
def test_search_converges_on_the_capacity():
    trial, calls = capacity(300000)
    res = _bench.zero_loss_search(trial, high=1000000, max_trials=20, resolution=0.01)
    assert res['converged']
    assert 290000 <= res['rate'] <= 300000
    assert calls[0] == 1000000                     # the maximum is tried first
    assert all(t['loss'] == 0 for t in res['trials'] if t['rate'] <= 300000)


def test_search_stops_at_once_without_loss_at_the_top():
    trial, calls = capacity(2000000)
    res = _bench.zero_loss_search(trial, high=1000000, max_trials=10)
    assert res == {'rate': 1000000, 'trials': [{'rate': 1000000, 'loss': 0.0}], 'converged': True}


def test_search_is_bounded_by_its_trials():
    trial, calls = capacity(123457)
    res = _bench.zero_loss_search(trial, high=1000000, max_trials=4, resolution=0.0001)
    assert len(calls) == 4
    assert not res['converged']
    assert res['rate'] <= 123457                   # never a rate that lost packets


def test_search_reports_zero_when_everything_loses():
    res = _bench.zero_loss_search(lambda rate: 0.5, high=1000, max_trials=6)
    assert res['rate'] == 0
    assert len(res['trials']) == 6


def test_search_halves_between_good_and_bad():
    trial, calls = capacity(600)
    _bench.zero_loss_search(trial, high=1000, max_trials=3, resolution=0.001)
    assert calls == [1000, 500.0, 750.0]


# --------------------------------------------------------------------------- sweep
def test_sweep_targets_are_percentages_of_the_maximum():
    assert _bench.sweep_targets(200000) == [
        (10, 20000), (25, 50000), (50, 100000), (75, 150000), (90, 180000), (100, 200000),
        (110, 220000)]
    assert _bench.sweep_targets(3, [10]) == [(10, 1)]


def test_spread_and_summarize_point():
    assert _bench.spread([3, None, 1, 2]) == {'min': 1, 'median': 2, 'max': 3}
    assert _bench.spread([None]) is None
    trials = [{'offered_pps': 100.0, 'loss': 0.0}, {'offered_pps': 110.0, 'loss': 0.1},
              {'offered_pps': 90.0, 'loss': 0.0}]
    pt = _bench.summarize_point(100, 50, trials)
    assert pt['repetitions'] == 3
    assert pt['offered_pps'] == {'min': 90.0, 'median': 100.0, 'max': 110.0}
    assert pt['loss'] == {'min': 0.0, 'median': 0.0, 'max': 0.1}
    assert pt['rtt_p50_us'] is None


def point(target, pct, loss):
    off = target * 0.99
    return {'target_pps': target, 'percent': pct,
            'offered_pps': {'min': off, 'median': off, 'max': off},
            'loss': {'min': loss, 'median': loss, 'max': loss}}


def test_knee_is_the_first_point_that_loses():
    points = [point(10, 10, 0.0), point(50, 50, 0.0005), point(75, 75, 0.02), point(90, 90, 0.3)]
    k = _bench.knee(points)
    assert (k['target_pps'], k['percent'], k['loss']) == (75, 75, 0.02)
    assert _bench.knee(points[:2]) is None         # 0.05 % is below the threshold


# --------------------------------------------------------------------------- trials
def test_trial_figures_echo_counts_replies():
    gen = {'sent': 30000, 'received': 29700, 'rtt_us': {'p50': 10.0, 'p99': 50.0, 'max': 900.0},
           'cpu_of': {'pid': 7, 'cpu_s': 0.02, 'window_s': 0.3}}
    t = _bench.trial_figures(gen, 0.3, replies=True, softirq_s=0.01)
    assert t['offered_pps'] == pytest.approx(100000)
    assert t['delivered_pps'] == pytest.approx(99000)
    assert t['loss'] == pytest.approx(0.01)
    assert t['rtt_p999_us'] == 900.0               # no p99.9 from the generator: the max
    assert t['cpu_s_per_mpkt'] == pytest.approx(0.03 / 0.0297)
    assert t['dut_cpu_s_per_mpkt'] == pytest.approx(0.02 / 0.0297)


def test_dut_cpu_is_a_share_of_the_window_the_generator_sent_in():
    # a DUT that spins takes its whole core: 100 %, not more, however long the generator's
    # set-up and reply wait (outside cpu_of's window) took
    gen = {'sent': 30000, 'received': 30000, 'rtt_us': None,
           'cpu_of': {'pid': 7, 'cpu_s': 0.31, 'window_s': 0.31}}
    assert _bench.trial_figures(gen, 0.3, replies=True)['dut_cpu_pct'] == pytest.approx(100.0)
    # no --cpu-of figure (no DUT process, or it could not be read): no CPU figure
    for cpu_of in (None, {}):
        t = _bench.trial_figures(dict(gen, cpu_of=cpu_of), 0.3, replies=True)
        assert t['dut_cpu_pct'] is None and t['dut_cpu_s_per_mpkt'] is None


def test_trial_figures_sink_counts_the_dut():
    gen = {'sent': 1000, 'received': None, 'rtt_us': None}
    t = _bench.trial_figures(gen, 1.0, replies=False, dut_rx=990)
    assert t['delivered'] == 990 and t['loss'] == pytest.approx(0.01)
    assert t['rtt_p50_us'] is None
    # a DUT counter that moved more than was sent (other traffic) is no negative loss
    assert _bench.trial_figures(gen, 1.0, replies=False, dut_rx=1200)['loss'] == 0.0


def test_trial_figures_prefers_a_real_p999():
    gen = {'sent': 10, 'received': 10, 'rtt_us': {'p50': 1, 'p99': 2, 'p99.9': 3, 'max': 9}}
    assert _bench.trial_figures(gen, 1.0, replies=True)['rtt_p999_us'] == 3


def test_trial_count_is_capped():
    assert _bench.trial_count(0, 1.0, 5000000) == 5000000
    assert _bench.trial_count(100000, 0.3, 5000000) == 33100
    assert _bench.trial_count(1e9, 30, 5000000) == 5000000
    assert _bench.trial_count(10, 0.1, 5000000) == 1000


# --------------------------------------------------------------------------- input
GOOD = {'path': 'afxdp-echo', 'sizes': [64, 512, 1500], 'max_rate': 0, 'gen_cpu': 0, 'dut_cpu': 1}


def test_validate_accepts_the_defaults():
    assert _bench.validate(GOOD, online_cpus=[0, 1]) == []


@pytest.mark.parametrize('change, words', [
    ({'sizes': [63, 1500]}, 'sizes [63] out of range'),
    ({'sizes': [9015]}, 'sizes [9015] out of range'),
    ({'sizes': []}, 'at least one frame size'),
    ({'max_rate': -1}, 'max_rate -1 out of range'),
    ({'max_rate': 10 ** 9}, 'max_rate 1000000000 out of range'),
    ({'dut_cpu': 7}, 'dut_cpu 7 does not exist on this host (online CPUs: 0,1)'),
    ({'gen_cpu': 2}, 'gen_cpu 2 does not exist'),
    ({'path': 'dpdk'}, "path 'dpdk' unknown"),
    ({'trial_s': 0.001}, 'trial_s 0.001 out of range'),
    ({'repetitions': 0}, 'repetitions 0 out of range'),
    ({'percents': [10, 0]}, 'percents [0] out of range'),
    ({'max_packets': 10}, 'max_packets 10 out of range'),
])
def test_validate_names_bad_input(change, words):
    errors = _bench.validate(dict(GOOD, **change), online_cpus=[0, 1])
    assert any(words in e for e in errors), errors


def test_profile_overrides_only_what_is_given():
    prof = _bench.profile('quick', {'trial_s': 1.0, 'repetitions': None})
    assert prof['trial_s'] == 1.0 and prof['repetitions'] == 3
    assert _bench.PROFILES['quick']['trial_s'] == 0.3   # the table itself is untouched


# --------------------------------------------------------------------------- reports
def result(path, size, zero_loss, peak, knee_at=None):
    pts = [point(int(peak * p / 100), p, 0.2 if knee_at and p >= knee_at else 0.0)
           for p in _bench.SWEEP_PERCENTS]
    for pt in pts:
        for m in ('delivered_pps', 'rtt_p50_us', 'rtt_p99_us', 'rtt_p999_us', 'dut_cpu_s',
                  'softirq_s', 'cpu_s_per_mpkt'):
            pt[m] = {'min': 1.0, 'median': 2.0, 'max': 3.0}
    return {'path': path, 'size': size, 'max': {'delivered_pps': peak},
            'zero_loss': {'rate': zero_loss, 'trials': [{'rate': peak, 'loss': 0.1},
                                                        {'rate': zero_loss, 'loss': 0.0}],
                          'converged': True},
            'sweep': pts, 'knee': _bench.knee(pts)}


RUN = {'results': [result('kernel-echo', 64, 150000, 200000, knee_at=90),
                   result('afxdp-echo', 64, 400000, 500000, knee_at=75)],
       'profile': 'quick', 'topology': 'netns', 'timestamp': 'T', 'repetitions': 3,
       'trial_s': 0.3, 'environment': {'kernel': 'k', 'cpus': 2}}


def test_summary_lines_name_max_zero_loss_and_knee():
    lines = _bench.summary_lines(RUN['results'], 'h1')
    # 500 kpps of 64-byte frames: 0.256 Gbit/s
    assert lines[0].startswith('h1: afxdp-echo 64B: max 500 kpps (0.26 Gbit/s), zero-loss 400 kpps '
                               '(0.20 Gbit/s)')
    assert '(75% of max)' in lines[0]
    assert lines[1].startswith('h1: kernel-echo 64B')


def test_jumbo_frames_are_a_size_and_show_gbit_per_second():
    assert _bench.validate(dict(GOOD, sizes=[64, 9000]), online_cpus=[0, 1]) == []
    line = _bench.summary_lines([result('afxdp-echo', 9000, 100000, 125000)])[0]
    assert line.startswith('afxdp-echo 9000B: max 125 kpps (9.00 Gbit/s), zero-loss 100 kpps (7.20 Gbit/s)')


def test_markdown_shows_the_knee_and_the_plots():
    md = _bench.render_markdown('h1', RUN, {'delivered': 'bench-h1-delivered.png'})
    assert ('| afxdp-echo | 64 B | 500 kpps (0.26 Gbit/s) | 400 kpps (0.20 Gbit/s) | 371 kpps (75 %) |'
            in md)
    assert '![Delivered vs offered load](bench-h1-delivered.png)' in md
    assert 'Loss vs offered load' not in md         # no such plot given
    assert md.index('afxdp-echo') < md.index('kernel-echo')


def test_fleet_table_has_a_row_per_host_and_path():
    other = {'results': [result('afxdp-echo', 64, 100000, 120000)]}
    md = _bench.render_fleet({'h2': other, 'h1': RUN})
    rows = [l for l in md.splitlines() if l.startswith(('| h1', '| h2'))]
    assert rows[2:] == ['| h1 | afxdp-echo | 400 kpps / 500 kpps (2.00) |',
                        '| h1 | kernel-echo | 150 kpps / 200 kpps (2.00) |',
                        '| h2 | afxdp-echo | 100 kpps / 120 kpps (2.00) |']
    # first what each host is: a host without an environment says so instead of failing
    assert rows[0] == '| h1 | T | quick | netns | k | 2 | ? / ? | ? | — |'
    assert rows[1].startswith('| h2 | ? |')


def test_render_json_is_stable():
    assert json.loads(_bench.render_json({'b': 1, 'a': [1]})) == {'a': [1], 'b': 1}
    assert _bench.render_json({'b': 1, 'a': 2}).index('"a"') < _bench.render_json({'b': 1, 'a': 2}).index('"b"')


def test_repeated_searches_report_the_median_and_the_spread():
    searches = [{'rate': r, 'trials': [{'rate': r, 'loss': 0.0}], 'converged': True}
                for r in (300.0, 100.0, 200.0)]
    z = _bench.repeated_search(searches)
    assert z['rate'] == 200.0 and z['rates'] == {'min': 100.0, 'median': 200.0, 'max': 300.0}
    assert z['per_search'] == [300.0, 100.0, 200.0] and len(z['trials']) == 3


def test_ratios_to_the_reflector_pair_the_searches_by_repetition():
    own = result('afxdp-echo', 64, 400000, 500000)
    own['zero_loss'] = _bench.repeated_search(
        [{'rate': r, 'trials': [], 'converged': True} for r in (400000.0, 450000.0, 300000.0)])
    ref = result('xdp-tx', 64, 500000, 500000)
    ref['zero_loss'] = _bench.repeated_search(
        [{'rate': r, 'trials': [], 'converged': True} for r in (500000.0, 500000.0, 600000.0)])
    other_size = result('afxdp-echo', 512, 100000, 100000)   # no reflector at 512 B: no ratio
    rows = _bench.ratios([ref, other_size, own])
    assert len(rows) == 1 and rows[0]['path'] == 'afxdp-echo'
    assert rows[0]['zero_loss'] == {'min': 0.5, 'median': 0.8, 'max': 0.9}
    assert rows[0]['max'] == 1.0


def test_fixed_rate_points_get_a_table_and_summary_lines():
    r = result('afxdp-echo', 64, 400000, 500000)
    trial = _bench.trial_figures({'sent': 100000, 'received': 100000,
                                  'rtt_us': {'p50': 50.0, 'p99': 200.0},
                                  'cpu_of': {'cpu_s': 0.25, 'window_s': 1.0}}, 1.0, replies=True)
    assert trial['dut_cpu_pct'] == 25.0
    r['fixed'] = [_bench.summarize_point(100000, None, [trial])]
    md = _bench.render_markdown('h1', dict(RUN, results=[r]))
    assert '| afxdp-echo | 64 B | 100 kpps | 0.00 (0.00–0.00) | 25 (25–25) | 50 (50–50) | ' \
        '200 (200–200) |' in md
    line = [x for x in _bench.summary_lines([r]) if 'at 100 kpps' in x]
    assert line == ['afxdp-echo 64B at 100 kpps: loss 0.00 (0.00–0.00) %, DUT CPU 25 (25–25) %, '
                    'RTT p50 / p99 50 (50–50) / 200 (200–200) us']


def test_bad_rates_and_search_repetitions_are_refused():
    errors = _bench.validate({'sizes': [64], 'path': 'afxdp-echo-busy', 'rates': [0, 100000],
                              'search_repetitions': 0})
    assert any(e.startswith('rates [0] out of range') for e in errors)
    assert any(e.startswith('search_repetitions 0 out of range') for e in errors)
    assert len(errors) == 2


def test_steps_the_generator_could_not_offer_are_marked_not_read_as_the_path():
    short = result('afxdp-rxdrop', 64, 900000, 900000)
    for pt in short['sweep']:
        if pt['percent'] >= 90:          # offered 70 % of the target from the 90 % step on
            pt['offered_pps'] = dict((k, 0.7 * pt['target_pps']) for k in ('min', 'median', 'max'))
    assert _bench.first_short(short['sweep']) == 90
    assert _bench.first_short(RUN['results'][0]['sweep']) is None   # 99 % offered is fine
    line = _bench.summary_lines([short])[0]
    assert line.endswith('no loss in the sweep; the generator fell short from the 90 % step')
    md = _bench.render_markdown('h1', dict(RUN, results=[short]))
    assert "| no loss up to the generator's limit; the generator fell short from the 90 % step |" in md
    sweep = md.split('| % of max')[1].split('\n\n')[0].splitlines()[2:]
    rows = [l.split(' | ')[0] for l in sweep]
    assert rows[-4:] == ['| 75', '| 90 *', '| 100 *', '| 110 *'], rows
    assert 'the step measures the generator, not the path' in md
    # a full run says nothing of the kind
    assert 'generator' not in _bench.render_markdown('h1', RUN).split('## Sweep points')[1]


# --------------------------------------------------------------------------- steal
def test_proc_stat_line_gives_softirq_steal_and_total():
    # cpu  user nice system idle iowait irq softirq steal guest guest_nice
    t = _bench.parse_proc_stat('cpu  100 0 50 800 10 5 20 15 0 0\n')
    assert t == {'softirq': 20, 'steal': 15, 'total': 1000}
    # guest time is already in user: not counted twice
    assert _bench.parse_proc_stat('cpu  100 0 50 800 10 5 20 15 99 99')['total'] == 1000
    before = _bench.parse_proc_stat('cpu  0 0 0 0 0 0 0 0')
    after = _bench.parse_proc_stat('cpu  300 0 100 500 0 0 50 50')
    assert _bench.steal_pct(after, before) == pytest.approx(5.0)
    assert _bench.steal_pct(before, before) is None


def _with_steal(res, medians, worst):
    for pt, med in zip(res['sweep'], medians):
        pt['steal_pct'] = {'min': 0.0, 'median': med, 'max': worst}
    return res


def test_steal_is_reported_and_warned_about_from_two_percent_median_or_ten_in_a_trial():
    calm = _with_steal(result('afxdp-echo', 64, 400000, 500000), [0.1] * 8, 0.5)
    md = _bench.render_markdown('h1', dict(RUN, results=[calm]))
    assert 'CPU time stolen by the hypervisor: 0.1 % per trial (median), 0.5 % in the worst trial.' in md
    assert 'Warning' not in md and 'warning' not in ' '.join(_bench.summary_lines([calm]))
    # one trial with a few per cent in a quiet run is no reason for a warning; 10 % is
    for worst, warned in ((9.9, False), (10.0, True)):
        one = _with_steal(result('afxdp-echo', 64, 400000, 500000), [0.0] * 8, worst)
        assert ('**Warning:**' in _bench.render_markdown('h1', dict(RUN, results=[one]))) is warned
    stolen = _with_steal(result('afxdp-echo', 64, 400000, 500000), [1.0, 3.0, 12.0], 25.0)
    assert _bench.run_steal([stolen]) == {'median': 3.0, 'max': 25.0}   # 3 points carry steal
    md = _bench.render_markdown('h1', dict(RUN, results=[stolen]))
    assert '> **Warning:** The hypervisor took CPU time from this machine during the run (3.0 %' in md
    assert md.split('## Sweep points')[1].count('| steal % |') == 1
    assert '| 25.0 (0.0–25.0) |' not in md and '| 12.0 (0.0–25.0) |' in md
    assert _bench.summary_lines([stolen], 'h1')[-1].startswith('h1: warning: the hypervisor took')
    fleet = _bench.render_fleet({'h1': dict(RUN, results=[stolen])})
    assert '| 3.0 / 25.0 |' in fleet
    # figures without steal (an older run) render as before
    assert _bench.run_steal(RUN['results']) is None
    assert 'stolen' not in _bench.render_markdown('h1', RUN)
