"""Unit tests for kbypass.xdp.verify_report: verdict, files written, check mode."""
import json

import pytest

from ansible_collections.kbypass.xdp.plugins.modules import verify_report as vr
from module_main import run_main  # tests/unit/module_main.py
from report_samples import fwd, good_data, kernel_view  # tests/unit/report_samples.py


def run(capsys, args, check=False):
    return run_main(vr, args, check)


def test_pass_writes_markdown_json_and_png(tmp_path, capsys):
    out = run(capsys, {'host': 'bench1', 'data': good_data(), 'report_dir': str(tmp_path / 'r')})
    assert out['ok'] is True and out['failures'] == []
    assert (tmp_path / 'r' / 'verify-bench1.md').read_text().startswith('# kbypass.xdp verify')
    doc = json.loads((tmp_path / 'r' / 'verify-bench1.json').read_text())
    assert doc['ok'] is True
    assert vr.HAS_MATPLOTLIB, 'matplotlib is in requirements.txt: the plot must render'
    png = (tmp_path / 'r' / 'verify-bench1.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n'
    assert out['files']['png'].endswith('verify-bench1.png') and out['changed'] is True


def test_same_data_again_is_no_change_and_new_data_is(tmp_path, capsys):
    args = {'host': 'h', 'data': good_data(), 'report_dir': str(tmp_path)}
    assert run(capsys, args)['changed'] is True
    mtimes = dict((p.name, p.stat().st_mtime_ns) for p in tmp_path.iterdir())
    assert sorted(mtimes) == ['verify-h.json', 'verify-h.md', 'verify-h.png']
    again = run(capsys, args)
    assert again['changed'] is False  # the PNG too renders byte for byte the same
    assert dict((p.name, p.stat().st_mtime_ns) for p in tmp_path.iterdir()) == mtimes
    newer = dict(args, data=dict(good_data(), timestamp='2026-01-02T00:00:00Z'))
    assert run(capsys, newer, check=True)['changed'] is True
    assert dict((p.name, p.stat().st_mtime_ns) for p in tmp_path.iterdir()) == mtimes


def test_disagreement_is_returned_not_raised(tmp_path, capsys):
    data = good_data()
    data['matching'][0]['forwarder_after'] = fwd(0, 0)
    out = run(capsys, {'host': 'h', 'data': data, 'report_dir': str(tmp_path), 'plot': False})
    assert out['ok'] is False
    assert out['msg'].startswith('IPv4 198.19.0.10:4242: forwarder RX 0 != XDP redirected 2000')
    assert 'FAIL' in (tmp_path / 'verify-h.md').read_text()
    assert not (tmp_path / 'verify-h.png').exists()


def test_check_mode_predicts_the_write_and_writes_nothing(tmp_path, capsys):
    out = run(capsys, {'host': 'h', 'data': good_data(), 'report_dir': str(tmp_path / 'x')},
              check=True)
    assert out['ok'] is True and out['changed'] is True  # a real run would write the files
    assert not (tmp_path / 'x').exists()


def test_bad_host_name(tmp_path, capsys):
    out = run(capsys, {'host': '../etc', 'data': {}, 'report_dir': str(tmp_path)})
    assert out['failed'] is True and 'cannot be used in a file name' in out['msg']
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ #17 item 4: no PASS without evidence
def _without(path):
    data = good_data()
    node = data
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return data


@pytest.mark.parametrize('data,needle', [
    ({}, 'no matching burst was measured'),
    ({'failed': True, 'msg': 'boom'}, 'the measurement itself failed: boom'),
    ({'matching': 'x'}, 'matching is a str, not a list of bursts'),
    ({'matching': ['x']}, 'matching[0] is not a mapping'),
    (dict(good_data(), nonmatching='x'), 'nonmatching is a str'),
    (_without(['matching', 0, 'requested']), 'number of packets requested is missing'),
    (_without(['matching', 1, 'steer_after', 'redirected']), 'steer_after lacks counters redirected'),
    (_without(['matching', 0, 'generator', 'received']), 'generator counters missing: received'),
    (_without(['matching', 0, 'forwarder_after', 'tx_packets']), 'forwarder_after lacks tx_packets'),
    (_without(['nonmatching', 'steer_after']), 'nonmatching: steer_after lacks counters'),
])
def test_missing_evidence_is_fail_with_the_reason(tmp_path, capsys, data, needle):
    out = run(capsys, {'host': 'h', 'data': data, 'report_dir': str(tmp_path), 'plot': False})
    assert not out.get('failed'), out
    assert out['ok'] is False and any(needle in f for f in out['failures']), out['failures']
    assert 'Verdict: FAIL' in (tmp_path / 'verify-h.md').read_text()


def test_wrongly_shaped_data_is_a_clear_error(tmp_path, capsys):
    data = good_data()
    data['nonmatching']['udp'] = ['not a probe']
    out = run(capsys, {'host': 'h', 'data': data, 'report_dir': str(tmp_path), 'plot': False})
    assert out['failed'] is True and 'shape of the result of kbypass.xdp.traffic_probe' in out['msg']
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('host,label', [('qa\n2', 'qa_2'), ('qa\u202e2gnp.exe', 'qa_2gnp.exe'),
                                        ('a b', 'a_b')])
def test_host_names_are_sanitised_in_file_names(tmp_path, capsys, host, label):
    out = run(capsys, {'host': host, 'data': good_data(), 'report_dir': str(tmp_path), 'plot': False})
    assert out['files']['markdown'] == str(tmp_path / ('verify-%s.md' % label))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['verify-%s.json' % label,
                                                          'verify-%s.md' % label]


@pytest.mark.parametrize('report_dir,needle', [('reports', 'is relative'),
                                               ('/proc/kbr', 'pseudo file system')])
def test_report_dir_must_be_absolute_and_writable(capsys, report_dir, needle):
    out = run(capsys, {'host': 'h', 'data': good_data(), 'report_dir': report_dir})
    assert out['failed'] is True and needle in out['msg']


def test_kernel_view_goes_into_the_report_not_the_verdict(tmp_path, capsys):
    kernel = {'changed': False, 'view': kernel_view(), 'note': 'n'}
    out = run(capsys, {'host': 'h', 'data': good_data(), 'report_dir': str(tmp_path),
                       'plot': False, 'kernel': kernel})
    assert out['ok'] is True
    md = (tmp_path / 'verify-h.md').read_text()
    assert md.index('## Matching traffic') < md.index('## What the kernel sees')
    assert '| echo-ns1-veth0 | ns1 | veth0 | 0,1 | copy | True |' in md
    doc = json.loads((tmp_path / 'verify-h.json').read_text())
    assert doc['data']['kernel']['programs'][0]['tag'] == 'abcd'
    # without it, no section
    run(capsys, {'host': 'h', 'data': good_data(), 'report_dir': str(tmp_path), 'plot': False})
    assert 'What the kernel sees' not in (tmp_path / 'verify-h.md').read_text()
