# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for kbypass.xdp.netns_veth: validation, the pure plan, prediction, rendering.

No kernel state is read or written here: ``plan()`` takes a snapshot dict, and the
argument tests replace ``read_state``/``apply`` with functions that fail the test if called.
"""
from __future__ import annotations

import copy

import pytest

from ansible_collections.kbypass.xdp.plugins.modules import netns_veth as m
from module_main import run_main  # tests/unit/module_main.py

SEED = {
    'namespaces': ['ns1', 'ns2'],
    'links': [{
        'name': 'veth0', 'netns': 'ns1', 'addresses': ['198.18.0.10/24', '2001:2::10/64'],
        'peer': {'name': 'veth1', 'netns': 'ns2', 'addresses': ['198.18.0.20/24', '2001:2::20/64']},
    }],
}


def desired(args=None, **kw):
    a = copy.deepcopy(args or SEED)
    a.update(kw)
    d, errors = m.normalise(a)
    assert errors == [], errors
    return d


def veth(peer, addresses=(), up=True, mtu=1500, mac='02:00:00:00:00:01', rxq=1, txq=1, kind='veth'):
    return {'ifname': None, 'ifindex': 2, 'kind': kind, 'mtu': mtu, 'mac': mac, 'up': up,
            'rx_queues': rxq, 'tx_queues': txq, 'addresses': list(addresses),
            'peer': peer}


def seed_current():
    return {
        'namespaces': ['ns1', 'ns2'], 'lo_up': {'ns1': True, 'ns2': True},
        'links': {
            ('ns1', 'veth0'): veth(('ns2', 'veth1'), ['198.18.0.10/24', '2001:2::10/64']),
            ('ns2', 'veth1'): veth(('ns1', 'veth0'), ['198.18.0.20/24', '2001:2::20/64'],
                                   mac='02:00:00:00:00:02'),
        },
    }


EMPTY = {'namespaces': [], 'lo_up': {}, 'links': {}}


# ------------------------------------------------------------------ normalise
def test_normalise_seed():
    d = desired()
    assert d['namespaces'] == {'ns1': 'present', 'ns2': 'present'}
    assert d['links'][0]['end']['addresses'] == ['198.18.0.10/24', '2001:2::10/64']
    assert d['links'][0]['peer']['state'] == 'up'


def test_normalise_canonicalises_addresses_and_mac():
    a = copy.deepcopy(SEED)
    a['links'][0]['addresses'] = ['2001:0002:0::0010/64']
    a['links'][0]['mac'] = '02-AB-00-00-00-01'
    d = desired(a)
    assert d['links'][0]['end']['addresses'] == ['2001:2::10/64']
    assert d['links'][0]['end']['mac'] == '02:ab:00:00:00:01'


def test_link_namespaces_are_implied():
    d = desired({'links': [{'name': 'a0', 'netns': 'x', 'peer': {'name': 'b0'}}]})
    assert d['namespaces'] == {'x': 'present'}


def seed_with(path, value):
    """SEED with ``links[0]<path>`` set to ``value``."""
    a = copy.deepcopy(SEED)
    target = a['links'][0]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return a


@pytest.mark.parametrize('path, value, expect', [
    (('name',), 'sixteen_chars_xx', 'at most 15'),
    (('peer', 'name'), 'a/b', '"/"'),
    (('netns',), 'bad ns', 'network namespace name'),
    (('addresses',), ['10.0.0.1/33'], 'not a valid CIDR'),
    (('addresses',), ['198.18.0.1'], 'no prefix length'),
    (('addresses',), ['198.18.0.1/24', '198.18.0.1/24'], 'listed twice'),
    (('mac',), 'zz:00:00:00:00:00', 'not a MAC address'),
    (('mac',), '03:00:00:00:00:01', 'unicast'),
    (('mtu',), 20, 'outside'),
    (('rx_queues',), 0, 'outside'),
    (('peer', 'name'), 'veth0', None),  # same name, other namespace: allowed
])
def test_normalise_errors(path, value, expect):
    errors = m.normalise(seed_with(path, value))[1]
    if expect is None:
        assert errors == []
    else:
        assert len(errors) == 1 and expect in errors[0], errors


def test_same_name_same_namespace_rejected():
    a = copy.deepcopy(SEED)
    a['links'][0]['peer'].update(name='veth0', netns='ns1')
    errors = m.normalise(a)[1]
    assert any('both ends are called' in e for e in errors)


def test_duplicate_end_across_links_rejected():
    a = copy.deepcopy(SEED)
    a['links'].append({'name': 'veth0', 'netns': 'ns1', 'peer': {'name': 'x0'}})
    errors = m.normalise(a)[1]
    assert any('declared by links[0] and links[1]' in e for e in errors)


def test_namespace_absent_but_needed():
    a = copy.deepcopy(SEED)
    a['namespaces'] = ['ns1', {'name': 'ns2', 'state': 'absent'}]
    errors = m.normalise(a)[1]
    assert errors == ["namespace 'ns2' is declared absent but veth1@ns2 still needs it; "
                      "drop the link or keep the namespace"]
    # the same in state=absent is fine: everything goes
    errors = m.normalise(dict(a, state='absent'))[1]
    assert errors == []


@pytest.mark.parametrize('entry', [42, {'nom': 'x'}, {'name': 'x', 'state': 'gone'}, '-x'])
def test_bad_namespace_entries(entry):
    errors = m.normalise({'namespaces': [entry]})[1]
    assert len(errors) == 1


# ------------------------------------------------------------------ plan
def ops(actions):
    return [a['text'] for a in actions]


def test_plan_from_scratch():
    actions, errors = m.plan(desired(), EMPTY)
    assert errors == []
    assert ops(actions) == [
        'create namespace ns1', 'create namespace ns2', 'bring lo up in ns1', 'bring lo up in ns2',
        'create veth veth0@ns1 <-> veth1@ns2',
        'add 198.18.0.10/24 to veth0@ns1', 'add 2001:2::10/64 to veth0@ns1', 'set veth0@ns1 up',
        'add 198.18.0.20/24 to veth1@ns2', 'add 2001:2::20/64 to veth1@ns2', 'set veth1@ns2 up',
    ]


def test_plan_converged_is_empty():
    assert m.plan(desired(), seed_current()) == ([], [])


def test_plan_ignores_link_local_and_unmanaged_attrs():
    cur = seed_current()
    cur['links'][('ns1', 'veth0')]['mtu'] = 9000  # mtu not declared: left alone
    assert m.plan(desired(), cur) == ([], [])


def test_plan_one_address_change():
    a = copy.deepcopy(SEED)
    a['links'][0]['addresses'] = ['198.18.0.11/24', '2001:2::10/64']
    actions = m.plan(desired(a), seed_current())[0]
    assert ops(actions) == ['remove 198.18.0.10/24 from veth0@ns1', 'add 198.18.0.11/24 to veth0@ns1']


def test_plan_omitted_addresses_left_alone_and_empty_list_clears():
    a = copy.deepcopy(SEED)
    del a['links'][0]['addresses']
    assert m.plan(desired(a), seed_current()) == ([], [])
    a['links'][0]['addresses'] = []
    actions = m.plan(desired(a), seed_current())[0]
    assert ops(actions) == ['remove 198.18.0.10/24 from veth0@ns1', 'remove 2001:2::10/64 from veth0@ns1']


def test_plan_lo_down_and_state_down():
    cur = seed_current()
    cur['lo_up']['ns2'] = False
    a = copy.deepcopy(SEED)
    a['links'][0]['peer']['state'] = 'down'
    actions = m.plan(desired(a), cur)[0]
    assert ops(actions) == ['bring lo up in ns2', 'set veth1@ns2 down']


def test_plan_non_veth_is_an_error():
    cur = copy.deepcopy(EMPTY)
    cur['namespaces'] = ['ns2']
    cur['links'][('ns2', 'veth1')] = veth(None, kind='bridge')
    actions, errors = m.plan(desired(), cur)
    assert actions == [] and errors == [
        'veth1@ns2 already exists as a bridge device, not a veth; choose another name or '
        'remove that device first']
    cur['links'][('ns2', 'veth1')] = veth(None, kind=None)
    errors = m.plan(desired(), cur)[1]
    assert 'without a link kind' in errors[0]
    # recreate never deletes a non-veth
    errors = m.plan(desired(recreate=True), cur)[1]
    assert errors


def test_plan_queue_mismatch_needs_recreate():
    a = copy.deepcopy(SEED)
    a['links'][0]['rx_queues'] = 4
    actions, errors = m.plan(desired(a), seed_current())
    assert actions == [] and 'rx_queues 1/1 but 4 was requested' in errors[0]
    assert 'recreate: true' in errors[0]
    actions, errors = m.plan(desired(a, recreate=True), seed_current())
    assert errors == []
    assert ops(actions)[:3] == ['delete veth veth0@ns1 (recreate)', 'delete veth veth1@ns2 (recreate)',
                                'create veth veth0@ns1 <-> veth1@ns2']
    assert actions[2]['rx_queues'] == 4


def test_plan_paired_elsewhere():
    cur = seed_current()
    cur['links'][('ns1', 'veth0')]['peer'] = ('ns3', 'other')
    actions, errors = m.plan(desired(), cur)
    assert actions == [] and 'veth0@ns1 is a veth paired with other@ns3' in errors[0]


def test_plan_absent_order_and_idempotence():
    d = desired(state='absent')
    actions, errors = m.plan(d, seed_current())
    assert errors == []
    assert ops(actions) == ['delete veth veth0@ns1', 'delete namespace ns1', 'delete namespace ns2']
    assert m.plan(d, EMPTY) == ([], [])


def test_plan_namespace_absent_in_present_state():
    a = copy.deepcopy(SEED)
    a['namespaces'] = ['ns1', 'ns2', {'name': 'ns9', 'state': 'absent'}]
    cur = seed_current()
    cur['namespaces'].append('ns9')
    actions = m.plan(desired(a), cur)[0]
    assert ops(actions) == ['delete namespace ns9']


# ------------------------------------------------------------------ predict / render
def test_predict_from_scratch_converges():
    d = desired()
    actions = m.plan(d, EMPTY)[0]
    after = m.predict(EMPTY, actions)
    assert m.plan(d, after) == ([], [])
    out = m.render(d, after)
    assert out['namespaces'] == ['ns1', 'ns2']
    assert out['links'][0]['addresses'] == ['198.18.0.10/24', '2001:2::10/64']
    assert out['links'][0]['peer']['state'] == 'up'


def test_predict_absent():
    d = desired(state='absent')
    actions = m.plan(d, seed_current())[0]
    after = m.predict(seed_current(), actions)
    out = m.render(d, after)
    assert out == {'namespaces': [], 'links': [{'present': False, 'netns': 'ns1', 'ifname': 'veth0',
                                                'peer': {'present': False, 'netns': 'ns2',
                                                         'ifname': 'veth1'}}]}


def test_diff_view_keys():
    view = m._diff_view(m.render(desired(), seed_current()))
    assert set(view['links']) == {'veth0@ns1', 'veth1@ns2'}
    assert 'ifindex' not in view['links']['veth0@ns1']


# ------------------------------------------------------------------ the module entry point
def _run_main(args, monkeypatch):
    for name in ('read_state', 'apply'):
        monkeypatch.setattr(m, name, lambda *a, **k: pytest.fail('the kernel was touched'))
    return run_main(m, args)


def test_main_rejects_bad_input_before_reading(monkeypatch):
    a = copy.deepcopy(SEED)
    a['links'][0]['name'] = 'x' * 16
    res = _run_main(a, monkeypatch)
    assert res['failed'] and 'nothing was changed' in res['msg'] and 'at most 15' in res['msg']


def test_main_argument_spec(monkeypatch):
    res = _run_main({'links': [{'name': 'a0'}]}, monkeypatch)
    assert res['failed'] and 'peer' in res['msg']
    res = _run_main({'state': 'gone'}, monkeypatch)
    assert res['failed'] and 'state' in res['msg']


def test_main_converged_unchanged(monkeypatch):
    monkeypatch.setattr(m, 'read_state', lambda d: seed_current())
    monkeypatch.setattr(m, 'apply', lambda *a, **k: pytest.fail('applied with nothing to do'))
    res = run_main(m, dict(SEED, _ansible_diff=True))
    assert res['changed'] is False and res['actions'] == []
    # the diff shows what was read, not two copies of nothing
    after = res['diff']['after']['links']
    assert after['veth0@ns1']['addresses'] == ['198.18.0.10/24', '2001:2::10/64']
    assert after['veth1@ns2']['mac'] == '02:00:00:00:00:02' and after['veth1@ns2']['state'] == 'up'
    assert res['diff']['before'] == res['diff']['after']


# ------------------------------------------------------------------ #17 items 5, 6: validate, never leave a half change
@pytest.mark.parametrize('path,value,expect', [
    (('addresses',), ['::ffff:198.18.200.10/128'], 'IPv4-mapped'),
    (('addresses',), ['ff02::5/64'], 'multicast'),
    (('addresses',), ['0.0.0.0/8'], 'unspecified'),
    (('name',), 'qa%d', '"%"'),
    (('name',), 'kbννννννν', 'bytes long'),  # 9 characters, 16 bytes
    (('name',), 'kb\x07r', 'control'),
    (('mtu',), 68, 'below 1280, the IPv6 minimum'),
])
def test_normalise_refuses_what_the_kernel_would(path, value, expect):
    errors = m.normalise(seed_with(path, value))[1]
    assert errors and any(expect in e for e in errors), errors


def test_mtu_68_without_ipv6_is_fine():
    a = copy.deepcopy(SEED)
    a['links'][0].update(mtu=68, addresses=['198.18.0.10/24'])
    # the link's mtu is the peer's too, and the peer still has an IPv6 address
    assert [e.split(':')[0] for e in m.normalise(a)[1]] == ['links[0] veth0 peer']
    a['links'][0]['peer']['addresses'] = ['198.18.0.20/24']
    assert m.normalise(a)[1] == []


def test_failure_after_creations_removes_them_again(monkeypatch):
    """The kernel refuses the 4th action: what this call created goes again, nothing
    else stays changed, and the message names the kernel's reason in words."""
    applied = []

    def fake_apply(actions, ipv6_nodad=True):
        for act in actions:
            if act['op'] == 'addr_add':
                raise m._netlink.NetlinkError(34, 'Numerical result out of range')
            applied.append(act['op'])
    monkeypatch.setattr(m, 'read_state', lambda d: EMPTY)
    monkeypatch.setattr(m, 'apply', fake_apply)
    monkeypatch.setattr(m, 'require_pyroute2', lambda module: None)
    res = run_main(m, copy.deepcopy(SEED))
    assert res['failed'] and res['changed'] is False, res
    assert 'Numerical result out of range' in res['msg'] and '(34,' not in res['msg']
    assert 'still changed: nothing' in res['msg']
    assert applied[-3:] == ['delete_link', 'delete_netns', 'delete_netns'], applied


