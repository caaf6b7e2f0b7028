# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attaching the steering program: the work behind kbypass.xdp.xdp_attach.

Pure plans (``plan_present``, ``plan_absent``) decide from snapshots; ``Attachment``
reads the kernel, stages a load with bpftool on bpffs, attaches over rtnetlink, moves
the pins into place and fills the module's result. Pins carry marks: the object's
content hash and the attachment (netns, interface) they belong to (see ``_bpf``).
"""

from __future__ import annotations

import os
import uuid

from ansible_collections.kbypass.xdp.plugins.module_utils import _bpf, _netns, _xdp
from ansible_collections.kbypass.xdp.plugins.module_utils._common import (
    BPFFS_ROOT,
    PIN_ROOT,
    default_pin_dir,
)
from ansible_collections.kbypass.xdp.plugins.module_utils._lock import LockTimeout, module_lock

_MAP_KEYS = ('type', 'key_size', 'value_size', 'max_entries', 'flags')


# --- pure logic ----------------------------------------------------------------------
def maps_compatible(pinned, fresh):
    """True when every pinned map exists and has the layout the new object expects."""
    for name, want in fresh.items():
        have = pinned.get(name)
        if not have or any(have.get(k) != want.get(k) for k in _MAP_KEYS):
            return False
    return bool(fresh)


def is_ours(attached, pinned_prog, name):
    """An attached program is ours when it is the pinned one or carries our program name."""
    if not attached:
        return False
    if pinned_prog and pinned_prog.get('id') == attached.get('id'):
        return True
    return attached.get('name') == name[:15]


def plan_present(current, desired):
    """What to do to reach ``desired`` from ``current``.

    current: {'attached': {'mode', 'id', 'tag', 'name', 'map_ids'} or None,
              'pinned_prog': info or None, 'pinned_maps': {name: info or None},
              'ports': [..] or None}
    desired: {'tag', 'name', 'mode', 'ports', 'maps': {name: info}, 'force'}
    Returns {'action', 'mode', 'source', 'maps', 'ports', 'refuse', 'reasons', 'changed'}.
    """
    att = current.get('attached')
    pinned_prog = current.get('pinned_prog')
    pinned_maps = current.get('pinned_maps') or {}
    ours = is_ours(att, pinned_prog, desired['name'])
    plan = {'action': 'none', 'mode': desired['mode'], 'source': None, 'maps': 'reuse',
            'ports': False, 'refuse': None, 'reasons': []}

    if att and att.get('mode') == 'multi':
        plan['refuse'] = ('more than one XDP program is attached (modes %s); detach them '
                          'first' % sorted(att.get('progs', {})))
        return plan
    if att and not ours and not desired.get('force'):
        plan['refuse'] = ('%s program %r (id %s) is attached and is not ours; refusing to '
                          'replace it. Detach it yourself or set force: true'
                          % (att.get('mode'), att.get('name'), att.get('id')))
        return plan

    want_mode = desired['mode']
    if want_mode == 'auto' and att and ours and att.get('mode') in ('native', 'generic'):
        want_mode = att['mode']
    plan['mode'] = want_mode

    reusable = maps_compatible(pinned_maps, desired.get('maps') or {})
    plan['maps'] = 'reuse' if reusable else 'fresh'
    pinned_map_ids = sorted(m['id'] for m in pinned_maps.values() if m)
    same_prog = bool(ours and reusable and pinned_prog
                     and pinned_prog.get('id') == att.get('id')
                     and att.get('tag') == desired['tag']
                     and sorted(att.get('map_ids') or []) == pinned_map_ids)

    if not att:
        plan['action'] = 'attach'
        plan['reasons'].append('no XDP program attached')
    elif att.get('mode') != want_mode and want_mode != 'auto':
        plan['action'] = 'switch_mode'
        plan['reasons'].append('attached in %s mode, %s wanted' % (att.get('mode'), want_mode))
    elif want_mode == 'auto' and not same_prog:
        # ours-attached cases resolved want_mode above; a foreign one (forced) is replaced
        plan['action'] = 'replace'
        plan['mode'] = att.get('mode')
        plan['reasons'].append('replacing the attached program')
    elif not same_prog:
        plan['action'] = 'replace'
        if not ours:
            plan['reasons'].append('forced: replacing program %r (id %s)'
                                   % (att.get('name'), att.get('id')))
        elif desired['tag'] is None:
            plan['reasons'].append('the object differs from the one pinned (content hash)')
        elif att.get('tag') != desired['tag']:
            plan['reasons'].append('program tag differs (%s attached, %s in the object)'
                                   % (att.get('tag'), desired['tag']))
        else:
            plan['reasons'].append('pins do not match the attached program')

    if plan['action'] != 'none':
        if same_prog:
            plan['source'] = 'pinned'       # mode switch of the very same program
        elif reusable:
            plan['source'] = 'reload'       # new program against the pinned maps
        else:
            plan['source'] = 'fresh'        # new program with new maps
            plan['reasons'].append('pinned maps missing or incompatible: new maps')

    if plan['maps'] == 'fresh' and plan['action'] != 'none':
        plan['ports'] = True
    elif sorted(set(current.get('ports') or [])) != sorted(set(desired['ports'])):
        plan['ports'] = True
        plan['reasons'].append('ports %s -> %s'
                               % (sorted(set(current.get('ports') or [])),
                                  sorted(set(desired['ports']))))
    plan['changed'] = plan['action'] != 'none' or plan['ports']
    return plan


def plan_absent(current, name, force):
    """{'detach': bool, 'remove_pins': bool, 'refuse': msg or None, 'changed': bool}."""
    att = current.get('attached')
    pinned_any = bool(current.get('pinned_prog')) or any(current.get('pinned_maps', {}).values())
    plan = {'detach': False, 'remove_pins': pinned_any, 'refuse': None, 'reasons': []}
    if att:
        if is_ours(att, current.get('pinned_prog'), name) or force:
            if att.get('mode') == 'multi':
                plan['refuse'] = 'more than one XDP program is attached; detach them by hand'
            else:
                plan['detach'] = True
                plan['reasons'].append('detaching %r (id %s)' % (att.get('name'), att.get('id')))
        else:
            plan['refuse'] = ('%s program %r (id %s) is attached and is not ours; not detaching '
                              'it. Set force: true to remove it anyway'
                              % (att.get('mode'), att.get('name'), att.get('id')))
    if pinned_any:
        plan['reasons'].append('removing pins')
    plan['changed'] = plan['detach'] or plan['remove_pins']
    return plan


def _view(attached, ports=None):
    out = {'program': None, 'mode': None}
    if attached:
        out = {'program': '%s (id %s, tag %s)'
                          % (attached.get('name'), attached.get('id'), attached.get('tag')),
               'mode': attached.get('mode')}
    if ports is not None:
        out['ports'] = ports
    return out


# --- kernel access -------------------------------------------------------------------
class Attachment(object):
    """One interface's attachment, driven by the xdp_attach module's params."""

    def __init__(self, module):
        self.m = module
        p = module.params
        self.ifname = p['interface']
        self.netns = p['netns']
        self.pin_dir = p['pin_dir'] or default_pin_dir(self.ifname, self.netns)
        self.staging = None
        self.created = []  # directories this run made on bpffs, outermost first
        self.result = {'changed': False, 'interface': self.ifname, 'netns': self.netns,
                       'pin_dir': self.pin_dir, 'mode': None, 'prog': None}

    def fail(self, msg, **kw):
        """Fail the task, leaving nothing of this run on bpffs (no staging, no empty
        directories it made)."""
        self.cleanup()
        for path in reversed(self.created):
            try:
                os.rmdir(path)
            except OSError:
                pass  # holds pins (ours or another run's): not empty, keep it
        self.result.update(kw)
        self.m.fail_json(msg=msg, **self.result)

    def makedirs(self, path):
        """os.makedirs that remembers what it created (for fail())."""
        missing = []
        probe = os.path.abspath(path)
        while not os.path.exists(probe):
            missing.insert(0, probe)
            probe = os.path.dirname(probe)
        os.makedirs(path, exist_ok=True)
        self.created.extend(missing)

    def run(self):
        """The whole task: checks that need the machine, then present or absent; exits."""
        m, netns, present = self.m, self.netns, self.m.params['state'] == 'present'
        if present:
            err = object_error(m.params['object'])
            if err:
                m.fail_json(msg=err)
            if not m.check_mode:
                self.bpftool()  # fails with a hint when there is none
        try:
            if present and m.check_mode:
                missing = missing_in_check_mode(m.params, self.ifname)
                if missing:
                    # an earlier task of the same check-mode run would have created it
                    m.warn('check mode: %s; assuming an earlier task creates it, the '
                           'program would be attached' % missing)
                    self.result['changed'] = True
                    m.exit_json(**self.result)
            ns_exists = _netns.netns_exists(netns)
            if not ns_exists and present:
                m.fail_json(msg='network namespace %r does not exist; create it first '
                                '(kbypass.xdp.netns_veth or "ip netns add")' % netns)
            # one task at a time per interface (see _lock)
            with module_lock(m.check_mode, self.ifname, netns):
                link = _xdp.query(self.ifname, netns) if ns_exists else None
                if link is None and present:
                    m.fail_json(msg='interface %r not found in %s' % (
                        self.ifname, 'network namespace %r' % netns if netns else 'the root namespace'))
                if present:
                    if _bpf.bpffs_error(self.pin_dir):
                        m.fail_json(msg=_bpf.bpffs_error(self.pin_dir))
                    self.present(link)
                else:
                    self.absent(link)
        except _xdp.XdpError as e:
            self.fail(str(e), errno=e.errno)
        except LockTimeout as e:
            m.fail_json(msg=str(e), **self.result)
        finally:
            self.cleanup()
        m.exit_json(**self.result)

    # current state
    def read_attached(self, link):
        xdp = link['xdp']
        if not xdp['prog_id']:
            return None
        try:
            info = _bpf.prog_info_by_id(xdp['prog_id'])
        except _bpf.BpfError:
            info = {'id': xdp['prog_id'], 'tag': None, 'name': None, 'map_ids': []}
        info.update({'mode': xdp['mode'], 'progs': xdp['progs']})
        return info

    def read_pins(self):
        """(pinned prog, {map: info}, ports) of pin_dir; fails when the pins belong to
        another attachment, before anything is changed."""
        err = _bpf.owner_error(self.pin_dir, self.netns, self.ifname)
        if err:
            self.fail(err)
        if not os.path.isdir(self.pin_dir):
            return None, dict((m, None) for m in _bpf.STEER_MAPS), None
        try:
            pins = _bpf.read_pins(self.pin_dir)
        except _bpf.BpfError as e:
            self.fail('cannot read pins in %s: %s' % (self.pin_dir, e))
        ports = None
        if pins['maps'].get('steer_ports'):
            ports = _bpf.read_steer_ports(self.pin_dir)
        return pins['prog'], pins['maps'], ports

    def cleanup(self):
        if self.staging and os.path.isdir(self.staging):
            _bpf.remove_tree(self.staging)
        self.staging = None

    # loading
    def bpftool(self):
        """Path of a runnable bpftool; fails the task with a hint when there is none."""
        tool = self.m.params['bpftool']
        path = tool if os.path.isabs(tool) else self.m.get_bin_path(
            tool, opt_dirs=['/usr/sbin', '/usr/local/sbin', '/sbin'])
        if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
            self.fail('bpftool %s was not found or is not executable; install bpftool (the '
                      'kbypass.xdp.toolchain role does) or set the bpftool option to its path'
                      % tool)
        return path

    def load(self, subdir, reuse=None, pinmaps=False):
        """bpftool prog loadall into the staging dir; returns info of our program there."""
        progs_dir = os.path.join(self.staging, subdir)
        offload_dev = self.ifname if self.m.params['mode'] == 'offload' else None
        cmd = _bpf.bpftool_loadall_cmd(self.bpftool(), self.m.params['object'], progs_dir,
                                       pinmaps_dir=self.staging if pinmaps else None,
                                       reuse_maps=reuse, offload_dev=offload_dev)
        # the offload device is looked up in bpftool's network namespace; keep our mount
        # namespace (bpffs)
        rc, out, err = _netns.run(self.m, cmd, self.netns if offload_dev else None,
                                  keep_mounts=True, environ_update={'LC_ALL': 'C'})
        if rc != 0:
            log = _bpf.verifier_log(err)
            if not log:
                tool = cmd[0]
                self.fail('%s failed (rc=%s) without saying why while loading %s; check that it '
                          'is a working bpftool (%s -V)' % (tool, rc, self.m.params['object'], tool),
                          stderr=err, rc=rc)
            if offload_dev:
                self.fail('cannot load %s for offload to %s: the device cannot offload XDP '
                          'programs (or bpftool failed); use mode native, generic or auto. %s'
                          % (self.m.params['object'], self.ifname, log.splitlines()[-1:] or ''),
                          verifier_log=log, stderr=err)
            self.fail('the kernel (or libbpf) rejected %s; the attached program, if any, was '
                      'left in place. Verifier log:\n%s' % (self.m.params['object'], log),
                      verifier_log=log, stderr=err, rc=rc)
        path = os.path.join(progs_dir, self.m.params['program'])
        if not os.path.exists(path):
            names = sorted(os.listdir(progs_dir)) if os.path.isdir(progs_dir) else []
            self.fail('program %r not found in %s; it has: %s'
                      % (self.m.params['program'], self.m.params['object'], ', '.join(names)))
        info = _bpf.pinned_prog_info(path)
        if info['type'] != 'xdp':
            self.fail('program %r is of type %s, not xdp' % (self.m.params['program'], info['type']))
        info['pin'] = path
        return info

    def stage(self):
        parent = os.path.dirname(self.pin_dir.rstrip('/'))
        err = _bpf.bpffs_error(parent)
        if err:
            self.fail(err)
        try:
            self.makedirs(parent)
            swept = _bpf.sweep_staging(parent)
            if swept:
                self.result['swept'] = swept
            # bpffs refuses names with a dot: no hidden names, no interface names here
            self.staging = os.path.join(parent, _bpf.STAGING_PREFIX + uuid.uuid4().hex[:12])
            os.mkdir(self.staging)
        except OSError as e:
            self.fail('cannot create a staging directory on bpffs next to %s: %s'
                      % (self.pin_dir, e))

    # the two states
    def present(self, link):
        p = self.m.params
        if not os.path.isfile(p['object']):
            self.fail('BPF object %s does not exist; build it first (the kbypass.xdp.bpf_programs '
                      'role installs it there)' % p['object'])
        attached = self.read_attached(link)
        pinned_prog, pinned_maps, ports = self.read_pins()
        digest = _bpf.object_digest(p['object'])
        pins_complete = bool(pinned_prog) and all(pinned_maps.values())
        if pins_complete and _bpf.pinned_digest(self.pin_dir) == digest:
            # the pins came from this very object: its tag and map layout are the pinned ones
            new = {'name': p['program'], 'tag': pinned_prog['tag']}
            fresh_maps = pinned_maps
        elif self.m.check_mode:
            # learning the tag means loading into the kernel: assume the program changes
            new = {'name': p['program'], 'tag': None}
            fresh_maps = pinned_maps if pins_complete else {}
        else:
            self.stage()
            new = self.load('progs', pinmaps=True)
            fresh_maps = dict((m, _bpf.pinned_map_info(os.path.join(self.staging, m)))
                              for m in _bpf.STEER_MAPS)
            missing = [m for m, v in fresh_maps.items() if v is None]
            if missing:
                self.fail('%s does not define the map(s) %s that the steering contract needs '
                          '(docs/contracts.md)' % (p['object'], ', '.join(missing)))
        current = {'attached': attached, 'pinned_prog': pinned_prog,
                   'pinned_maps': pinned_maps, 'ports': ports}
        desired = {'tag': new['tag'], 'name': p['program'], 'mode': p['mode'],
                   'ports': p['ports'], 'maps': fresh_maps, 'force': p['force']}
        plan = plan_present(current, desired)
        self.result['plan'] = plan
        if plan['refuse']:
            self.fail(plan['refuse'])
        want_ports = sorted(set(p['ports']))
        before = _view(attached, ports)
        self.result['changed'] = plan['changed']

        if self.m.check_mode or not plan['changed']:
            self.cleanup()
            if self.m._diff:
                after = dict(before)
                if plan['changed']:
                    after = {'program': '%s (tag %s)' % (new['name'], new['tag']),
                             'mode': plan['mode'] if plan['action'] != 'none' else before['mode'],
                             'ports': want_ports}
                self.result['diff'] = {'before': before, 'after': after}
            self.result.update({'mode': attached['mode'] if attached else None,
                                'prog': _bpf.prog_public(attached), 'ports': ports})
            if not self.m.check_mode and attached:
                self.record(digest)
                self.finish_result()
            return

        self.apply(plan, link, attached, want_ports, ports)
        self.cleanup()
        self.record(digest)
        link = _xdp.query(self.ifname, self.netns)
        now = self.read_attached(link)
        self.result.update({'mode': now['mode'] if now else None, 'prog': _bpf.prog_public(now)})
        self.finish_result()
        if self.m._diff:
            self.result['diff'] = {'before': before, 'after': _view(now, self.result['ports'])}

    def record(self, digest):
        # bookkeeping for the next run (not a change of the attachment): which object
        # the pins came from and which attachment they belong to
        if not os.path.isdir(self.pin_dir):
            return
        try:
            _bpf.record_digest(self.pin_dir, digest)
            _bpf.record_owner(self.pin_dir, self.netns, self.ifname)
        except OSError as e:
            self.m.warn('cannot record the object hash and owner in %s: %s' % (self.pin_dir, e))

    def apply(self, plan, link, attached, want_ports, ports):
        fds = []
        if plan['source'] == 'reload' and self.staging is None:
            self.stage()
        try:
            if plan['source'] == 'pinned':
                fds.append(_bpf.obj_get(os.path.join(self.pin_dir, _bpf.PROG_PIN)))
                prog_pin = None
            elif plan['source'] == 'reload':
                reuse = dict((m, os.path.join(self.pin_dir, m)) for m in _bpf.STEER_MAPS)
                info = self.load('reuse', reuse=reuse)
                fds.append(_bpf.obj_get(info['pin']))
                prog_pin = info['pin']
            elif plan['source'] == 'fresh':
                prog_pin = os.path.join(self.staging, 'progs', self.m.params['program'])
                fds.append(_bpf.obj_get(prog_pin))
            else:
                prog_pin = None
            # ports first: the program never runs with a partial match set
            if plan['ports']:
                target = self.staging if plan['source'] == 'fresh' else self.pin_dir
                _bpf.write_steer_ports(target, want_ports,
                                       current=[] if plan['source'] == 'fresh' else ports)

            if plan['action'] != 'none':
                new_fd = fds[0]
                with _xdp.open_netlink(self.netns) as ipr:
                    if plan['action'] == 'attach':
                        plan['mode'] = _xdp.attach(ipr, link['ifindex'], new_fd, plan['mode'])
                    else:
                        old_fd = _bpf.prog_fd_by_id(attached['id'])
                        fds.append(old_fd)
                        if plan['action'] == 'replace':
                            _xdp.replace(ipr, link['ifindex'], new_fd, plan['mode'], old_fd)
                        else:
                            plan['mode'] = _xdp.switch_mode(ipr, link['ifindex'], new_fd,
                                                            plan['mode'], old_fd,
                                                            attached['mode'])
                # the program is live: move its pins into place (rename replaces stale pins)
                self.makedirs(self.pin_dir)
                if plan['source'] == 'fresh':
                    for m in _bpf.STEER_MAPS:
                        os.rename(os.path.join(self.staging, m), os.path.join(self.pin_dir, m))
                if prog_pin:
                    os.rename(prog_pin, os.path.join(self.pin_dir, _bpf.PROG_PIN))
        except _xdp.XdpError as e:
            self.fail('%s on %s%s' % (e, self.ifname, ' in netns %s' % self.netns
                                      if self.netns else ''), errno=e.errno)
        except (_bpf.BpfError, OSError) as e:
            self.fail('bpf operation failed on %s: %s' % (self.ifname, e))
        finally:
            for fd in fds:
                os.close(fd)

    def finish_result(self):
        self.result['pins'] = dict((n, os.path.join(self.pin_dir, n))
                                   for n in (_bpf.PROG_PIN,) + _bpf.STEER_MAPS)
        try:
            self.result['ports'] = _bpf.read_steer_ports(self.pin_dir)
            self.result['counters'] = _bpf.read_steer_stats(self.pin_dir)
        except _bpf.BpfError:
            pass

    def absent(self, link):
        p = self.m.params
        attached = self.read_attached(link) if link else None
        pinned_prog, pinned_maps, ports = self.read_pins()
        current = {'attached': attached, 'pinned_prog': pinned_prog, 'pinned_maps': pinned_maps}
        plan = plan_absent(current, p['program'], p['force'])
        self.result['plan'] = plan
        if plan['refuse']:
            self.fail(plan['refuse'])
        self.result['changed'] = plan['changed']
        if self.m._diff:
            self.result['diff'] = {'before': _view(attached, ports),
                                   'after': _view(None if plan['detach'] else attached)}
        if self.m.check_mode or not plan['changed']:
            self.result.update({'mode': attached['mode'] if attached else None,
                                'prog': _bpf.prog_public(attached)})
            return
        if plan['detach']:
            fd = None
            try:
                fd = _bpf.prog_fd_by_id(attached['id'])
                with _xdp.open_netlink(self.netns) as ipr:
                    _xdp.detach(ipr, link['ifindex'], attached['mode'], expected_fd=fd)
            except _xdp.XdpError as e:
                self.fail('%s on %s' % (e, self.ifname), errno=e.errno)
            except _bpf.BpfError as e:
                self.fail('cannot open the attached program: %s' % e)
            finally:
                if fd is not None:
                    os.close(fd)
        if plan['remove_pins']:
            stop = _common_pin_root(self.pin_dir)
            try:
                self.result['removed'] = _bpf.remove_pins(self.pin_dir, stop_at=stop)
            except OSError as e:
                self.fail('cannot remove pins in %s: %s' % (self.pin_dir, e))


def _common_pin_root(pin_dir):
    # Empty parents of our default pins go too, /sys/fs/bpf/kbypass included: a
    # teardown leaves nothing on bpffs (rmdir stops at any directory still in use).
    if pin_dir.startswith(PIN_ROOT + '/'):
        return BPFFS_ROOT
    return os.path.dirname(pin_dir.rstrip('/'))


def object_error(path):
    """A message when ``path`` exists but cannot be a BPF object (ELF), else None."""
    if os.path.isdir(path):
        return 'object %s is a directory; give the path of the compiled BPF object (.o)' % path
    try:
        with open(path, 'rb') as f:
            magic = f.read(4)
    except FileNotFoundError:
        return None
    except OSError as e:
        return 'cannot read object %s: %s' % (path, e.strerror or e)
    if magic != b'\x7fELF':
        return 'object %s is not an ELF file, so not a compiled BPF object (.o)' % path
    return None


def missing_in_check_mode(params, ifname):
    """What a check-mode run cannot find yet (netns, link, object), or None."""
    netns = params['netns']
    if not _netns.netns_exists(netns):
        return 'network namespace %r does not exist yet' % netns
    if not os.path.isfile(params['object']):
        return 'BPF object %s does not exist yet' % params['object']
    try:
        if _xdp.query(ifname, netns) is None:
            return 'interface %r does not exist yet' % ifname
    except _xdp.XdpError as e:
        return str(e)
    return None
