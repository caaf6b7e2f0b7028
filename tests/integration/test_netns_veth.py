"""kbypass.xdp.netns_veth against the real kernel: real namespaces, veths, pings.

Names use the prefix ``kbtn`` only (namespaces kbtn1.., links kbtnv*, root links kbtnr*),
addresses 198.18.0.0/15 and 2001:2::/48. The ``bed`` fixture removes every such object in
its finalizer, so a failing test leaves nothing behind.
"""
import copy
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, _env, netns_list, run_module, sh

NS = ('kbtn1', 'kbtn2', 'kbtn3')
ROOT_LINKS = ('kbtnr0', 'kbtnd0')


def _cleanup():
    for ns in NS:
        if ns in netns_list():
            sh(['ip', 'netns', 'del', ns], check=False)
    for link in ROOT_LINKS:
        if os.path.exists('/sys/class/net/%s' % link):
            sh(['ip', 'link', 'del', link], check=False)


@pytest.fixture
def bed():
    """Start and end with no kbtn objects, whatever happens in the test."""
    if os.geteuid() != 0:
        pytest.skip('needs root (CAP_NET_ADMIN) to create namespaces')
    _cleanup()
    yield
    _cleanup()
    left = [n for n in netns_list() if n in NS]
    assert not left, 'namespaces left behind: %s' % left


def topo(**kw):
    args = {
        'namespaces': ['kbtn1', 'kbtn2'],
        'links': [{
            'name': 'kbtnv0', 'netns': 'kbtn1',
            'addresses': ['198.18.0.10/24', '2001:2::10/64'],
            'peer': {'name': 'kbtnv1', 'netns': 'kbtn2',
                     'addresses': ['198.18.0.20/24', '2001:2::20/64']},
        }],
    }
    args.update(kw)
    return args


def ipj(args, netns=None):
    """`ip -j` output of the test's own view of the kernel (the module never parses ip)."""
    return json.loads(sh(['ip', '-j'] + list(args), netns=netns).stdout or '[]')


def link(netns, name, details=False):
    out = ipj((['-d'] if details else []) + ['link', 'show', 'dev', name], netns=netns)
    return out[0]


def addrs(netns, name):
    out = ipj(['addr', 'show', 'dev', name], netns=netns)[0]
    return sorted('%s/%s' % (a['local'], a['prefixlen']) for a in out['addr_info']
                  if a.get('scope') != 'link' and not a['local'].startswith('fe80'))


def ping(netns, dst):
    cmd = ['ping', '-c', '1', '-W', '2', dst]
    return sh(cmd, netns=netns, check=False).returncode == 0


def fingerprint():
    """Everything a bad-input test must leave untouched."""
    state = {'netns': [n for n in netns_list() if n.startswith('kbtn')]}
    for ns in state['netns']:
        state[ns] = sorted((l['ifname'], l['ifindex']) for l in ipj(['link'], netns=ns))
    state['root'] = sorted(l['ifname'] for l in ipj(['link']) if l['ifname'].startswith('kbtn'))
    return state


def test_create_check_diff_idempotent_ping(bed):
    res = run_module('netns_veth', topo(), check=True, diff=True)
    assert res['changed'] is True, res
    assert 'create namespace kbtn1' in res['actions']
    assert not [n for n in netns_list() if n in NS], 'check mode created a namespace'
    assert res['diff']['before']['namespaces'] == []
    assert res['diff']['after']['links']['kbtnv0@kbtn1']['addresses'] == [
        '198.18.0.10/24', '2001:2::10/64']

    res = run_module('netns_veth', topo(), diff=True)
    assert res['changed'] is True, res
    assert {'kbtn1', 'kbtn2'} <= set(netns_list())
    end, peer = res['links'][0], res['links'][0]['peer']
    assert (end['netns'], end['ifname'], peer['netns'], peer['ifname']) == (
        'kbtn1', 'kbtnv0', 'kbtn2', 'kbtnv1')
    k_end, k_peer = link('kbtn1', 'kbtnv0'), link('kbtn2', 'kbtnv1')
    assert end['ifindex'] == k_end['ifindex'] and end['mac'] == k_end['address']
    assert peer['ifindex'] == k_peer['ifindex'] and peer['mac'] == k_peer['address']
    assert end['addresses'] == addrs('kbtn1', 'kbtnv0') == ['198.18.0.10/24', '2001:2::10/64']
    assert peer['addresses'] == addrs('kbtn2', 'kbtnv1')
    assert 'UP' in link('kbtn1', 'lo')['flags'] and 'UP' in link('kbtn2', 'lo')['flags']
    assert res['diff']['before']['links']['kbtnv1@kbtn2'] == {'present': False}
    assert res['diff']['after']['links']['kbtnv1@kbtn2']['state'] == 'up'

    # IPv6 test addresses were added with IFA_F_NODAD: never tentative
    for ns, dev in (('kbtn1', 'kbtnv0'), ('kbtn2', 'kbtnv1')):
        v6 = [a for a in ipj(['addr', 'show', 'dev', dev], netns=ns)[0]['addr_info']
              if a['local'].startswith('2001:2::')]
        assert v6 and all(a.get('nodad') and not a.get('tentative') for a in v6), v6
    # v4 and v6 work immediately, both directions
    assert ping('kbtn1', '198.18.0.20') and ping('kbtn2', '198.18.0.10')
    assert ping('kbtn1', '2001:2::20') and ping('kbtn2', '2001:2::10')

    again = run_module('netns_veth', topo(), diff=True)
    assert again['changed'] is False and again['actions'] == [], again
    # both sides of the diff are the kernel's state, read again (not copies of nothing)
    after = again['diff']['after']['links']
    assert after['kbtnv0@kbtn1']['addresses'] == addrs('kbtn1', 'kbtnv0')
    assert after['kbtnv1@kbtn2']['mac'] == link('kbtn2', 'kbtnv1')['address']
    assert again['diff']['before'] == again['diff']['after']
    assert again['links'][0]['ifindex'] == end['ifindex']

    check = run_module('netns_veth', topo(), check=True)
    assert check['changed'] is False, check