def test_failure_after_a_change_of_an_existing_link_says_changed(monkeypatch):
    cur = seed_current()
    new = copy.deepcopy(SEED)
    new['links'][0]['mtu'] = 9000
    new['links'][0]['addresses'] = ['198.18.0.11/24', '2001:2::10/64']

    def fake_apply(actions, ipv6_nodad=True):
        if actions[0]['op'] == 'addr_add':
            raise OSError(22, 'Invalid argument')
    monkeypatch.setattr(m, 'read_state', lambda d: cur)
    monkeypatch.setattr(m, 'apply', fake_apply)
    monkeypatch.setattr(m, 'require_pyroute2', lambda module: None)
    res = run_main(m, new)
    assert res['failed'] and res['changed'] is True, res
    assert 'set mtu 9000 on veth0@ns1' in res['actions']
    assert 'Invalid argument' in res['msg'] and '[Errno' not in res['msg']


# ------------------------------------------------------------------ a link's MTU (jumbo frames)
def test_link_mtu_applies_to_both_ends_unless_the_peer_sets_its_own():
    d = desired(seed_with(('mtu',), 9000))
    assert (d['links'][0]['end']['mtu'], d['links'][0]['peer']['mtu']) == (9000, 9000)
    a = seed_with(('mtu',), 9000)
    a['links'][0]['peer']['mtu'] = 1500
    d = desired(a)
    assert (d['links'][0]['end']['mtu'], d['links'][0]['peer']['mtu']) == (9000, 1500)


