#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: nic_tune
short_description: Tune one network interface for AF_XDP and restore it exactly
version_added: 0.1.0
description:
  - Sets ethtool features (GRO, LRO, GSO, TSO, C(rx-udp-gro-forwarding), checksums...),
    channel counts, ring sizes and ntuple flow steering rules (flow to RX queue), per-device
    sysfs attributes such as C(napi_defer_hard_irqs) and C(gro_flush_timeout), and the CPU
    affinity of the interface's queue interrupts.
  - Changes are applied in the order the hardware needs them - features (ntuple switched on
    first), then channels, rings, ntuple rules, sysfs attributes and finally IRQ affinity
    (channel changes re-create IRQs).
  - The first time the module changes a knob it saves the knob's original value in
    O(state_dir)/nic:<name>.json (C(nic:<netns>:<name>.json) in a namespace).
    O(state=restored) puts every saved value
    back, deletes the ntuple rules it added and removes the file, so a restore is exact no
    matter how many times the interface was tuned in between.
  - Knobs the device does not have (fixed features, channel or ring keys ethtool reports as
    n/a, missing sysfs attributes, no interrupts on a virtual device) are skipped with a
    warning, or make the module fail before changing anything when O(strict=true).
  - Every value is checked before anything is touched. When the device refuses a change
    after others were applied, the task fails with C(changed=true) and RV(applied) lists
    what was applied; O(state=restored) puts it back.
author:
  - kbypass.xdp developers (@kbypass)
requirements:
  - ethtool and iproute2 (C(ip), to run ethtool inside a namespace) on the target
options:
  name:
    description: Interface name.
    type: str
    required: true
    aliases: [interface]
  netns:
    description: Network namespace (as created by C(ip netns add)) holding the interface.
    type: str
  state:
    description:
      - V(present) applies the requested settings and saves originals.
      - V(restored) restores everything saved for this interface; other options are ignored.
    type: str
    choices: [present, restored]
    default: present
  features:
    description:
      - ethtool features to switch, name to boolean. Short C(ethtool -K) names (C(gro),
        C(lro), C(gso), C(tso), C(sg), C(rx), C(tx), C(ntuple), C(rxhash), C(rxvlan),
        C(txvlan)) and long C(ethtool -k) names are both accepted.
    type: dict
    default: {}
  channels:
    description: Channel counts as C(ethtool -L) sets them.
    type: dict
    suboptions:
      rx:
        description: RX-only channels.
        type: int
      tx:
        description: TX-only channels.
        type: int
      other:
        description: Other channels.
        type: int
      combined:
        description: Combined channels.
        type: int
  rings:
    description: Ring sizes as C(ethtool -G) sets them.
    type: dict
    suboptions:
      rx:
        description: RX ring entries.
        type: int
      tx:
        description: TX ring entries.
        type: int
      rx_mini:
        description: RX mini ring entries.
        type: int
      rx_jumbo:
        description: RX jumbo ring entries.
        type: int
  ntuple_rules:
    description:
      - Flow steering rules (C(ethtool -N)). The C(ntuple-filters) feature is switched on
        automatically. A rule that already exists (same match and queue) is left alone.
    type: list
    elements: dict
    default: []
    suboptions:
      flow_type:
        description: Flow type.
        type: str
        choices: [tcp4, udp4, tcp6, udp6]
        required: true
      src_ip:
        description: Source address to match.
        type: str
      dst_ip:
        description: Destination address to match.
        type: str
      src_port:
        description: Source port to match.
        type: int
      dst_port:
        description: Destination port to match.
        type: int
      queue:
        description: RX queue the flow goes to.
        type: int
        required: true
      loc:
        description: Rule location; the driver picks one when omitted.
        type: int
  sysfs:
    description:
      - Attributes under C(/sys/class/net/<name>/), relative path to value, for example
        C(napi_defer_hard_irqs) or C(gro_flush_timeout) or C(queues/rx-0/rps_cpus).
    type: dict
    default: {}
  irq_cpus:
    description:
      - CPUs for the interface's queue interrupts, a kernel CPU list (C(2-3,6)) or a list of
        integers. Verified through C(/proc/irq/N/effective_affinity_list); IRQs that refuse
        the change are reported in RV(irq_refused), not fatal.
    type: raw
  irq_mode:
    description:
      - V(spread) gives queue N's vectors CPU number N modulo the list; V(all) lets every
        queue vector run on all listed CPUs.
    type: str
    choices: [spread, all]
    default: spread
  strict:
    description: Fail (before changing anything) instead of skipping unsupported knobs.
    type: bool
    default: false
  state_dir:
    description: Directory holding the saved originals (an absolute path, not under
      C(/proc), C(/sys) or C(/dev)); removed when a restore leaves it empty.
    type: path
    default: /run/kbypass/tuning