def test_change_one_address_changes_only_that(bed):
    first = run_module('netns_veth', topo())
    assert first['changed'], first
    before_peer = link('kbtn2', 'kbtnv1')
    new = topo()
    new['links'][0]['addresses'] = ['198.18.0.11/24', '2001:2::10/64']

    check = run_module('netns_veth', new, check=True)
    assert check['actions'] == ['remove 198.18.0.10/24 from kbtnv0@kbtn1',
                                'add 198.18.0.11/24 to kbtnv0@kbtn1']
    assert addrs('kbtn1', 'kbtnv0') == ['198.18.0.10/24', '2001:2::10/64']

    res = run_module('netns_veth', new)
    assert res['changed'] is True
    assert res['actions'] == check['actions']
    assert addrs('kbtn1', 'kbtnv0') == ['198.18.0.11/24', '2001:2::10/64']
    assert addrs('kbtn2', 'kbtnv1') == ['198.18.0.20/24', '2001:2::20/64']
    assert res['links'][0]['ifindex'] == first['links'][0]['ifindex']  # not re-created
    assert link('kbtn2', 'kbtnv1')['ifindex'] == before_peer['ifindex']
    assert ping('kbtn2', '198.18.0.11')
    assert run_module('netns_veth', new)['changed'] is False


def test_mtu_mac_queues_state_and_recreate(bed):
    args = topo()
    args['links'][0].update(mtu=9000, mac='02:00:5e:10:00:01', rx_queues=4, tx_queues=4)
    args['links'][0]['peer'].update(mtu=9000, mac='02:00:5e:10:00:02', state='down')
    res = run_module('netns_veth', args)
    assert res['changed'], res
    k = link('kbtn1', 'kbtnv0', details=True)
    assert (k['mtu'], k['address'], k['num_rx_queues'], k['num_tx_queues']) == (
        9000, '02:00:5e:10:00:01', 4, 4)
    kp = link('kbtn2', 'kbtnv1', details=True)
    assert (kp['mtu'], kp['address'], kp['num_rx_queues']) == (9000, '02:00:5e:10:00:02', 4)
    assert 'UP' not in kp['flags'] and res['links'][0]['peer']['state'] == 'down'
    assert run_module('netns_veth', args)['changed'] is False

    # MTU and MAC change in place
    args['links'][0]['mtu'] = 1400
    args['links'][0]['mac'] = '02:00:5e:10:00:03'
    res = run_module('netns_veth', args)
    assert res['actions'] == ['set mtu 1400 on kbtnv0@kbtn1', 'set mac 02:00:5e:10:00:03 on kbtnv0@kbtn1']
    assert (link('kbtn1', 'kbtnv0')['mtu'], link('kbtn1', 'kbtnv0')['address']) == (
        1400, '02:00:5e:10:00:03')

    # queue counts are fixed at creation: fail without recreate, nothing touched
    ifindex = link('kbtn1', 'kbtnv0')['ifindex']
    args['links'][0]['rx_queues'] = 2
    args['links'][0]['tx_queues'] = 2
    res = run_module('netns_veth', args)
    assert res.get('failed') is True, res
    assert 'rx_queues' in res['msg'] and 'recreate: true' in res['msg']
    assert link('kbtn1', 'kbtnv0', details=True)['num_rx_queues'] == 4
    assert link('kbtn1', 'kbtnv0')['ifindex'] == ifindex

    args['recreate'] = True
    res = run_module('netns_veth', args)
    assert res['changed'] is True and 'delete veth kbtnv0@kbtn1 (recreate)' in res['actions']
    k = link('kbtn1', 'kbtnv0', details=True)
    assert (k['num_rx_queues'], k['num_tx_queues'], k['mtu']) == (2, 2, 1400)
    assert addrs('kbtn1', 'kbtnv0') == ['198.18.0.10/24', '2001:2::10/64']
    assert run_module('netns_veth', args)['changed'] is False


