"""kbypass.xdp.xdp_capture against the real kernel: capture at the XDP hook of a veth.

Bed (prefix ``kbob``): kbob3 (device under test, kbobv2 198.18.66.5/24) <-> kbob4 (traffic,
kbobv3 198.18.66.6/24), the steering program attached to kbobv2 for UDP/4242. No AF_XDP
socket is bound (but in the forwarder test), so the steered datagrams come out as
``redirect_missed`` (passed to the stack); ARP and ICMP are ``passed``. The bed, pins and programs go in the fixture's
finalizer, also when a test fails. About 30 s in all.
"""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, attached_prog, copy_build, module_pids, pcapng_comments, run_module, run_playbook, sh, stop_process, veth_bed

from ansible_collections.kbypass.xdp.plugins.module_utils import _bpf, _capture

NS1, NS2 = 'kbob3', 'kbob4'
V0, V1 = 'kbobv2', 'kbobv3'
A1, A2 = '198.18.66.5', '198.18.66.6'
PIN = '/sys/fs/bpf/kbypass/%s/%s' % (NS1, V0)
BPF = OBJ = CAP = None  # the bed fixture's build

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (netns, XDP, bpf)')

_SEND = r'''
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[3])):
    s.sendto(b'k' * 18, (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.002)
'''


@pytest.fixture(scope='module')
def bed(tmp_path_factory):
    global BPF, OBJ, CAP  # built from a copy of files/bpf (never in files/, others build there)
    BPF = copy_build(os.path.join(ROOT, 'files', 'bpf'), str(tmp_path_factory.mktemp('kbob_bpf') / 'bpf'))
    OBJ, CAP = os.path.join(BPF, 'xdp_steer.o'), os.path.join(BPF, 'xdp_steer_capture.o')
    with veth_bed(NS1, V0, NS2, V1, (A1 + '/24',), (A2 + '/24',)):
        res = run_module('xdp_attach', {'interface': V0, 'netns': NS1, 'object': OBJ,
                                        'ports': [4242]})
        assert res.get('changed'), res
        yield res['prog']


def attached():
    return attached_prog(V0, NS1)


def capture(args, on_attached=None):
    """Run xdp_capture; ``on_attached`` runs once the capture program is in place."""
    base = {'interface': V0, 'netns': NS1, 'object': OBJ, 'capture_object': CAP}
    base.update(args)
    out = {}
    worker = threading.Thread(target=lambda: out.update(run_module('xdp_capture', base)))
    before = attached()['id']
    worker.start()
    try:
        if on_attached:
            end = time.time() + 30
            while attached()['id'] == before and time.time() < end:
                time.sleep(0.05)
            assert _capture.capture_maps(attached()['id']), 'capture program never attached'
            on_attached()
    finally:
        worker.join(60)
    return out


def send_udp(count, port=4242):
    sh([sys.executable, '-c', _SEND, A1, str(port), str(count)], netns=NS2, timeout=30)


def ping():
    sh(['ip', 'neigh', 'flush', 'dev', V1], netns=NS2, check=False)  # forces an ARP
    sh(['ping', '-c', '1', '-W', '2', A1], netns=NS2)


def tcpdump_count(pcap, expr=()):
    out = sh(['tcpdump', '-nn', '-r', str(pcap)] + list(expr)).stdout
    return len(out.splitlines()), out


def test_capture_counts_what_was_sent(bed, tmp_path):
    dest = tmp_path / 'all.pcapng'

    def traffic():
        ping()
        send_udp(50)
        time.sleep(0.3)

    res = capture({'dest': str(dest), 'duration': 3, 'count': 0}, traffic)
    assert not res.get('failed'), res.get('msg')
    assert res['changed'] and res['stopped_by'] == 'duration'
    assert 3.0 <= res['seconds'] < 4.5, res['seconds']  # the duration limit holds
    assert res['dropped_samples'] == 0
    assert res['by_action']['redirect_missed'] == 50, res['by_action']
    n, out = tcpdump_count(dest, ['udp', 'port', '4242'])
    assert n == 50, out
    assert tcpdump_count(dest, ['arp'])[0] >= 1
    assert tcpdump_count(dest, ['icmp[icmptype] == icmp-echo'])[0] == 1
    # the action is each packet's pcapng comment (tcpdump does not print comments)
    comments = pcapng_comments(dest)
    assert len(comments) == res['captured']
    assert sum('redirect_missed' in c for c in comments) == 50, comments
    assert res['prog']['tag'] == bed['tag'] and attached()['tag'] == bed['tag']
    assert not _capture.capture_maps(attached()['id'])


