"""nic_facts / xdp_facts / facts.yml against the real kernel in namespaces kbtt3/kbtt4.

A tiny XDP program (compiled here with clang) is attached natively to kbttv2, and a pinned
PERCPU_ARRAY named steer_stats with known values stands in for the steering program's
counters, so the module's output can be compared with what bpftool and ethtool print.
"""
import json
import os
import platform
import subprocess

import pytest

from conftest import run_module, run_playbook, sh, veth_bed

NS1, NS2, IF0, IF1 = 'kbtt3', 'kbtt4', 'kbttv2', 'kbttv3'
PIN_DIR = '/sys/fs/bpf/kbypass/%s/%s' % (NS1, IF0)

PROG_C = r'''
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u32);
} xsks_map SEC(".maps");
SEC("xdp")
int kbtt_facts(struct xdp_md *ctx)
{
    return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}
char _license[] SEC("license") = "GPL";
'''


def _ensure_bpffs():
    # The toolchain role mounts bpffs; tests may run before it. Left mounted on purpose:
    # other components rely on it and it holds nothing of ours after cleanup.
    if subprocess.run(['mountpoint', '-q', '/sys/fs/bpf'], check=False).returncode != 0:
        sh(['mount', '-t', 'bpf', 'bpf', '/sys/fs/bpf'])


@pytest.fixture(scope='module')
def bed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('kbtt_facts')
    obj = str(tmp / 'prog.o')
    (tmp / 'prog.c').write_text(PROG_C)
    sh(['clang', '-O2', '-g', '-target', 'bpf',
        '-I/usr/include/%s-linux-gnu' % platform.machine(), '-c', str(tmp / 'prog.c'),
        '-o', obj])
    with veth_bed(NS1, IF0, NS2, IF1):  # also removes the pins below
        sh(['ip', '-n', NS1, 'link', 'set', 'dev', IF0, 'xdpdrv', 'obj', obj, 'sec', 'xdp'])
        _ensure_bpffs()
        os.makedirs(PIN_DIR, exist_ok=True)
        pin = PIN_DIR + '/steer_stats'
        sh(['bpftool', 'map', 'create', pin, 'type', 'percpu_array', 'key', '4', 'value', '16',
            'entries', '5', 'name', 'steer_stats'])
        # counter 2 (redirected) = 3 packets / 192 bytes on every CPU
        sh(['bpftool', 'map', 'update', 'pinned', pin, 'key', '2', '0', '0', '0', 'value',
            '3', '0', '0', '0', '0', '0', '0', '0', '192', '0', '0', '0', '0', '0', '0', '0'])
        yield tmp


def test_xdp_facts_match_bpftool(bed):
    res = run_module('xdp_facts', {'interfaces': [{'name': IF0, 'netns': NS1},
                                                  {'name': IF1, 'netns': NS2}],
                                   'ports': False}, check=True)
    assert res.get('failed') is not True, res
    net = json.loads(sh(['bpftool', '-j', 'net', 'show', 'dev', IF0], netns=NS1).stdout)
    att = net[0]['xdp'][0]
    prog = json.loads(sh(['bpftool', '-j', 'prog', 'show', 'id', str(att['id'])]).stdout)
    e0, e1 = res['interfaces']
    assert e0['attached'] and e0['mode'] == att['mode'] == 'driver'
    p = e0['programs'][0]
    assert (p['id'], p['name'], p['tag']) == (prog['id'], prog['name'], prog['tag'])
    assert p['name'] == 'kbtt_facts' and p['map_ids'] == prog['map_ids']
    xsk = p['maps'][0]
    assert xsk['type'] == 'xskmap' and xsk['max_entries'] == 64
    assert xsk['entries_readable'] is False
    possible = open('/sys/devices/system/cpu/possible').read().strip()
    ncpu = len(range(int(possible.split('-')[0]), int(possible.split('-')[-1]) + 1))
    assert e0['steer_stats']['redirected'] == {'packets': 3 * ncpu, 'bytes': 192 * ncpu}
    assert e0['steer_stats']['seen'] == {'packets': 0, 'bytes': 0}
    assert e1['attached'] is False and e1['programs'] == [] and e1['steer_stats'] is None
    assert res['ansible_facts']['kbypass_xdp']['%s/%s' % (NS1, IF0)]['programs'][0]['id'] == p['id']