def test_end_in_root_namespace(bed):
    args = {'links': [{'name': 'kbtnr0', 'addresses': ['198.19.7.1/30'],
                       'peer': {'name': 'kbtnv2', 'netns': 'kbtn3',
                                'addresses': ['198.19.7.2/30']}}]}
    res = run_module('netns_veth', args)
    assert res['changed'], res
    assert 'kbtn3' in netns_list()  # created because a link needs it
    assert res['links'][0]['netns'] is None
    assert res['links'][0]['ifindex'] == link(None, 'kbtnr0')['ifindex']
    assert ping('kbtn3', '198.19.7.1')
    assert run_module('netns_veth', args)['changed'] is False
    args['state'] = 'absent'
    args['namespaces'] = ['kbtn3']
    res = run_module('netns_veth', args)
    assert res['actions'] == ['delete veth kbtnr0@root', 'delete namespace kbtn3']
    assert not os.path.exists('/sys/class/net/kbtnr0')


def test_absent_check_then_twice(bed):
    assert run_module('netns_veth', topo())['changed']
    absent = topo(state='absent')
    res = run_module('netns_veth', absent, check=True, diff=True)
    assert res['changed'] is True
    assert {'kbtn1', 'kbtn2'} <= set(netns_list()), 'check mode deleted something'
    assert res['diff']['after'] == {'namespaces': [], 'links': {
        'kbtnv0@kbtn1': {'present': False}, 'kbtnv1@kbtn2': {'present': False}}}
    res = run_module('netns_veth', absent)
    assert res['changed'] is True
    assert res['actions'] == ['delete veth kbtnv0@kbtn1', 'delete namespace kbtn1',
                              'delete namespace kbtn2']
    assert not {'kbtn1', 'kbtn2'} & set(netns_list())
    res = run_module('netns_veth', absent)
    assert res['changed'] is False and res['actions'] == []


def _bad(args, expect):
    before = fingerprint()
    res = run_module('netns_veth', args)
    assert res.get('failed') is True, res
    assert expect in res['msg'], res['msg']
    assert 'nothing was changed' in res['msg']
    assert fingerprint() == before, 'bad input changed something'
    return res


@pytest.mark.parametrize('mutate, expect', [
    (lambda a: a['links'][0].update(name='kbtn_way_too_long0'), 'at most 15'),
    (lambda a: a['links'][0]['peer'].update(name='kbtn/v1'), 'may not contain "/"'),
    (lambda a: a['links'][0].update(netns='kbtn 1!'), 'network namespace name'),
    (lambda a: a.update(namespaces=['kbtn1', '../etc']), 'network namespace name'),
    (lambda a: a['links'][0].update(addresses=['198.18.0.300/24']), 'not a valid CIDR'),
    (lambda a: a['links'][0].update(addresses=['198.18.0.10']), 'no prefix length'),
    (lambda a: a['links'][0]['peer'].update(addresses=['2001:2::zz/64']), 'not a valid CIDR'),
    (lambda a: a['links'][0]['peer'].update(name='kbtnv0', netns='kbtn1'), 'both ends are called'),
    (lambda a: a['links'][0].update(mac='01:00:5e:00:00:01'), 'unicast'),
    (lambda a: a.update(namespaces=['kbtn1', {'name': 'kbtn2', 'state': 'absent'}]),
     "namespace 'kbtn2' is declared absent but kbtnv1@kbtn2 still needs it"),
])
def test_bad_input_changes_nothing(bed, mutate, expect):
    args = copy.deepcopy(topo())
    mutate(args)
    _bad(args, expect)
    assert not [n for n in netns_list() if n in NS]


def test_bad_input_on_existing_bed_changes_nothing(bed):
    assert run_module('netns_veth', topo())['changed']
    # removing a namespace a requested link still lives in
    args = topo(namespaces=['kbtn1', {'name': 'kbtn2', 'state': 'absent'}])
    _bad(args, 'still needs it')
    assert 'kbtn2' in netns_list()
    # a bad address next to a valid change: the valid change is not applied either
    args = topo()
    args['links'][0]['addresses'] = ['198.18.0.11/24']
    args['links'][0]['peer']['addresses'] = ['nonsense/64']
    _bad(args, 'not a valid CIDR')
    assert addrs('kbtn1', 'kbtnv0') == ['198.18.0.10/24', '2001:2::10/64']


