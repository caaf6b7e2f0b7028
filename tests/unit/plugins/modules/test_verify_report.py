"""Unit tests for kbypass.xdp.verify_report: verdict, files written, check mode."""
import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.kbypass.xdp.plugins.modules import verify_report as vr
from report_samples import fwd, good_data  # tests/unit/report_samples.py


def run(capsys, args, check=False):
    if check:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            vr.main()
    return json.loads(capsys.readouterr().out)


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