attributes:
  check_mode:
    support: full
    description: Reports what would change without touching the device or the state file.
  diff_mode:
    support: full
    description: Returns the values before and after for every knob that changes.
notes:
  - On veth there are no rings, coalesce settings, ntuple filters or interrupts; those
    requests are skipped with a warning unless O(strict=true).
seealso:
  - module: kbypass.xdp.nic_facts
  - module: kbypass.xdp.host_tune
'''

EXAMPLES = r'''
- name: GRO off, UDP GRO forwarding off, 2 combined channels, UDP/4242 to queue 1
  kbypass.xdp.nic_tune:
    name: ens1f0
    features:
      gro: false
      rx-udp-gro-forwarding: false
    channels:
      combined: 2
    ntuple_rules:
      - flow_type: udp4
        dst_port: 4242
        queue: 1
    sysfs:
      napi_defer_hard_irqs: 2
      gro_flush_timeout: 200000
    irq_cpus: "2-3"

- name: Tune the test bed veth inside its namespace
  kbypass.xdp.nic_tune:
    name: veth0
    netns: ns1
    features:
      gro: true

- name: Put everything back exactly
  kbypass.xdp.nic_tune:
    name: veth0
    netns: ns1
    state: restored
'''

RETURN = r'''
changes:
  description: What was (or in check mode would be) changed, per section.
  returned: always
  type: dict
  sample: {"features": {"generic-receive-offload": true}, "channels": {"rx": 2}}
unsupported:
  description: Requested knobs that the device does not support, with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"key": "rings.rx", "reason": "ethtool -g: Operation not supported"}]
irqs:
  description: Queue interrupts found for the interface (empty on virtual devices).
  returned: always
  type: list
  elements: dict
  sample: [{"irq": 38, "name": "virtio2-input.0", "kind": "rx", "queue": 0}]
irq_refused:
  description: Interrupts whose effective affinity did not follow the request.
  returned: always
  type: list
  elements: dict
  sample: [{"irq": 40, "requested": "2", "effective": "0", "error": null}]
saved:
  description: The originals saved for this interface after the run (empty when none).
  returned: always
  type: dict
  sample: {"features": {"generic-receive-offload": false}}
state_file:
  description: Path of the saved-originals file.
  returned: always
  type: str
  sample: /run/kbypass/tuning/nic:ns1:veth0.json
key:
  description: Name of what was tuned, C(<name>) or C(<netns>:<name>); the tuning role's
    summary is keyed by it.
  returned: always
  type: str
  sample: ns1:veth0
applied:
  description: On a failure part-way, the changes that were applied before it.
  returned: on failure after a partial change
  type: dict
diff:
  description: Before and after values of the changed knobs (diff mode).
  returned: when diff mode is on
  type: dict
