"""Jumbo frames, the bed and the host: netns_veth's link MTU and kernel_preflight's
multi-buffer probes, against the real kernel.

Names use the prefix ``kbja`` (namespaces kbja1/kbja2, links kbjav0/kbjav1), addresses
198.18.64.0/24. The preflight probes run for real; to see them fail, their inputs are forced
(a program loaded without BPF_F_XDP_HAS_FRAGS, a bind flag the kernel does not know) and the
real kernel refuses, as an older kernel would.
"""
import functools
import json
import os
import subprocess

import pytest

from conftest import netns_list, remove_netns, run_in_process, run_module, sh  # pylint: disable=import-error

from ansible_collections.kbypass.xdp.plugins.module_utils import _mbuf
from ansible_collections.kbypass.xdp.plugins.modules import kernel_preflight

NS1, NS2 = 'kbja1', 'kbja2'
V0, V1 = 'kbjav0', 'kbjav1'

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (netns, XDP, AF_XDP)')

_NOFRAGS_C = b'''#include <linux/bpf.h>
__attribute__((section("xdp"), used)) int pass(void *ctx) { return XDP_PASS; }
char _license[] __attribute__((section("license"), used)) = "GPL";
'''


@pytest.fixture
def bed():
    remove_netns(NS1, NS2)
    yield
    remove_netns(NS1, NS2)
    assert NS1 not in netns_list() and NS2 not in netns_list()


def _topo(**link):
    args = {'namespaces': [NS1, NS2], 'links': [dict(
        name=V0, netns=NS1, addresses=['198.18.64.1/24'],
        peer={'name': V1, 'netns': NS2, 'addresses': ['198.18.64.2/24']}, **link)]}
    return args


def _mtu(ns, dev):
    return json.loads(sh(['ip', '-j', 'link', 'show', 'dev', dev], netns=ns).stdout)[0]['mtu']


def test_link_mtu_both_ends_idempotent_check_mode_and_jumbo_ping(bed):
    res = run_module('netns_veth', _topo(mtu=9000))
    assert not res.get('failed'), res
    assert (_mtu(NS1, V0), _mtu(NS2, V1)) == (9000, 9000)
    assert (res['links'][0]['mtu'], res['links'][0]['peer']['mtu']) == (9000, 9000)
    assert run_module('netns_veth', _topo(mtu=9000))['changed'] is False
    # a 9000-byte IPv4 packet, not fragmented, crosses the pair
    sh(['ping', '-c', '1', '-W', '2', '-M', 'do', '-s', '8972', '198.18.64.2'], netns=NS1)

    pred = run_module('netns_veth', _topo(mtu=1500), check=True, diff=True)
    assert pred['changed'] is True
    assert pred['actions'] == ['set mtu 1500 on %s@%s' % (V0, NS1), 'set mtu 1500 on %s@%s' % (V1, NS2)]
    assert pred['diff']['before']['links']['%s@%s' % (V1, NS2)]['mtu'] == 9000
    assert pred['diff']['after']['links']['%s@%s' % (V1, NS2)]['mtu'] == 1500
    assert (_mtu(NS1, V0), _mtu(NS2, V1)) == (9000, 9000)  # check mode changed nothing


@pytest.mark.parametrize('mtu, needle', [
    (65536, 'mtu 65536 is outside 68-65535'),
    (67, 'mtu 67 is outside 68-65535'),
    ('9k', "unable to convert to int"),
])
def test_bad_mtu_rejected_before_anything_changes(bed, mtu, needle):
    res = run_module('netns_veth', _topo(mtu=mtu))
    assert res.get('failed') is True and needle in res['msg'], res
    assert NS1 not in netns_list() and NS2 not in netns_list()


def test_kernel_refusal_names_the_non_frags_program_and_what_to_do(bed, tmp_path):
    """A plain SEC("xdp") program on one end caps the other end's MTU: raising the link to
    9000 fails on the peer with the device's limit and the way out."""
    assert not run_module('netns_veth', _topo()).get('failed')
    src = tmp_path / 'nofrags.c'
    src.write_bytes(_NOFRAGS_C)
    subprocess.run(['clang', '-O2', '-target', 'bpf', '-I/usr/include/x86_64-linux-gnu', '-c',
                    str(src), '-o', str(tmp_path / 'nofrags.o')], check=True, timeout=60)
    sh(['ip', '-n', NS1, 'link', 'set', 'dev', V0, 'xdpdrv', 'obj', str(tmp_path / 'nofrags.o'),
        'sec', 'xdp'])
    res = run_module('netns_veth', _topo(mtu=9000))
    assert res.get('failed') is True, res
    assert 'failed to set mtu 9000 on %s@%s: the kernel refused mtu 9000' % (V1, NS2) in res['msg']
    assert 'the device allows at most' in res['msg'] and 'xdp.frags' in res['msg'], res['msg']
    assert _mtu(NS2, V1) == 1500
    # the end itself took 9000 before the peer refused: reported as still changed
    assert res['changed'] is True and res['actions'] == ['set mtu 9000 on %s@%s' % (V0, NS1)]


def _preflight(monkeypatch, capsys, **args):
    return run_in_process(kernel_preflight, dict({'require_btf': False}, **args), capsys)


def test_preflight_reports_multi_buffer_on_this_kernel(monkeypatch, capsys):
    res = _preflight(monkeypatch, capsys, mtu=9000)
    assert not res.get('failed'), res
    mb = res['multi_buffer']
    assert (mb['xdp'], mb['af_xdp'], mb['needed'], mb['single_frame_mtu']) == (True, True, True, 3818)
    assert res['probes']['xdp_multi_buffer'] is True and res['probes']['af_xdp_multi_buffer'] is True


@pytest.mark.parametrize('forced, probe, needle', [
    ({'frags': False}, 'xdp', 'failed with ERANGE: the kernel refuses XDP on a veth whose peer '
                              'has MTU 9000'),
    ({'sg_flags': _mbuf.XDP_COPY | (1 << 7)}, 'af_xdp',
     'failed with EINVAL: the kernel does not know XDP_USE_SG'),
])
def test_preflight_clear_message_when_multi_buffer_is_refused(monkeypatch, capsys, forced,
                                                              probe, needle):
    monkeypatch.setattr(_mbuf, 'probe', functools.partial(_mbuf.probe, **forced))
    res = _preflight(monkeypatch, capsys, mtu=9000)
    assert res['failed'] is True, res
    assert res['multi_buffer'][probe] is False and needle in res['multi_buffer']['reasons'][probe]
    assert 'MTU 9000 needs multi-buffer (a 4096-byte frame holds an MTU of at most 3818)' in res['msg']
    assert needle in res['msg'] and 'Use an MTU of at most 3818' in res['msg'], res['msg']
    # a standard MTU does not need it: the same refusal is only reported
    res = _preflight(monkeypatch, capsys, mtu=1500)
    assert not res.get('failed') and res['multi_buffer'][probe] is False, res
