"""Seeing the bypassed packets, end to end: playbooks/observe.yml during a verify run of a
running pipeline, the verify report's "What the kernel sees", Ctrl-C and a failure in the
middle of a capture, and tcpdump on the TAP of the forwarder's kernel mode.

Bed (prefix ``kbob``): kbobv0@kbob1 198.18.66.1/24 (device under test: the steering program
for UDP/4242, an echo forwarder) <-> kbobv1@kbob2 198.18.66.2/24 (traffic peer). The BPF
objects and the forwarder are built from copies of files/ in a temporary directory;
runtime files in /run/kbypass/kbob-forwarder. Real playbooks, modules, packets; the bed,
forwarders, pins and programs go in finalizers, also on failure. About 1-3 min in all
(most of it ansible-playbook start-up; verify.yml and observe.yml run for real).
"""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import (BIN, ROOT, _env, attached_prog, copy_builds, kill_state_processes, module_pids,
                      pcapng_comments, run_module, run_playbook, sh, veth_bed)

from ansible_collections.kbypass.xdp.plugins.module_utils import _capture, _supervise

NS1, NS2 = 'kbob1', 'kbob2'
V0, V1 = 'kbobv0', 'kbobv1'
A1, A2 = '198.18.66.1', '198.18.66.2'
TAP = 'kbobtap0'
STATE = '/run/kbypass/kbob-forwarder'
INSTANCE = 'kbob-echo'
PORT = 4242
FILLER = 4299  # a port of the filler burst that ends a count-limited capture
COUNT = 1000  # packets the capture keeps; verify sends fewer, the filler the rest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (netns, XDP, AF_XDP)')


@pytest.fixture(scope='module')
def build(tmp_path_factory):
    bpf, fwd = copy_builds(tmp_path_factory.mktemp('kbob_build'))
    return {'bpf': bpf, 'obj': os.path.join(bpf, 'xdp_steer.o'),
            'fwd': os.path.join(fwd, 'kbypass-fwd'), 'gen': os.path.join(fwd, 'kbypass-gen')}


@pytest.fixture(scope='module')
def pipeline(build):
    """The kbob bed with the steering program attached; yields the normal program's info."""
    kill_state_processes(STATE, remove=True)
    with veth_bed(NS1, V0, NS2, V1, (A1 + '/24',), (A2 + '/24',)):
        res = run_module('xdp_attach', {'interface': V0, 'netns': NS1, 'object': build['obj'],
                                        'ports': [PORT]})
        assert res.get('changed'), res
        yield dict(res['prog'], build=build)


@pytest.fixture
def forwarder(pipeline):
    """start(**options) runs the forwarder (echo by default) with afxdp_forwarder; it is
    killed after the test (its AF_XDP socket and TAP go with the process)."""
    def start(**kw):
        args = {'name': INSTANCE, 'mode': 'echo', 'interface': V0, 'netns': NS1, 'queues': [0],
                'cpus': [1], 'binary': pipeline['build']['fwd'], 'state_dir': STATE,
                'supervisor': 'process', 'stats_interval': 0.2}
        args.update(kw)
        res = run_module('afxdp_forwarder', args)
        assert res.get('running'), res
        return res
    try:
        yield start
    finally:
        kill_state_processes(STATE, remove=True)


def attached():
    return attached_prog(V0, NS1)


def xlated(prog_id, tmp_path):
    """The program's instructions as the kernel holds them (bpftool prog dump xlated)."""
    path = tmp_path / ('xlated-%d' % prog_id)
    sh(['bpftool', 'prog', 'dump', 'xlated', 'id', str(prog_id), 'file', str(path)])
    return path.read_bytes()


def wait_for_capture(proc, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        prog = attached()
        if _capture.capture_maps(prog['id']):
            return prog
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.05)
    raise AssertionError('the capture program was never attached')