def test_filter_and_count_limit(bed, tmp_path):
    dest = tmp_path / 'udp.pcapng'
    res = capture({'dest': str(dest), 'duration': 10, 'count': 20, 'filter': 'udp port 4242'},
                  lambda: (ping(), send_udp(50)))
    assert not res.get('failed'), res.get('msg')
    assert res['stopped_by'] == 'count' and res['captured'] == 20
    n, out = tcpdump_count(dest)
    assert n == 20 and out.count('.4242: UDP') == 20, out
    assert attached()['tag'] == bed['tag']


def test_interrupt_puts_the_normal_program_back(bed, tmp_path):
    dest = tmp_path / 'never.pcapng'

    def interrupt():
        for pid in module_pids('xdp_capture'):
            os.kill(pid, signal.SIGINT)

    res = capture({'dest': str(dest), 'duration': 20, 'count': 0}, interrupt)
    assert res.get('failed') and 'interrupted by SIGINT' in res['msg'], res
    assert attached()['tag'] == bed['tag'] and not _capture.capture_maps(attached()['id'])
    assert not dest.exists()


def test_bad_capture_object_fails_and_changes_nothing(bed, tmp_path):
    before = attached()
    res = capture({'dest': str(tmp_path / 'x.pcapng'), 'capture_object': OBJ})
    assert res.get('failed') and 'not the capture build' in res['msg'], res
    assert attached()['tag'] == before['tag']
    res = capture({'dest': str(tmp_path / 'no' / 'x.pcapng'), 'filter': 'udp prot 1'})
    assert res.get('failed') and 'filter' in res['msg'] and 'dest' in res['msg'], res
    assert attached()['id'] == before['id']
    res = run_module('xdp_capture', {'interface': V0, 'netns': NS1, 'object': OBJ,
                                     'capture_object': CAP, 'dest': str(tmp_path / 'c.pcapng')},
                     check=True)
    assert res['changed'] and not res.get('failed'), res
    assert attached()['id'] == before['id'] and not (tmp_path / 'c.pcapng').exists()


def test_state_absent_after_a_killed_capture(bed):
    # what a capture killed with SIGKILL leaves: the capture build on the pins
    res = run_module('xdp_attach', {'interface': V0, 'netns': NS1, 'object': CAP,
                                    'ports': [4242]})
    assert res.get('changed') and _capture.capture_maps(attached()['id']), res
    res = run_module('xdp_capture', {'interface': V0, 'netns': NS1, 'object': OBJ,
                                     'state': 'absent'})
    assert res['changed'] and attached()['tag'] == bed['tag'], res
    res = run_module('xdp_capture', {'interface': V0, 'netns': NS1, 'object': OBJ,
                                     'state': 'absent'})
    assert not res['changed'], res


def test_a_detach_during_a_capture_waits_for_the_swap_back(bed, tmp_path):
    """xdp_attach state=absent started while a capture runs waits for the capture's lock:
    the capture ends with the normal program back, then the detach removes it. Without
    the lock the detach lands first and the capture's swap back fights it."""
    from ansible_collections.kbypass.xdp.plugins.module_utils import _xdp
    dest, done = tmp_path / 'locked.pcapng', {}

    def detach():
        done['start'] = time.time()
        done['res'] = run_module('xdp_attach', {'interface': V0, 'netns': NS1, 'state': 'absent'})
        done['end'] = time.time()

    worker = threading.Thread(target=detach)
    try:
        res = capture({'dest': str(dest), 'duration': 2, 'count': 0}, worker.start)
        worker.join(60)
        assert not res.get('failed'), res.get('msg')
        assert res['changed'] and res['prog']['tag'] == bed['tag'] and dest.exists()
        # the detach finished after the capture (2 s from its start), and it detached
        assert done['end'] - done['start'] >= 1.5, done
        assert done['res'].get('changed') and not done['res'].get('failed'), done['res']
        assert _xdp.query(V0, NS1)['xdp']['prog_id'] in (0, None)
        assert not os.path.exists(PIN)
        assert not os.path.exists('/run/kbypass/lock'), os.listdir('/run/kbypass/lock')
    finally:
        worker.join(60)
        res = run_module('xdp_attach', {'interface': V0, 'netns': NS1, 'object': OBJ,
                                        'ports': [4242]})
        assert not res.get('failed'), res
        assert attached()['tag'] == bed['tag']