def test_link_mtu_plan_sets_both_ends_then_nothing():
    actions = m.plan(desired(seed_with(('mtu',), 9000)), seed_current())[0]
    assert ops(actions) == ['set mtu 9000 on veth0@ns1', 'set mtu 9000 on veth1@ns2']
    after = m.predict(seed_current(), actions)
    assert m.plan(desired(seed_with(('mtu',), 9000)), after) == ([], [])
    view = m._diff_view(m.render(desired(seed_with(('mtu',), 9000)), after))
    assert view['links']['veth1@ns2']['mtu'] == 9000


def test_link_mtu_on_creation_goes_to_both_ends():
    [create] = [a for a in m.plan(desired(seed_with(('mtu',), 9000)), EMPTY)[0]
                if a['op'] == 'create_veth']
    assert (create['mtu'], create['peer_mtu']) == (9000, 9000)


@pytest.mark.parametrize('value', [67, 65536, 0, -1])
def test_link_mtu_out_of_range_is_reported_once(value):
    errors = m.normalise(seed_with(('mtu',), value))[1]
    assert errors == ['links[0] veth0: mtu %d is outside 68-65535' % value]


@pytest.mark.parametrize('value', ['9k', 9000.5, 'jumbo'])
def test_non_integer_mtu_is_rejected_before_anything(monkeypatch, value):
    res = _run_main(seed_with(('mtu',), value), monkeypatch)
    assert res['failed'] and 'mtu' in res['msg'] and 'int' in res['msg'], res


def test_mtu_refusal_names_the_limit_and_what_to_do():
    text = m.mtu_refusal_text(9000, 3498, 'Invalid argument')
    assert text.startswith('the kernel refused mtu 9000 (Invalid argument)')
    assert 'at most 3498' in text and 'xdp.frags' in text and 'state: absent' in text
    # a refusal for another reason does not blame XDP
    assert 'XDP' not in m.mtu_refusal_text(9000, 65535, 'Operation not permitted')
