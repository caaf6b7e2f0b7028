"""kbypass.xdp.xdp_attach against the real kernel: real namespaces, real XDP, real packets.

Bed (prefix ``kbtb``): namespaces kbtb1 (device under test) and kbtb2 (traffic), veth
kbtbv0@kbtb1 198.18.3.1/24 2001:2:0:3::1/64 <-> kbtbv1@kbtb2 198.18.3.2/24 2001:2:0:3::2/64,
and a bridge kbtbd0@kbtb1 (no native XDP; no dummy driver in this kernel). This kernel has no 802.1Q support, so
tagged frames are crafted on an AF_PACKET socket and only counted by XDP. Every test detaches and unpins in a
finalizer, the bed is removed at the end of the module, also on failure.
"""
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, copy_build, run_module, sh, stop_process, veth_bed

from ansible_collections.kbypass.xdp.plugins.module_utils import _bpf, _common, _xdp

NS1, NS2 = 'kbtb1', 'kbtb2'
V0, V1 = 'kbtbv0', 'kbtbv1'
DUMMY = 'kbtbd0'
A1, A2 = '198.18.3.1', '198.18.3.2'
B1, B2 = '2001:2:0:3::1', '2001:2:0:3::2'
PIN = '/sys/fs/bpf/kbypass/%s/%s' % (NS1, V0)
CFLAGS = ['-O2', '-g', '-target', 'bpf', '-Wall']
N = 50  # datagrams per burst

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (netns, XDP, bpf)')


def _clang(src, out, extra=()):
    arch = subprocess.run(['gcc', '-print-multiarch'], capture_output=True, text=True,
                          check=False).stdout.strip()
    inc = ['-I/usr/include/%s' % arch] if arch else []
    subprocess.run(['clang'] + CFLAGS + inc + list(extra) + ['-c', src, '-o', out],
                   check=True, capture_output=True, text=True, timeout=120)
    return out


@pytest.fixture(scope='module')
def objs(tmp_path_factory):
    """The steering object (built here from files/bpf), a variant with another tag,
    the deliberately invalid program and a foreign pass-all program."""
    d = tmp_path_factory.mktemp('kbtb_bpf')
    built = copy_build(os.path.join(ROOT, 'files', 'bpf'), str(d / 'build'))
    foreign = d / 'xdp_other.c'
    foreign.write_text('#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n'
                       'SEC("xdp") int kbtb_other(struct xdp_md *ctx) { return XDP_PASS; }\n'
                       'char _license[] SEC("license") = "GPL";\n')
    return {
        'steer': os.path.join(built, 'xdp_steer.o'),
        'variant': _clang(os.path.join(ROOT, 'files', 'bpf', 'xdp_steer.c'),
                          str(d / 'steer_v3.o'), ['-mcpu=v3']),
        'invalid': _clang(os.path.join(ROOT, 'tests', 'bpf', 'xdp_invalid.c'),
                          str(d / 'invalid.o')),
        'foreign': _clang(str(foreign), str(d / 'other.o')),
    }


@pytest.fixture(scope='module')
def bed():
    with veth_bed(NS1, V0, NS2, V1, (A1 + '/24', B1 + '/64'), (A2 + '/24', B2 + '/64')):
        sh(['ip', '-n', NS1, 'link', 'add', DUMMY, 'type', 'bridge'])
        sh(['ip', '-n', NS1, 'link', 'set', DUMMY, 'up'])
        yield


@pytest.fixture
def clean(bed):
    """Each test starts and ends with nothing attached and no pins."""
    def reset():
        for dev in (V0, DUMMY):
            for mode in ('xdpgeneric', 'xdpdrv'):
                sh(['ip', '-n', NS1, 'link', 'set', 'dev', dev, mode, 'off'], check=False)
            pin = '/sys/fs/bpf/kbypass/%s/%s' % (NS1, dev)
            if os.path.isdir(pin):
                _bpf.remove_pins(pin, stop_at='/sys/fs/bpf/kbypass')
    reset()
    yield
    reset()


def attach(obj, check=False, diff=False, **kw):
    args = {'interface': V0, 'netns': NS1, 'object': obj}
    args.update(kw)
    return run_module('xdp_attach', args, check=check, diff=diff)


def xdp_state(dev=V0):
    return _xdp.query(dev, NS1)['xdp']