def test_peer_name_taken_by_non_veth(bed):
    sh(['ip', 'netns', 'add', 'kbtn3'])
    sh(['ip', 'link', 'add', 'kbtnd0', 'type', 'bridge'], netns='kbtn3')
    args = {'links': [{'name': 'kbtnv5', 'netns': 'kbtn1',
                       'peer': {'name': 'kbtnd0', 'netns': 'kbtn3'}}]}
    res = _bad(args, 'kbtnd0@kbtn3 already exists as a bridge device, not a veth')
    assert 'kbtn1' not in netns_list()
    assert link('kbtn3', 'kbtnd0', details=True)['linkinfo']['info_kind'] == 'bridge'
    # absent refuses to delete a non-veth of that name, too
    res = run_module('netns_veth', {'state': 'absent', 'links': args['links']})
    assert res.get('failed') and 'not a veth; refusing to delete' in res['msg']
    assert link('kbtn3', 'kbtnd0')


def test_end_paired_elsewhere_needs_recreate(bed):
    assert run_module('netns_veth', topo())['changed']
    other = topo()
    other['links'][0]['peer']['name'] = 'kbtnv9'  # kbtnv0 exists, paired with kbtnv1
    res = run_module('netns_veth', other)
    assert res.get('failed') and 'paired with kbtnv1@kbtn2' in res['msg'], res
    assert link('kbtn2', 'kbtnv1')
    other['recreate'] = True
    res = run_module('netns_veth', other)
    assert res['changed'], res
    assert link('kbtn2', 'kbtnv9')['ifname'] == 'kbtnv9'
    assert ping('kbtn1', '198.18.0.20')


# ------------------------------------------------------------------ role kbypass.xdp.testbed
CHAIN = {
    'testbed_namespaces': ['kbtn1', 'kbtn2', 'kbtn3'],
    'testbed_links': [
        {'name': 'kbtnv0', 'netns': 'kbtn1', 'addresses': ['198.18.0.10/24', '2001:2::10/64'],
         'peer': {'name': 'kbtnv1', 'netns': 'kbtn2',
                  'addresses': ['198.18.0.20/24', '2001:2::20/64']}},
        {'name': 'kbtnv2', 'netns': 'kbtn2', 'addresses': ['198.18.1.20/24'],
         'rx_queues': 2, 'tx_queues': 2,
         'peer': {'name': 'kbtnv3', 'netns': 'kbtn3', 'addresses': ['198.18.1.30/24']}},
    ],
}


def run_role(tmp_path, extra):
    """Run the testbed role on localhost with ``extra`` vars; return (rc, stats)."""
    play = tmp_path / 'play.yml'
    play.write_text('- name: testbed role\n  hosts: localhost\n  gather_facts: false\n'
                    '  roles:\n    - role: kbypass.xdp.testbed\n')
    varsfile = tmp_path / 'vars.json'
    varsfile.write_text(json.dumps(extra))
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'),
           '-i', 'localhost,', '-c', 'local',
           '-e', 'ansible_python_interpreter=%s' % sys.executable,
           '-e', '@%s' % varsfile, str(play)]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=300, check=False)
    out = json.loads(proc.stdout)
    return proc.returncode, out['stats']['localhost']


def test_role_chain_idempotent_and_teardown(bed, tmp_path):
    rc, stats = run_role(tmp_path, CHAIN)
    assert rc == 0 and stats['changed'] == 1 and stats['failures'] == 0, stats
    assert {'kbtn1', 'kbtn2', 'kbtn3'} <= set(netns_list())
    assert link('kbtn2', 'kbtnv2', details=True)['num_rx_queues'] == 2
    assert ping('kbtn3', '198.18.1.20') and ping('kbtn2', '2001:2::10')
    rc, stats = run_role(tmp_path, CHAIN)
    assert rc == 0 and stats['changed'] == 0, stats
    rc, stats = run_role(tmp_path, dict(CHAIN, testbed_state='absent'))
    assert rc == 0 and stats['changed'] == 1, stats
    assert not {'kbtn1', 'kbtn2', 'kbtn3'} & set(netns_list())
    rc, stats = run_role(tmp_path, dict(CHAIN, testbed_state='absent'))
    assert rc == 0 and stats['changed'] == 0, stats


def test_role_ping_check_fails_on_a_broken_pair(bed, tmp_path):
    broken = copy.deepcopy(CHAIN)
    broken['testbed_links'] = broken['testbed_links'][:1]
    # the peer's IPv4 lives in another subnet: no route, the ping check must fail the play
    broken['testbed_links'][0]['peer']['addresses'] = ['198.19.0.20/24']
    rc, stats = run_role(tmp_path, broken)
    assert rc != 0 and stats['failures'] == 1, stats