def start_observe(build, tmp_path, **kw):
    """ansible-playbook playbooks/observe.yml in its own session (a terminal's process group)."""
    extra = {'observe_interface': V0, 'observe_netns': NS1, 'observe_bpf_dir': build['bpf'],
             'observe_target_dir': str(tmp_path / 'target'),
             'observe_report_dir': str(tmp_path / 'reports'),
             'observe_duration': 20, 'observe_count': 0, 'observe_filter': ''}
    extra.update(kw)
    varfile = tmp_path / 'observe-vars.json'
    varfile.write_text(json.dumps(extra))
    return subprocess.Popen([os.path.join(BIN, 'ansible-playbook'), '-i', 'inventory/local',
                             'playbooks/observe.yml', '-e', '@%s' % varfile],
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(proc, timeout=90):
    """(returncode, output) of a playbook started by start_observe()."""
    try:
        out = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return proc.returncode, out


def send(build, port, count, rate=5000):
    """kbypass-gen from the peer: ``count`` UDP datagrams to the DUT's ``port``."""
    gen = subprocess.run([build['gen'], '--dst', A1, '--netns', NS2, '--dport', str(port),
                          '--count', str(count), '--rate', str(rate), '--json'],
                         capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(gen.stdout.strip().splitlines()[-1])['sent'] == count


def tcpdump_lines(pcap, *expr):
    return sh(['tcpdump', '-nn', '-r', str(pcap)] + list(expr)).stdout.splitlines()


def test_observe_during_a_verify_burst(pipeline, forwarder, tmp_path):
    """Done means (#15): observe.yml while verify.yml runs against the running pipeline:
    the pcap holds exactly the UDP/4242 datagrams verify sent (all redirected), and the ARP
    and ICMP the program passed; the report has "What the kernel sees"; the program in
    place afterwards is the normal one, instruction for instruction."""
    build = pipeline['build']
    forwarder()
    normal = xlated(pipeline['id'], tmp_path)
    # the capture ends on its packet count: verify's few hundred packets, then a filler
    # burst to a port of its own that reaches the count (the duration is only a bound)
    obs = start_observe(build, tmp_path, observe_duration=90, observe_count=COUNT)
    try:
        cap = wait_for_capture(obs)
        rc, _out, proc = run_playbook('verify.yml', {
            'verify_dut_netns': NS1, 'verify_dut_ifname': V0, 'verify_dut_addresses': [A1],
            'verify_peer_netns': NS2, 'verify_peer_ifname': V1, 'verify_count': 300,
            'verify_rate': 5000, 'verify_generator': build['gen'],
            'verify_forwarder_instance': INSTANCE, 'verify_forwarder_state_dir': STATE,
            'verify_tcpdump_count': 20, 'verify_nonmatching_count': 5, 'verify_ping_count': 2,
            'verify_stats_wait': 0.5, 'verify_report_dir': str(tmp_path / 'reports'),
            'verify_plot': False}, tmp_path)
        assert _capture.capture_maps(attached()['id']), 'the capture ended before verify did'
        send(build, FILLER, COUNT)
    except BaseException:
        os.killpg(obs.pid, signal.SIGINT)  # do not wait for the duration bound
        raise
    finally:
        rc_obs, out_obs = finish(obs)
    assert rc == 0, proc.stdout[-4000:]
    assert rc_obs == 0, out_obs[-4000:]

    report = json.loads((tmp_path / 'reports' / 'verify-localhost.json').read_text())
    assert report['ok'], report['failures']
    sent = sum(b['generator']['sent'] for b in report['data']['matching'])
    assert sent == 300
    pcap = tmp_path / 'reports' / ('localhost-observe-%s.pcapng' % V0)
    udp = tcpdump_lines(pcap, 'udp', 'dst', 'port', str(PORT))
    assert len(udp) == sent, udp[:5]
    comments = pcapng_comments(pcap)
    assert sum(c.startswith('xdp action: redirected') for c in comments) == sent
    assert len(tcpdump_lines(pcap, 'icmp[icmptype] == icmp-echo')) == 2
    assert len(tcpdump_lines(pcap, 'udp', 'dst', 'port', '4243')) == 5
    assert tcpdump_lines(pcap, 'arp'), 'no ARP in the capture (the neighbour flush sends one)'
    assert len(comments) == COUNT and len(tcpdump_lines(pcap)) == COUNT
    assert sum('passed' in c for c in comments) == COUNT - sent

    # "What the kernel sees", from the same run
    md = (tmp_path / 'reports' / 'verify-localhost.md').read_text()
    section = md[md.index('## What the kernel sees'):]
    assert 'make observe' in section and 'tcpdump' in section
    assert '| %s | %s | UP |' % (NS1, V0) in section, section
    assert '| %s | %s | %s | 0 | copy | True |' % (INSTANCE, NS1, V0) in section, section
    # verify ran while the capture build was attached, and the report says so
    assert '| %s | xdp_steer (capture build: a capture was running) |' % cap['id'] in section
    kernel = report['data']['kernel']
    assert [r['queues'] for r in kernel['xsk_registrations']] == [[0]]
    assert kernel['forwarders'][INSTANCE]['rx_packets'] >= sent

    after = attached()
    assert after['tag'] == pipeline['tag'] and not _capture.capture_maps(after['id'])
    assert xlated(after['id'], tmp_path) == normal


def test_ctrl_c_stops_the_capture_and_puts_the_normal_program_back(pipeline, tmp_path):
    """SIGINT to the playbook's process group, as a terminal's Ctrl-C sends it."""
    obs = start_observe(pipeline['build'], tmp_path)
    wait_for_capture(obs)
    procs = [(pid, (_supervise.proc_stat(pid) or {}).get('start_time'))
             for pid in module_pids('xdp_capture', obs.pid)]
    assert procs, 'no xdp_capture module process below the playbook'
    os.killpg(obs.pid, signal.SIGINT)
    rc, out = finish(obs, 30)
    assert rc != 0, out[-3000:]
    # ansible-playbook returns at once on Ctrl-C; the module got the same SIGINT and puts the
    # normal program back on its own, orphaned: it must do so within a bounded time
    assert all(_supervise.wait_gone(pid, start, 30) for pid, start in procs), \
        'xdp_capture still running 30 s after Ctrl-C'
    after = attached()
    assert after['tag'] == pipeline['tag'] and not _capture.capture_maps(after['id']), out[-3000:]
    assert os.listdir(str(tmp_path / 'target')) == []


def test_failure_mid_capture_puts_the_normal_program_back(pipeline, tmp_path):
    """The module dies (SIGKILL: no chance to restore) while the capture build is attached:
    the playbook's always section puts the normal program back."""
    obs = start_observe(pipeline['build'], tmp_path)
    wait_for_capture(obs)
    for pid in module_pids('xdp_capture', obs.pid):
        os.kill(pid, signal.SIGKILL)
    rc, out = finish(obs, 60)
    assert rc != 0 and 'Make sure the normal steering program' in out, out[-3000:]
    after = attached()
    assert after['tag'] == pipeline['tag'] and not _capture.capture_maps(after['id']), out[-3000:]


def test_kernel_mode_tcpdump_on_the_tap_sees_the_reinjected_packets(pipeline, forwarder, tmp_path):
    """Kernel (TAP) mode: the steered datagrams do not show on the DUT's veth, they do on
    the TAP the forwarder writes them to."""
    forwarder(mode='kernel', tap=TAP)
    caps = {}
    for dev, stop in ((V0, []), (TAP, ['-c', '50'])):  # the TAP's ends after the 50th
        caps[dev] = subprocess.Popen(
            ['ip', 'netns', 'exec', NS1, 'timeout', '20', 'tcpdump', '-nn', '--immediate-mode',
             '-U', '-i', dev, '-w', str(tmp_path / ('%s.pcap' % dev))] + stop
            + ['udp', 'dst', 'port', str(PORT)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for dev in (V0, TAP):  # tcpdump says "listening on" once its socket is bound
            assert 'listening on' in caps[dev].stderr.readline()
        send(pipeline['build'], PORT, 50)
        caps[TAP].wait(20)  # every datagram passed the veth's hook before it reached the TAP
    finally:
        for proc in caps.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            proc.wait(10)
    assert len(tcpdump_lines(tmp_path / ('%s.pcap' % TAP))) == 50
    assert tcpdump_lines(tmp_path / ('%s.pcap' % V0)) == []