'''

import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.kbypass.xdp.plugins.module_utils._common import (
    ifname_error,
    netns_error,
    state_dir_error,
)
from ansible_collections.kbypass.xdp.plugins.module_utils._netns import HelperError, fs_op, netns_exists
from ansible_collections.kbypass.xdp.plugins.module_utils._ethtool import (
    CHANNEL_KEYS,
    Ethtool,
    EthtoolError,
    canonical_feature,
    parse_added_rule_id,
    rule_add_args,
    rule_key,
)
from ansible_collections.kbypass.xdp.plugins.module_utils import _irq
from ansible_collections.kbypass.xdp.plugins.module_utils._supervise import online_cpus
from ansible_collections.kbypass.xdp.plugins.module_utils._tuning_state import (
    TUNING_STATE_DIR,
    load_state,
    remember,
    remove_state,
    save_state,
    state_file,
    target_key,
)

_SYSFS_REL_RE = r'^[A-Za-z0-9_][A-Za-z0-9_./-]*$'
# attributes whose value is a plain non-negative integer, checked before anything is written
_SYSFS_INTEGERS = ('napi_defer_hard_irqs', 'gro_flush_timeout', 'tx_queue_len', 'mtu',
                   'threaded', 'rps_flow_cnt')


class ApplyError(Exception):
    """A change the device refused, part-way through a plan."""


# --------------------------------------------------------------------------- pure logic

def normalize_request(params, online=None):
    """Module params -> request dict with canonical names. Raises ValueError on bad input.

    ``online``: the host's online CPUs (irq_cpus must name only those)."""
    req = {'features': {}, 'channels': {}, 'rings': {}, 'rules': [], 'sysfs': {},
           'irq_cpus': None, 'irq_mode': params.get('irq_mode') or 'spread'}
    for name, val in (params.get('features') or {}).items():
        try:
            req['features'][canonical_feature(str(name))] = boolean(val, strict=True)
        except TypeError:
            raise ValueError('feature %s: value %r is not a boolean' % (name, val))
    for key, val in (params.get('channels') or {}).items():
        if val is not None:
            if val < 0:
                raise ValueError('channels.%s must be >= 0, got %d' % (key, val))
            req['channels'][key] = val
    for key, val in (params.get('rings') or {}).items():
        if val is not None:
            if val <= 0:
                raise ValueError('rings.%s must be > 0, got %d' % (key, val))
            req['rings'][key.replace('_', '-')] = val
    for i, rule in enumerate(params.get('ntuple_rules') or []):
        r = dict((k, rule.get(k)) for k in ('flow_type', 'src_ip', 'dst_ip', 'src_port',
                                            'dst_port', 'queue', 'loc'))
        if r['queue'] is None or r['queue'] < 0:
            raise ValueError('ntuple_rules[%d]: queue must be >= 0' % i)
        for p in ('src_port', 'dst_port'):
            if r[p] is not None and not 0 <= r[p] <= 65535:
                raise ValueError('ntuple_rules[%d]: %s %d is not a port' % (i, p, r[p]))
        req['rules'].append(r)
    for rel, val in (params.get('sysfs') or {}).items():
        rel = str(rel)
        if not re.match(_SYSFS_REL_RE, rel) or '..' in rel.split('/'):
            raise ValueError('sysfs key %r must be a relative path under /sys/class/net/<name>/ '
                             'without ".."' % rel)
        if isinstance(val, bool):
            val = int(val)
        if not isinstance(val, (int, str)) or '\n' in str(val) or str(val) == '':
            raise ValueError('sysfs.%s: %r is not a value for a sysfs attribute' % (rel, val))
        if rel.rsplit('/', maxsplit=1)[-1] in _SYSFS_INTEGERS and not re.match(r'^\d+$', str(val)):
            raise ValueError('sysfs.%s: %r is not a non-negative integer' % (rel, val))
        req['sysfs'][rel] = str(val)
    req['irq_cpus'] = _irq.cpus_option(params.get('irq_cpus'), 'irq_cpus',
                                       online if online is not None else online_cpus())
    req['auto_ntuple'] = bool(req['rules']) and 'ntuple-filters' not in req['features']
    if req['auto_ntuple']:
        req['features']['ntuple-filters'] = True
    if req['rules'] and req['features'].get('ntuple-filters') is False:
        raise ValueError('ntuple_rules need the ntuple feature; do not switch it off')
    return req


def compute_plan(current, req):
    """What to change, from the device's ``current`` state and the normalized request.

    ``current`` keys: features {name: {active, fixed}}; channels {'max','current'} or None;
    channels_error; rings likewise; rules [parsed rules] or None; rules_error;
    sysfs {rel: value or None}; irqs [discover_irqs items]; irq_affinity {irq: [cpus]};
    irq_refused {irq (str): cpulist the kernel refused before} (from the state file).
    Returns {'changes': {section: ...}, 'skipped': [{key, reason}], 'before': {...}}.
    A refused IRQ affinity is not planned again for the same CPUs (it would be a change
    on every run); it is reported under ``skipped``.
    Pure: no I/O, so unit tests can drive it with recorded device states.
    """
    changes = {}
    before = {}
    skipped = []

    def skip(key, reason):
        skipped.append({'key': key, 'reason': reason})

    feats = current.get('features') or {}
    for name, want in sorted(req['features'].items()):
        have = feats.get(name)
        if name == 'ntuple-filters' and req.get('auto_ntuple') and (
                have is None or (have.get('fixed') and have['active'] != want)):
            continue  # reported once, per rule, below
        if have is None:
            skip('features.%s' % name, 'the device has no feature named %s' % name)
        elif have['active'] == want:
            continue
        elif have.get('fixed'):
            skip('features.%s' % name, 'feature is fixed %s on this device'
                 % ('on' if have['active'] else 'off'))
        else:
            changes.setdefault('features', {})[name] = want
            before.setdefault('features', {})[name] = have['active']

    for section, label in (('channels', 'ethtool -l'), ('rings', 'ethtool -g')):
        if not req[section]:
            continue
        info = current.get(section)
        if info is None:
            for key in sorted(req[section]):
                skip('%s.%s' % (section, key), '%s: %s' % (
                    label, current.get(section + '_error') or 'not supported'))
            continue
        for key, want in sorted(req[section].items()):
            mx = info['max'].get(key)
            have = info['current'].get(key)
            if mx is None:
                skip('%s.%s' % (section, key), '%s reports n/a for %s on this device'
                     % (label, key))
            elif want > mx:
                skip('%s.%s' % (section, key), 'requested %d exceeds the maximum %d'
                     % (want, mx))
            elif have != want:
                changes.setdefault(section, {})[key] = want
                before.setdefault(section, {})[key] = have

    if req['rules']:
        existing = current.get('rules')
        feature_ok = ('ntuple-filters' in feats
                      and (feats['ntuple-filters']['active'] or not feats['ntuple-filters']['fixed']))
        if existing is None or not feature_ok:
            reason = current.get('rules_error') or 'the device has no ntuple filters'
            for i, _rule in enumerate(req['rules']):
                skip('ntuple_rules[%d]' % i, reason)
            changes.get('features', {}).pop('ntuple-filters', None)
            before.get('features', {}).pop('ntuple-filters', None)
        else:
            ch = dict((current.get('channels') or {}).get('current') or {})
            ch.update(changes.get('channels', {}))
            nq = max(ch.get('combined') or 0, ch.get('rx') or 0) or None
            have_keys = set(rule_key(r) for r in existing)
            by_loc = dict((r['loc'], r) for r in existing)
            for i, rule in enumerate(req['rules']):
                if nq is not None and rule['queue'] >= nq:
                    skip('ntuple_rules[%d]' % i, 'queue %d does not exist (%d RX queues)'
                         % (rule['queue'], nq))
                    continue
                if rule['loc'] is not None and rule['loc'] in by_loc:
                    if rule_key(by_loc[rule['loc']]) == rule_key(rule):
                        continue
                    skip('ntuple_rules[%d]' % i, 'location %d holds another rule; delete it or '
                         'choose another loc' % rule['loc'])
                    continue
                if rule['loc'] is None and rule_key(rule) in have_keys:
                    continue
                changes.setdefault('rules', []).append(rule)
    for rel, want in sorted(req['sysfs'].items()):
        have = (current.get('sysfs') or {}).get(rel)
        if have is None:
            skip('sysfs.%s' % rel, 'no such attribute /sys/class/net/<name>/%s' % rel)
        elif have != want:
            changes.setdefault('sysfs', {})[rel] = want
            before.setdefault('sysfs', {})[rel] = have

    if req['irq_cpus']:
        queue_irqs = [i for i in current.get('irqs') or [] if i['queue'] is not None]
        if not queue_irqs:
            skip('irq_cpus', 'no queue interrupts found for this interface (virtual device?)')
        else:
            desired, change = _irq.plan_affinity(queue_irqs, req['irq_cpus'], req['irq_mode'],
                                                 current.get('irq_affinity'))
            refused = current.get('irq_refused') or {}
            for irq in change:
                want = _irq.format_cpulist(desired[irq])
                if refused.get(str(irq)) == want:
                    skip('irq_cpus', 'IRQ %s refused CPUs %s before; kept %s' % (
                        irq, want, _irq.format_cpulist(
                            (current.get('irq_affinity') or {}).get(irq) or [])))
                    continue
                changes.setdefault('irq_affinity', {})[str(irq)] = want
                before.setdefault('irq_affinity', {})[str(irq)] = _irq.format_cpulist(
                    (current.get('irq_affinity') or {}).get(irq) or [])
    return {'changes': changes, 'skipped': skipped, 'before': before}


def compute_restore(current, saved):
    """Plan that returns every saved original (only where the device differs now).

    ``saved``: the state file dict. Returns {'changes': ..., 'before': ..., 'skipped': ...}
    where changes['rules_delete'] lists locations of rules this module added.
    """
    orig = saved.get('original') or {}
    changes, before, skipped = {}, {}, []
    feats = current.get('features') or {}
    for name, want in sorted((orig.get('features') or {}).items()):
        have = feats.get(name)
        if have is None:
            skipped.append({'key': 'features.%s' % name, 'reason': 'feature vanished'})
        elif have['active'] != want:
            changes.setdefault('features', {})[name] = want
            before.setdefault('features', {})[name] = have['active']
    for section in ('channels', 'rings'):
        info = current.get(section)
        for key, want in sorted((orig.get(section) or {}).items()):
            have = info['current'].get(key) if info else None
            if have != want:
                changes.setdefault(section, {})[key] = want
                before.setdefault(section, {})[key] = have
    existing = set(r['loc'] for r in current.get('rules') or [])
    dels = [loc for loc in saved.get('rules_added') or [] if loc in existing]
    if dels:
        changes['rules_delete'] = dels
    for rel, want in sorted((orig.get('sysfs') or {}).items()):
        have = (current.get('sysfs') or {}).get(rel)
        if have != want:
            changes.setdefault('sysfs', {})[rel] = want
            before.setdefault('sysfs', {})[rel] = have
    for irq, want in sorted((orig.get('irq_affinity') or {}).items()):
        have = _irq.format_cpulist((current.get('irq_affinity') or {}).get(int(irq)) or [])
        if have != want:
            changes.setdefault('irq_affinity', {})[irq] = want
            before.setdefault('irq_affinity', {})[irq] = have
    return {'changes': changes, 'before': before, 'skipped': skipped}


# --------------------------------------------------------------------------- device I/O

def read_current(module, eth, ifname, netns, req_sysfs, want_rules, want_irqs, saved=None):
    cur = {'features': eth.features()}
    cur['channels'], cur['channels_error'] = eth.channels()
    cur['rings'], cur['rings_error'] = eth.rings()
    cur['rules'], cur['rules_error'] = (None, None)
    if want_rules or (saved or {}).get('rules_added'):
        cur['rules'], cur['rules_error'] = eth.ntuple_rules()
    rels = set(req_sysfs) | set(((saved or {}).get('original') or {}).get('sysfs', {}))
    base = '/sys/class/net/%s/' % ifname
    res = fs_op(module, netns, read=[base + r for r in sorted(rels)],
                dev=ifname if want_irqs or (saved or {}).get('original', {}).get('irq_affinity')
                else None)
    cur['sysfs'] = dict((r, res['read'].get(base + r)) for r in rels)
    cur['irqs'] = []
    cur['irq_affinity'] = {}
    if res.get('dev'):
        drv, _err = eth.driver_info()
        irqs = _irq.discover_irqs(_irq.read_interrupts(), ifname,
                                  msi_irqs=res['dev'].get('msi_irqs'),
                                  bus_info=(drv or {}).get('bus_info'),
                                  device_name=res['dev'].get('device_name'))
        cur['irqs'] = irqs
        cur['irq_affinity'] = dict((i['irq'], _irq.read_affinity(i['irq'])['smp_affinity_list'])
                                   for i in irqs)
    saved_irqs = ((saved or {}).get('original') or {}).get('irq_affinity') or {}
    for irq in saved_irqs:
        cur['irq_affinity'].setdefault(int(irq), _irq.read_affinity(irq)['smp_affinity_list'])
    return cur


def _ethtool_set(eth, flag, pairs, what):
    args = [flag, eth.ifname]
    for key, val in pairs:
        args += [key, val]
    rc, out, err = eth.run(*args)
    if rc != 0:
        raise ApplyError('ethtool %s %s failed (rc=%s): %s' % (flag, what, rc,
                                                               (err or out).strip()))


def diff_view(plan):
    """Before/after of every changed section. ntuple rules have no "before": added ones
    are new; the ones a restore deletes are gone afterwards."""
    changes = plan['changes']
    before = dict((s, plan['before'].get(s, [] if s == 'rules' else {})) for s in changes)
    after = dict((s, v) for s, v in changes.items() if s != 'rules_delete')
    if 'rules_delete' in changes:
        before['rules_delete'] = list(changes['rules_delete'])
        after['rules_delete'] = []
    return {'before': before, 'after': after}


def apply_changes(module, eth, ifname, netns, changes, state, path, restoring=False,
                  current=None, applied=None):
    """Apply in hardware order, saving each original before touching it.

    ``applied`` (a dict) collects each change once it took, so a failure part-way
    (ApplyError) can say what was applied before it."""
    result = {'irq_refused': []}
    base = '/sys/class/net/%s/' % ifname
    current = current or {}
    applied = {} if applied is None else applied

    def record(section, key, value):
        if not restoring and remember(state, section, key, value):
            save_state(path, state)

    def done(section, key, value):
        applied.setdefault(section, {})[key] = value

    if restoring and changes.get('rules_delete'):
        for loc in changes['rules_delete']:
            rc, out, err = eth.run('-N', ifname, 'delete', str(loc))
            if rc != 0:
                module.warn('could not delete ntuple rule %s: %s' % (loc, (err or out).strip()))
    feats = changes.get('features') or {}
    # ntuple-filters on first (rules need it), off last when restoring
    order = sorted(feats, key=lambda n: (n != 'ntuple-filters') if not restoring
                   else (n == 'ntuple-filters'))
    for name in order:
        record('features', name, current['features'][name]['active'])
        _ethtool_set(eth, '-K', [(name, 'on' if feats[name] else 'off')], name)
        done('features', name, feats[name])
    if feats:
        after = eth.features()
        bad = [n for n in feats if after.get(n, {}).get('active') != feats[n]]
        if bad:
            raise ApplyError('ethtool accepted but did not apply features %s on %s; the driver '
                             'may tie them to other features' % (', '.join(bad), ifname))
    for section, flag in (('channels', '-L'), ('rings', '-G')):
        vals = changes.get(section) or {}
        if not vals:
            continue
        for key in vals:
            record(section, key, current[section]['current'].get(key))
        _ethtool_set(eth, flag, [(k, str(v)) for k, v in sorted(vals.items())], section)
        applied[section] = dict(vals)
    for rule in changes.get('rules') or []:
        rc, out, err = eth.run('-N', ifname, *rule_add_args(rule))
        if rc != 0:
            raise ApplyError('ethtool -N %s %s failed: %s'
                             % (ifname, ' '.join(rule_add_args(rule)), (err or out).strip()))
        applied.setdefault('rules', []).append(rule)
        loc = parse_added_rule_id(out) if rule.get('loc') is None else rule['loc']
        if loc is not None and not restoring:
            state.setdefault('rules_added', [])
            if loc not in state['rules_added']:
                state['rules_added'].append(loc)
                save_state(path, state)
    sysfs = changes.get('sysfs') or {}
    if sysfs:
        for rel in sysfs:
            record('sysfs', rel, current['sysfs'][rel])
        res = fs_op(module, netns, write=[(base + r, v) for r, v in sorted(sysfs.items())])
        for path_, err in res['write']:
            if not err:
                done('sysfs', path_[len(base):], sysfs[path_[len(base):]])
        errs = [(p, e) for p, e in res['write'] if e]
        if errs:
            raise ApplyError('writing sysfs failed: %s' % '; '.join('%s: %s' % x for x in errs))
    for irq, cpus in sorted((changes.get('irq_affinity') or {}).items()):
        record('irq_affinity', irq, _irq.format_cpulist(
            current['irq_affinity'].get(int(irq)) or []))
        want = _irq.parse_cpulist(cpus)
        err = _irq.write_affinity(irq, want)
        eff = _irq.read_affinity(irq)
        effective = eff['effective_affinity_list']
        if effective is None:
            effective = eff['smp_affinity_list']
        if err or not _irq.affinity_applied(want, effective):
            result['irq_refused'].append({'irq': int(irq), 'requested': cpus, 'error': err,
                                          'effective': _irq.format_cpulist(effective or [])})
            if not restoring:  # the next run must not plan it again: it is no change
                state.setdefault('irq_refused', {})[str(irq)] = cpus
                save_state(path, state)
        else:
            done('irq_affinity', irq, cpus)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True, aliases=['interface']),
            netns=dict(type='str'),
            state=dict(type='str', choices=['present', 'restored'], default='present'),
            features=dict(type='dict', default={}),
            channels=dict(type='dict', options=dict(
                (k, dict(type='int')) for k in CHANNEL_KEYS)),
            rings=dict(type='dict', options=dict(
                (k, dict(type='int')) for k in ('rx', 'tx', 'rx_mini', 'rx_jumbo'))),
            ntuple_rules=dict(type='list', elements='dict', default=[], options=dict(
                flow_type=dict(type='str', required=True, choices=['tcp4', 'udp4', 'tcp6', 'udp6']),
                src_ip=dict(type='str'), dst_ip=dict(type='str'),
                src_port=dict(type='int'), dst_port=dict(type='int'),
                queue=dict(type='int', required=True), loc=dict(type='int'))),
            sysfs=dict(type='dict', default={}),
            irq_cpus=dict(type='raw'),
            irq_mode=dict(type='str', choices=['spread', 'all'], default='spread'),
            strict=dict(type='bool', default=False),
            state_dir=dict(type='path', default=TUNING_STATE_DIR),
        ),
        supports_check_mode=True,
    )
    p = module.params
    ifname, netns = p['name'], p['netns']
    err = ifname_error(ifname) or netns_error(netns) or state_dir_error(p['state_dir'])
    if err:
        module.fail_json(msg=err)
    if not netns_exists(netns):
        module.fail_json(msg='network namespace %s does not exist (ip netns list)' % netns)
    try:
        req = normalize_request(p)
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    eth = Ethtool(module, ifname, netns)
    path = state_file(p['state_dir'], netns, ifname)
    try:
        state = load_state(path)
        state.update({'ifname': ifname, 'netns': netns})
        rc, out, errtxt = eth.run('-i', ifname)
        if rc != 0 and 'No such device' in (errtxt or out):
            module.fail_json(msg='interface %s does not exist%s' % (
                ifname, ' in netns %s' % netns if netns else ''))
        if p['state'] == 'restored':
            current = read_current(module, eth, ifname, netns, [], False, False, saved=state)
            plan = compute_restore(current, state)
        else:
            current = read_current(module, eth, ifname, netns, req['sysfs'], bool(req['rules']),
                                   bool(req['irq_cpus']))
            current['irq_refused'] = state.get('irq_refused') or {}
            plan = compute_plan(current, req)
    except (EthtoolError, HelperError, ValueError) as exc:
        module.fail_json(msg=str(exc))

    for item in plan['skipped']:
        if p['strict'] and p['state'] == 'present':
            module.fail_json(msg='%s is not supported on %s: %s (nothing was changed; drop the '
                             'key or set strict: false)' % (item['key'], ifname, item['reason']),
                             unsupported=plan['skipped'])
        module.warn('%s: skipped %s: %s' % (ifname, item['key'], item['reason']))

    changes = plan['changes']
    file_exists = os.path.exists(path)
    changed = bool(changes) or (p['state'] == 'restored' and file_exists)
    result = dict(changed=changed, changes=changes, unsupported=plan['skipped'],
                  irqs=[dict((k, i[k]) for k in ('irq', 'name', 'kind', 'queue'))
                        for i in current['irqs']],
                  irq_refused=[], state_file=path, key=target_key(netns, ifname))
    if module._diff:
        result['diff'] = diff_view(plan)

    if not module.check_mode and changes:
        applied = {}
        try:
            done = apply_changes(module, eth, ifname, netns, changes, state, path,
                                 restoring=p['state'] == 'restored', current=current,
                                 applied=applied)
        except (ApplyError, EthtoolError, HelperError, ValueError) as exc:
            result.update(changed=bool(applied), applied=applied)
            module.fail_json(msg='%s (%s)' % (exc, 'nothing was changed' if not applied else
                                              'applied before the failure: %s; state=restored '
                                              'puts it back' % sorted(applied)), **result)
        result['irq_refused'] = done['irq_refused']
        for item in done['irq_refused']:
            module.warn('IRQ %(irq)s kept effective CPUs %(effective)s instead of %(requested)s'
                        % item)
    if p['state'] == 'restored':
        if not module.check_mode and file_exists:
            remove_state(path)
        result['saved'] = {} if not module.check_mode else state.get('original', {})
    else:
        result['saved'] = state.get('original', {}) if (file_exists or changes) else {}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
