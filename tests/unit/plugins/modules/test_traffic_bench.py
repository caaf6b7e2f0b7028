"""Unit tests for kbypass.xdp.traffic_bench: argument checks (pure) and validate_only."""
import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.kbypass.xdp.plugins.modules import traffic_bench as tb

ARGS = {'path': 'kernel-echo', 'sizes': [64], 'gen_ifname': 'kbbv1', 'gen_netns': 'kbb2',
        'gen_cpu': 0, 'dst': '198.18.250.1', 'dut_ifname': 'kbbv0', 'dut_netns': 'kbb1',
        'dut_cpu': 1}


def params(**kw):
    p = dict.fromkeys(('trial_s', 'max_trial_s', 'repetitions', 'search_trials', 'percents',
                       'forwarder_stats_file'))
    p.update({'max_rate': 0, 'max_packets': 5000000, 'dport': 4242, 'sport': 40000,
              'reply_timeout_ms': 200})
    p.update(ARGS)
    p.update(kw)
    return p


def test_validate_accepts_a_good_set_up():
    assert tb.validate(params(), [0, 1]) == []


@pytest.mark.parametrize('change, words', [
    ({'gen_ifname': 'a-name-far-too-long'}, 'gen_ifname: interface name'),
    ({'dut_netns': '../x'}, 'dut_netns: network namespace name'),
    ({'dport': 0}, 'dport 0 is not a UDP port'),
    ({'path': 'afxdp-echo'}, 'path afxdp-echo needs forwarder_stats_file'),
    ({'reply_timeout_ms': 60000}, 'reply_timeout_ms 60000 out of range'),
    ({'dut_cpu': 3}, 'dut_cpu 3 does not exist on this host'),
])
def test_validate_names_the_problem(change, words):
    assert any(words in e for e in tb.validate(params(**change), [0, 1]))


def run(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            tb.main()
    return json.loads(capsys.readouterr().out)


def test_validate_only_touches_nothing(capsys):
    # the namespaces do not exist: validate_only must not look for them
    out = run(capsys, dict(ARGS, validate_only=True, gen_netns='kbb-none', dut_netns='kbb-none'))
    assert out['changed'] is False and 'failed' not in out
    assert out['environment']['cpus'] >= 1


def test_bad_sizes_fail_with_a_message(capsys):
    out = run(capsys, dict(ARGS, sizes=[32], validate_only=True))
    assert out['failed'] and out['msg'] == ('invalid arguments: sizes [32] out of range: frames '
                                            'are 64-9014 bytes (Ethernet, without FCS)')