def test_nic_facts_match_ethtool(bed):
    res = run_module('nic_facts', {'interfaces': [{'name': IF0, 'netns': NS1}]}, check=True)
    assert res.get('failed') is not True, res
    e = res['interfaces'][0]
    js = json.loads(sh(['ethtool', '--json', '-k', IF0], netns=NS1).stdout)[0]
    want = dict((k, v['active']) for k, v in js.items() if isinstance(v, dict))
    assert dict((k, v['active']) for k, v in e['features'].items()) == want
    text = sh(['ethtool', '-k', IF0], netns=NS1).stdout
    fixed = sorted(l.split(':')[0].strip() for l in text.splitlines() if '[fixed]' in l)
    assert e['features_fixed'] == fixed
    assert e['driver'] == 'veth' and e['bus_info'] is None and e['numa_node'] is None
    assert e['channels']['current'] == {'rx': 1, 'tx': 1, 'other': None, 'combined': None}
    assert e['rings'] is None and 'rings' in e['unsupported']
    assert e['irqs'] == []
    assert e['sysfs']['mtu'] == sh(['cat', '/sys/class/net/%s/mtu' % IF0], netns=NS1).stdout.strip()
    assert any(k.startswith('rx_queue_0_xdp') for k in e['statistics'])


def test_missing_interface(bed):
    res = run_module('nic_facts', {'interfaces': [{'name': 'kbttnope', 'netns': NS1}]})
    assert res.get('failed') is True and 'does not exist' in res['msg']
    res = run_module('xdp_facts', {'interfaces': ['kbttnope'], 'netns': NS1,
                                   'ignore_missing': True})
    assert res.get('failed') is not True and res['interfaces'][0]['exists'] is False


def _root_nic_with_irqs():
    for name in sorted(os.listdir('/sys/class/net')):
        if os.path.isdir('/sys/class/net/%s/device' % name):
            return name
    return None


def test_real_nic_irqs_match_proc(bed):
    nic = _root_nic_with_irqs()
    if nic is None:
        pytest.skip('no physical/virtio NIC in the root namespace')
    res = run_module('nic_facts', {'interfaces': [nic], 'statistics': 'none'})
    e = res['interfaces'][0]
    procints = open('/proc/interrupts').read()
    for irq in e['irqs']:
        assert irq['name'] in procints
        eff = open('/proc/irq/%d/effective_affinity_list' % irq['irq']).read().strip()
        assert irq['effective_affinity_list'] == eff
    if e['driver'] == 'virtio_net':
        kinds = sorted(i['kind'] for i in e['irqs'])
        assert 'rx' in kinds and 'tx' in kinds, e['irqs']


def test_facts_playbook_writes_reports(bed, tmp_path):
    report = tmp_path / 'reports'
    rc, _out, proc = run_playbook('facts.yml', {
        'facts_interfaces': [{'name': IF0, 'netns': NS1}, {'name': IF1, 'netns': NS2}],
        'facts_report_dir': str(report)}, tmp_path)
    assert rc == 0, proc.stdout[-3000:]
    data = json.load(open(report / 'facts-localhost.json'))
    assert [n['name'] for n in data['nics']] == [IF0, IF1]
    assert data['xdp'][0]['programs'][0]['name'] == 'kbtt_facts'
    summary = (report / 'facts-summary.md').read_text()
    rows = [l for l in summary.splitlines() if l.startswith('| localhost')]
    assert len(rows) == 2
    assert 'kbtt_facts' in rows[0] and 'driver' in rows[0] and 'veth' in rows[0]
    assert '| - |' in rows[1]