def test_playbook_fetches_the_capture_and_always_restores(bed, tmp_path):
    extra = {'observe_interface': V0, 'observe_netns': NS1,
             'observe_bpf_dir': BPF, 'observe_target_dir': str(tmp_path / 'target'),
             'observe_report_dir': str(tmp_path / 'reports'), 'observe_duration': 6,
             'observe_count': 30, 'observe_filter': 'udp port 4242'}
    sender = threading.Thread(target=lambda: _send_when_capturing(40))
    sender.start()
    rc, _out, proc = run_playbook('observe.yml', extra, tmp_path)
    sender.join(60)
    assert rc == 0, proc.stdout[-3000:]
    n, out = tcpdump_count(tmp_path / 'reports' / ('localhost-observe-%s.pcapng' % V0))
    assert n == 30 and out.count('.4242: UDP') == 30, out
    assert attached()['tag'] == bed['tag']

    # a capture build left on the pins (a killed run) and a capture that fails: the
    # playbook's always section puts the normal program back
    run_module('xdp_attach', {'interface': V0, 'netns': NS1, 'object': CAP, 'ports': [4242]})
    extra['observe_filter'] = 'udp prot 4242'
    rc, _out, proc = run_playbook('observe.yml', extra, tmp_path)
    assert rc != 0 and 'not understood' in proc.stdout, proc.stdout[-3000:]
    assert attached()['tag'] == bed['tag'] and not _capture.capture_maps(attached()['id'])


@pytest.fixture(scope='module')
def fwd_bin(tmp_path_factory):
    """kbypass-fwd built from a private copy of files/forwarder (no races with others)."""
    d = str(tmp_path_factory.mktemp('kbob_fwd') / 'forwarder')
    return os.path.join(copy_build(os.path.join(ROOT, 'files', 'forwarder'), d, 'kbypass-fwd'),
                        'kbypass-fwd')


@pytest.fixture
def forwarder(bed, fwd_bin, tmp_path):
    """An echo forwarder with its AF_XDP socket in the steering program's xsks_map."""
    stats = tmp_path / 'fwd.stats.json'
    proc = subprocess.Popen([fwd_bin, '--iface', V0, '--netns', NS1, '--mode', 'echo',
                             '--pin-dir', PIN, '--duration', '60', '--stats-file', str(stats),
                             '--interval', '0.2'], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        end = time.time() + 10
        while not stats.exists() and proc.poll() is None and time.time() < end:
            time.sleep(0.05)
        assert stats.exists(), 'forwarder did not start: %s' % (proc.poll(),)
        yield proc
    finally:
        stop_process(proc)


def test_forwarder_keeps_its_socket_across_the_swaps(forwarder, bed, tmp_path):
    dest = tmp_path / 'fwd.pcapng'
    res = capture({'dest': str(dest), 'duration': 3, 'count': 0, 'filter': 'udp port 4242'},
                  lambda: send_udp(40))
    assert not res.get('failed'), res.get('msg')
    assert res['by_action']['redirected'] == 40, res['by_action']
    assert sum('redirected' in c for c in pcapng_comments(dest)) == 40
    assert attached()['tag'] == bed['tag'] and forwarder.poll() is None
    # the normal program is back on the same xsks_map: still steered into the socket
    before = _bpf.read_steer_stats(PIN)
    send_udp(20)
    time.sleep(0.3)
    after = _bpf.read_steer_stats(PIN)
    assert _bpf.steer_delta(before, after)['redirected'] == 20

    # kernel_view: the same attachment, seen from the kernel's side
    res = run_module('kernel_view', {'namespaces': [NS1, NS2],
                                     'forwarder_state_dir': str(tmp_path)})
    view = res['view']
    assert not res['changed'] and 'tcpdump' in res['note']
    assert [p['tag'] for p in view['programs']] == [bed['tag']], view['programs']
    assert {m['name'] for m in view['maps']} >= {'xsks_map', 'steer_ports', 'steer_stats'}
    assert view['namespaces'][NS1]['xdp'][0]['xdp'][0]['devname'] == V0
    assert V0 in view['namespaces'][NS1]['ethtool_stats'], view['namespaces'][NS1]
    reg = view['xsk_registrations']
    assert [(r['iface'], r['netns'], r['queues']) for r in reg] == [(V0, NS1, [0])], reg
    assert view['forwarders']['fwd']['rx_packets'] >= 60


def _send_when_capturing(count):
    end = time.time() + 30
    while not _capture.capture_maps(attached()['id']) and time.time() < end:
        time.sleep(0.05)
    send_udp(count)