# --- traffic helpers ---------------------------------------------------------------
_RECV = r'''
import socket, sys, time
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(0.5)
want, n, end = int(sys.argv[3]), 0, time.time() + float(sys.argv[4])
print('ready', flush=True)
while n < want and time.time() < end:
    try:
        s.recv(2048)
        n += 1
    except socket.timeout:
        pass
print(n, flush=True)
'''
_SEND = r'''
import socket, sys, time
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
for i in range(int(sys.argv[3])):
    s.sendto(b'k' * 18, (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.002)
'''


def udp_burst(dst, port, count=N, wait=10.0):
    """Send ``count`` datagrams from kbtb2 to ``dst``:``port`` in kbtb1; return how many a
    kernel UDP socket in kbtb1 received (waiting at most ``wait`` seconds)."""
    recv = subprocess.Popen(['ip', 'netns', 'exec', NS1, sys.executable, '-c', _RECV, dst,
                             str(port), str(count), str(wait)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert recv.stdout.readline().strip() == 'ready'
        sh([sys.executable, '-c', _SEND, dst, str(port), str(count)], netns=NS2, timeout=30)
        out = recv.communicate(timeout=20)[0]
        return int(out.strip())
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()


_RAW = r'''
import socket, struct, sys
dst = bytes.fromhex(sys.argv[1].replace(':', ''))
src = bytes.fromhex(sys.argv[2].replace(':', ''))
tags = [int(t, 16) for t in sys.argv[3].split(',')]  # e.g. 88a8,8100
count, port = int(sys.argv[4]), int(sys.argv[5])
payload = b'k' * 18
udp = struct.pack('!HHHH', 40000, port, 8 + len(payload), 0) + payload
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                 socket.inet_aton(sys.argv[6]), socket.inet_aton(sys.argv[7]))
frame = dst + src
for i, tpid in enumerate(tags):
    frame += struct.pack('!HH', tpid, 100 + i)
frame += struct.pack('!H', 0x0800) + ip + udp
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[8], 0))
for _ in range(count):
    s.send(frame)
print(len(frame))
'''


def mac(ns, dev):
    return sh(['cat', '/sys/class/net/%s/address' % dev], netns=ns).stdout.strip()


def tagged_burst(tags, port, count=N):
    """Send ``count`` 802.1Q/802.1ad-tagged IPv4/UDP frames kbtb2 -> kbtb1; frame length."""
    out = sh([sys.executable, '-c', _RAW, mac(NS1, V0), mac(NS2, V1), tags, str(count),
              str(port), A2, A1, V1], netns=NS2, timeout=30)
    time.sleep(0.2)
    return int(out.stdout.strip())


def delta(before):
    """Packets per counter since ``before``, plus the bytes of matched frames."""
    after = _bpf.read_steer_stats(PIN)
    d = _bpf.steer_delta(before, after)
    d['matched_bytes'] = after['matched']['bytes'] - before['matched']['bytes']
    return d


# --- tests -------------------------------------------------------------------------
def test_attach_rerun_switch_replace_absent(clean, objs):
    r = attach(objs['steer'], mode='native')
    assert not r.get('failed'), r
    assert r['changed'] and r['mode'] == 'native' and r['prog']['name'] == 'xdp_steer'
    st = xdp_state()
    assert st['mode'] == 'native' and st['prog_id'] == r['prog']['id']
    pins = sorted(os.listdir(PIN))
    # Beside the pins, as empty directories: the object's sha256 (a rerun needs no load)
    # and the attachment that owns them.
    digests = [p for p in pins if p.startswith('objsha256_')]
    assert len(digests) == 1 and len(digests[0]) == len('objsha256_') + 64
    assert _bpf.pinned_owner(PIN) == (NS1, V0)
    rest = [p for p in pins if p not in digests and not p.startswith('owner_')]
    assert rest == ['prog', 'steer_ports', 'steer_stats', 'xsks_map']
    assert _bpf.read_steer_ports(PIN) == [4242]
    first = r['prog']

    r = attach(objs['steer'], mode='native')
    assert not r.get('failed') and not r['changed'], r
    assert r['prog'] == first

    # native -> generic: the kernel refuses native and generic at once, so this is a
    # detach + attach of the same program (same id, same maps)
    def polled(obj):
        """attach(obj, generic) while a thread records the link's (mode, prog id)."""
        seen, stop = [], threading.Event()

        def poll():
            with _xdp.open_netlink(NS1) as ipr:
                while not stop.is_set():
                    x = _xdp.link_state(ipr, V0)['xdp']
                    seen.append((x['mode'], x['prog_id']))
        t = threading.Thread(target=poll)
        t.start()
        try:
            return attach(obj, mode='generic'), seen
        finally:
            stop.set()
            t.join(10)

    r, seen = polled(objs['steer'])
    assert not r.get('failed'), r
    assert r['changed'] and r['mode'] == 'generic' and r['plan']['action'] == 'switch_mode'
    assert r['prog']['id'] == first['id'] and r['prog']['map_ids'] == first['map_ids']
    assert xdp_state()['mode'] == 'generic'
    assert set(seen) <= {('native', first['id']), (None, None), ('generic', first['id'])}
    assert ('generic', first['id']) in seen

    # same mode, new program (different tag): atomic replace, never without a program,
    # and the pinned maps are reused (AF_XDP sockets stay registered)
    r, seen = polled(objs['variant'])
    assert not r.get('failed'), r
    assert r['changed'] and r['plan']['action'] == 'replace' and r['plan']['source'] == 'reload'
    assert r['prog']['tag'] != first['tag'] and r['prog']['id'] != first['id']
    assert r['prog']['map_ids'] == first['map_ids']
    assert len(seen) > 10, 'poller did not run during the replace'
    assert (None, None) not in seen, 'interface was without a program during the replace'
    assert {s[1] for s in seen} <= {first['id'], r['prog']['id']}
    assert _bpf.read_pins(PIN)['prog']['id'] == r['prog']['id']

    r = attach(objs['variant'], mode='generic')
    assert not r['changed'], r

    others = [n for n in os.listdir(_common.PIN_ROOT) if n != NS1]
    r = attach(objs['steer'], state='absent')
    assert not r.get('failed') and r['changed'], r
    assert xdp_state()['prog_id'] is None
    assert not os.path.exists(PIN) and not os.path.exists(os.path.dirname(PIN))
    # nothing else pinned there: the kbypass directory itself is gone from bpffs
    assert os.path.exists(_common.PIN_ROOT) == bool(others)
    r = attach(objs['steer'], state='absent')
    assert not r.get('failed') and not r['changed'], r


def test_traffic_without_socket(clean, objs):
    r = attach(objs['steer'], mode='native', ports=[4242])
    assert not r.get('failed'), r
    # ARP / ND resolve and ICMP flows both ways through XDP_PASS
    for ns, dst in ((NS2, A1), (NS1, A2), (NS2, B1), (NS1, B2)):
        sh(['ping', '-c', '2', '-i', '0.2', '-W', '2', dst], netns=ns, timeout=20)
    before = _bpf.read_steer_stats(PIN)
    assert before['passed']['packets'] >= 10  # the pings, ARP and ND went through us

    # matched, but no AF_XDP socket bound: passed to the kernel socket, nothing lost
    before = _bpf.read_steer_stats(PIN)
    assert udp_burst(A1, 4242) == N
    d = delta(before)
    assert d['matched'] == N and d['redirect_missed'] == N
    assert d['redirected'] == 0
    assert d['matched_bytes'] == N * (14 + 20 + 8 + 18)

    before = _bpf.read_steer_stats(PIN)
    assert udp_burst(B1, 4242) == N
    d = delta(before)
    assert d['matched'] == N and d['redirect_missed'] == N
    assert d['matched_bytes'] == N * (14 + 40 + 8 + 18)

    # 802.1Q and 802.1ad+802.1Q (QinQ) tagged frames are parsed too (the kernel here
    # has no VLAN support, so only the counters can tell)
    for tags, hdr in (('8100', 4), ('88a8,8100', 8)):
        before = _bpf.read_steer_stats(PIN)
        flen = tagged_burst(tags, 4242)
        assert flen == 14 + hdr + 20 + 8 + 18
        d = delta(before)
        assert d['matched'] == N and d['redirect_missed'] == N, tags
        assert d['matched_bytes'] == N * flen
        before = _bpf.read_steer_stats(PIN)
        tagged_burst(tags, 4243)
        d = delta(before)
        assert d['matched'] == 0 and d['passed'] >= N, tags

    before = _bpf.read_steer_stats(PIN)  # other port: passed, never matched
    assert udp_burst(A1, 4243) == N
    d = delta(before)
    assert d['matched'] == 0
    assert d['passed'] >= N
    assert d['seen'] == d['matched'] + d['passed']

    # ports are run-time config: steer 4243 instead, without reloading the program
    r2 = attach(objs['steer'], mode='native', ports=[4243])
    assert r2['changed'] and r2['plan']['action'] == 'none' and r2['ports'] == [4243]
    assert r2['prog']['id'] == r['prog']['id']
    before = _bpf.read_steer_stats(PIN)
    assert udp_burst(A1, 4243) == N
    assert delta(before)['redirect_missed'] == N

    # TCP connects through the program
    srv = subprocess.Popen(['ip', 'netns', 'exec', NS1, sys.executable, '-c',
                            'import socket;s=socket.create_server(("%s",4244));s.settimeout(10);'
                            'print("ready",flush=True);c,_=s.accept();c.sendall(b"ok");c.close()'
                            % A1], stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout.readline().strip() == 'ready'
        out = sh([sys.executable, '-c', 'import socket;c=socket.create_connection(("%s",4244),5);'
                  'print(c.recv(8).decode())' % A1], netns=NS2, timeout=20)
        assert out.stdout.strip() == 'ok'
        assert srv.wait(timeout=10) == 0
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()


def test_invalid_program_keeps_previous(clean, objs):
    r = attach(objs['steer'], mode='native')
    assert not r.get('failed'), r
    good = r['prog']
    r = attach(objs['invalid'], mode='native')
    assert r.get('failed'), r
    assert 'invalid access to packet' in r['msg']
    assert 'invalid access to packet' in r['verifier_log']
    st = xdp_state()
    assert st['mode'] == 'native' and st['prog_id'] == good['id']
    assert _bpf.read_pins(PIN)['prog']['id'] == good['id']
    assert not [n for n in os.listdir(os.path.dirname(PIN)) if n.startswith('staging')]


def test_check_mode_changes_nothing(clean, objs):
    r = attach(objs['steer'], mode='native', check=True, diff=True)
    assert not r.get('failed') and r['changed'], r
    assert r['diff']['before']['program'] is None
    # no staging directory, no parent created, nothing loaded
    assert xdp_state()['prog_id'] is None and not os.path.exists(os.path.dirname(PIN))

    r = attach(objs['steer'], mode='native')
    pid = r['prog']['id']
    assert _bpf.pinned_digest(PIN) == _bpf.object_digest(objs['steer'])
    r = attach(objs['steer'], mode='native', check=True)  # same object: known without loading
    assert not r.get('failed') and not r['changed'], r
    r = attach(objs['variant'], mode='native', check=True)
    assert r['changed'] and 'content hash' in ' '.join(r['plan']['reasons']), r
    assert not [n for n in os.listdir(os.path.dirname(PIN)) if n.startswith('staging')]
    for kw in ({'mode': 'generic'}, {'ports': [1, 2]}, {'object': objs['variant']},
               {'state': 'absent'}):
        r = attach(objs['steer'] if 'object' not in kw else kw.pop('object'), check=True, **kw)
        assert not r.get('failed') and r['changed'], (kw, r)
        st = xdp_state()
        assert st['mode'] == 'native' and st['prog_id'] == pid, kw
        assert _bpf.read_steer_ports(PIN) == [4242]
        assert _bpf.read_pins(PIN)['prog']['id'] == pid


def test_foreign_program_needs_force(clean, objs):
    sh(['ip', '-n', NS1, 'link', 'set', 'dev', V0, 'xdpgeneric', 'obj', objs['foreign'],
        'sec', 'xdp'])
    theirs = xdp_state()
    assert theirs['mode'] == 'generic' and theirs['prog_id']

    r = attach(objs['steer'], state='absent')
    assert r.get('failed') and 'not ours' in r['msg'] and 'force' in r['msg'], r
    assert xdp_state()['prog_id'] == theirs['prog_id']
    r = attach(objs['steer'], mode='generic')
    assert r.get('failed') and 'not ours' in r['msg'], r
    assert xdp_state()['prog_id'] == theirs['prog_id'] and not os.path.exists(PIN)

    r = attach(objs['steer'], mode='generic', force=True)  # atomic replace of theirs
    assert not r.get('failed') and r['changed'] and r['prog']['name'] == 'xdp_steer', r
    sh(['ip', '-n', NS1, 'link', 'set', 'dev', V0, 'xdpgeneric', 'off'])
    sh(['ip', '-n', NS1, 'link', 'set', 'dev', V0, 'xdpgeneric', 'obj', objs['foreign'],
        'sec', 'xdp'])
    r = attach(objs['steer'], state='absent', force=True)
    assert not r.get('failed') and r['changed'], r
    assert xdp_state()['prog_id'] is None and not os.path.exists(PIN)


def test_modes_without_support(clean, objs):
    dpin = '/sys/fs/bpf/kbypass/%s/%s' % (NS1, DUMMY)
    r = attach(objs['steer'], interface=DUMMY, mode='native')
    assert r.get('failed') and 'no native XDP support' in r['msg'], r
    assert xdp_state(DUMMY)['prog_id'] is None and not os.path.exists(dpin)

    r = attach(objs['steer'], interface=DUMMY, mode='auto')
    assert not r.get('failed') and r['changed'] and r['mode'] == 'generic', r
    r = attach(objs['steer'], interface=DUMMY, mode='auto')
    assert not r['changed'] and r['mode'] == 'generic', r
    r = attach(objs['steer'], interface=DUMMY, state='absent')
    assert r['changed'] and xdp_state(DUMMY)['prog_id'] is None

    r = attach(objs['steer'], mode='offload')
    assert r.get('failed') and 'offload' in r['msg'], r
    assert xdp_state()['prog_id'] is None and not os.path.exists(PIN)

    r = attach(objs['steer'], mode='auto')  # veth has native XDP
    assert not r.get('failed') and r['mode'] == 'native', r


def test_bad_input_changes_nothing(clean, objs, tmp_path):
    cases = [
        ({'ports': [0]}, 'between 1 and 65535'),
        ({'ports': []}, 'at least one'),
        ({'interface': 'kbtb-way-too-long-name'}, 'at most 15'),
        ({'netns': 'kbtb/../x'}, 'invalid'),
        ({'netns': 'kbtb-missing'}, 'does not exist'),
        ({'interface': 'kbtbnope'}, 'not found'),
        ({'pin_dir': str(tmp_path / 'pins')}, 'not on a bpf filesystem'),
        ({'object': str(tmp_path / 'missing.o')}, 'does not exist'),
        ({'program': 'nope'}, "program 'nope' not found"),
        ({'mode': 'turbo'}, 'value of mode must be one of'),
        ({'object': '/tmp'}, 'is a directory'),
        ({'object': '/etc/hostname'}, 'not an ELF file'),
        ({'bpftool': '/nonexistent/bpftool'}, 'not found or is not executable'),
        ({'bpftool': '/bin/false'}, 'without saying why'),
    ]
    for kw, text in cases:
        r = attach(objs['steer'], **kw)
        assert r.get('failed') and text in r['msg'], (kw, r)
        assert 'Traceback' not in r['msg'] and 'Errno' not in r['msg'], (kw, r)
        assert xdp_state()['prog_id'] is None, kw
        # not even an empty /sys/fs/bpf/kbypass/<netns> is left behind
        assert not os.path.exists(os.path.dirname(PIN)), kw
    assert not os.path.exists(str(tmp_path / 'pins'))


def test_pin_dir_of_another_attachment_is_refused(clean, objs):
    """The pins of kbtbv0 carry their owner: the bridge may not take them over, and
    state=absent for the bridge with that pin_dir removes nothing."""
    r = attach(objs['steer'], mode='native')
    assert not r.get('failed'), r
    assert _bpf.pinned_owner(PIN) == (NS1, V0)
    mine = xdp_state()['prog_id']
    for kw in ({}, {'state': 'absent'}, {'state': 'absent', 'force': True}):
        r = attach(objs['steer'], interface=DUMMY, mode='generic', pin_dir=PIN, **kw)
        assert r.get('failed') and 'holds the pins of %s in netns %s' % (V0, NS1) in r['msg'], r
        assert xdp_state(DUMMY)['prog_id'] is None and xdp_state()['prog_id'] == mine, kw
        assert _bpf.read_pins(PIN)['prog']['id'] == mine
    r = attach(objs['steer'], state='absent')
    assert r['changed'] and not os.path.exists(PIN), r


@pytest.mark.skipif(shutil.which('make') is None, reason='needs make')
def test_role_builds_only_on_change(clean, objs, tmp_path):
    """The bpf_programs role: build, attach, second run no change, compile error fails."""
    src = tmp_path / 'src'
    dest = tmp_path / 'lib'
    srcdir = tmp_path / 'bpfsrc'
    shutil.copytree(os.path.join(ROOT, 'files', 'bpf'), str(srcdir),
                    ignore=shutil.ignore_patterns('*.o'))
    pb = tmp_path / 'pb.yml'
    pb.write_text('''---
- name: Role under test
  hosts: localhost
  gather_facts: false
  roles:
    - role: kbypass.xdp.bpf_programs
      vars:
        bpf_programs_source_dir: %s
        bpf_programs_src_dir: %s
        bpf_programs_install_dir: %s
        bpf_programs_attach:
          - {ifname: %s, netns: %s, mode: native, ports: [4242, 4250]}
''' % (srcdir, src, dest, V0, NS1))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.collections'),
               ANSIBLE_STDOUT_CALLBACK='default', ANSIBLE_NOCOLOR='1')
    bin_ = os.path.dirname(sys.executable)

    def play(*extra):
        return subprocess.run([os.path.join(bin_, 'ansible-playbook'), '-i', 'localhost,',
                               '-c', 'local', '-e',
                               'ansible_python_interpreter=%s' % sys.executable, str(pb)]
                              + list(extra), cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300, check=False)

    p = play('--check')  # nothing built yet: check mode predicts, changes nothing
    assert p.returncode == 0, p.stdout + p.stderr
    assert not (dest / 'xdp_steer.o').exists() and not src.exists()
    assert xdp_state()['prog_id'] is None and not os.path.exists(PIN)

    p = play()
    assert p.returncode == 0, p.stdout + p.stderr
    assert (dest / 'xdp_steer.o').exists()
    assert xdp_state()['mode'] == 'native' and _bpf.read_steer_ports(PIN) == [4242, 4250]
    p = play()
    assert p.returncode == 0 and 'changed=0' in p.stdout, p.stdout
    pid = xdp_state()['prog_id']

    (srcdir / 'xdp_steer.c').write_text((srcdir / 'xdp_steer.c').read_text()
                                        + '\nthis is not C;\n')
    p = play()
    assert p.returncode != 0 and 'error' in p.stdout, p.stdout
    assert 'this is not C' in p.stdout or 'unknown type name' in p.stdout, p.stdout
    assert xdp_state()['prog_id'] == pid

    p = play('-e', 'bpf_programs_state=absent')
    assert p.returncode == 0, p.stdout
    assert xdp_state()['prog_id'] is None and not os.path.exists(PIN)


@pytest.mark.skipif(not os.access('/usr/local/bin/kbypass-fwd', os.X_OK),
                    reason='kbypass-fwd not installed (files/forwarder, forwarder role)')
def test_redirect_into_socket_and_reattach_keeps_it(clean, objs, tmp_path):
    """With an AF_XDP socket bound (kbypass-fwd rxdrop), matched packets are redirected
    and never reach the kernel socket; re-running the module (no change) and replacing
    the program with another tag keep the socket registered (same pinned xsks_map)."""
    r = attach(objs['steer'], mode='native')
    assert not r.get('failed'), r
    sh(['ping', '-c', '1', '-W', '2', A1], netns=NS2, timeout=10)
    stats = tmp_path / 'fwd.json'
    fwd = subprocess.Popen(['/usr/local/bin/kbypass-fwd', '--iface', V0, '--netns', NS1,
                            '--pin-dir', PIN, '--mode', 'rxdrop', '--duration', '60',
                            '--interval', '0.2', '--stats-file', str(stats), '--quiet'],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 10
        while not stats.exists() and time.time() < deadline and fwd.poll() is None:
            time.sleep(0.1)
        assert fwd.poll() is None, fwd.stderr.read()
        before = _bpf.read_steer_stats(PIN)
        assert udp_burst(A1, 4242, wait=2) == 0  # user space took them all
        d = delta(before)
        assert d['matched'] == N and d['redirected'] == N
        assert d['redirect_missed'] == 0

        assert not attach(objs['steer'], mode='native')['changed']
        r = attach(objs['variant'], mode='native')
        assert r['changed'] and r['plan']['action'] == 'replace', r
        before = _bpf.read_steer_stats(PIN)
        assert udp_burst(A1, 4242, wait=2) == 0
        assert delta(before)['redirected'] == N
    finally:
        stop_process(fwd)
    # socket gone: matched packets fall back to the kernel again
    before = _bpf.read_steer_stats(PIN)
    assert udp_burst(A1, 4242) == N
    assert delta(before)['redirect_missed'] == N
