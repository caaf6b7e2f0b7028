# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure helpers shared by every kbypass.xdp module: name validation and paths."""

from __future__ import annotations

import os
import re
import tempfile

IFNAMSIZ = 16  # including the NUL: at most 15 visible characters
# `ip netns add` accepts anything that is a valid file name; we are stricter so that
# names are safe in paths, pins and unit names.
_NETNS_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$')

BPFFS_ROOT = '/sys/fs/bpf'
PIN_ROOT = BPFFS_ROOT + '/kbypass'
STATE_ROOT = '/run/kbypass'
ROOT_NS_LABEL = 'init_net'  # pin path component for the root network namespace


def prune_dir(path):
    """Remove the directory ``path`` if it is empty: a state directory goes with its last
    file, so that a teardown leaves nothing under /run. One still in use (or gone) stays."""
    try:
        os.rmdir(path)
    except OSError:
        pass


def ifname_error(name):
    """Return a human message when ``name`` cannot be a Linux interface name, else None.

    The kernel's rules (dev_valid_name, __dev_alloc_name): at most 15 *bytes*, no "/",
    ":" or whitespace, and no "%" (a "%d" would make the kernel pick a free number, so
    the link created would not carry the name asked for).
    """
    if not name:
        return 'interface name is empty'
    size = len(name.encode('utf-8'))
    if size > IFNAMSIZ - 1:
        return ('interface name %r is %d bytes long; Linux allows at most %d'
                % (name, size, IFNAMSIZ - 1))
    if (any(c in name for c in '/:%') or any(c.isspace() for c in name)
            or name in ('.', '..') or not name.isprintable()):
        return ('interface name %r may not contain "/", ":", "%%", whitespace or control '
                'characters, nor be "." or ".."' % name)
    return None


# Pseudo file systems: nothing of ours can be written there.
_NO_STATE_UNDER = ('/proc', '/sys', '/dev')


def state_dir_error(path, label='state_dir'):
    """Return a message when ``path`` cannot hold runtime files (relative, or under a
    pseudo file system), else None. A relative path would land in whatever directory
    the module happens to run in."""
    if path is None:
        return None
    if not path.startswith('/'):
        return ('%s %r is relative: give an absolute path (a relative one would be '
                'resolved against the directory the module runs in)' % (label, path))
    norm = '/' + path.strip('/')
    for root in _NO_STATE_UNDER:
        if norm == root or norm.startswith(root + '/'):
            return ('%s %s is under %s, a kernel pseudo file system where no files can '
                    'be created: use a directory such as /run/kbypass' % (label, path, root))
    return None


def netns_error(name):
    """Return a human message when ``name`` is not an acceptable namespace name, else None."""
    if name is None:
        return None
    if not _NETNS_RE.match(name) or name in ('.', '..'):
        return ('network namespace name %r is invalid: use 1-63 characters from '
                'letters, digits, "_", "." and "-", starting with a letter or digit' % name)
    return None


def default_pin_dir(ifname, netns=None):
    """bpffs directory where the steering program's maps for one interface are pinned.

    Modules run in the root mount namespace (pyroute2 switches only the network
    namespace), so these pins are reachable whatever namespace the link lives in.
    """
    return '%s/%s/%s' % (PIN_ROOT, netns or ROOT_NS_LABEL, ifname)


def parse_cpulist(text):
    """'0-3,8,10-11' -> [0, 1, 2, 3, 8, 10, 11]. Accepts ints and lists too.

    Raises ValueError with the offending part on bad input.
    """
    if text is None:
        return []
    if isinstance(text, int):
        return [text]
    if isinstance(text, (list, tuple)):
        out = set()
        for item in text:
            out.update(parse_cpulist(item))
        return sorted(out)
    out = set()
    for part in ''.join(str(text).split()).split(','):
        if not part:
            continue
        m = re.match(r'^(\d+)(?:-(\d+))?$', part)
        if not m:
            raise ValueError('invalid CPU list element %r in %r' % (part, text))
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ValueError('invalid CPU range %r in %r' % (part, text))
        out.update(range(lo, hi + 1))
    return sorted(out)


def format_cpulist(cpus):
    """[0, 1, 2, 5] -> '0-2,5' (the kernel's *_list format)."""
    cpus = sorted(set(cpus))
    parts = []
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        parts.append(str(cpus[i]) if i == j else '%d-%d' % (cpus[i], cpus[j]))
        i = j + 1
    return ','.join(parts)


def name_errors(params, ifname_keys=(), netns_keys=()):
    """``'<key>: <message>'`` for each interface or namespace name in ``params`` that the
    kernel would refuse (pure)."""
    errors = []
    for keys, check in ((ifname_keys, ifname_error), (netns_keys, netns_error)):
        for key in keys:
            msg = check(params.get(key))
            if msg:
                errors.append('%s: %s' % (key, msg))
    return errors


# The facts modules' common options (each module documents them).
FACTS_SPEC = dict(interfaces=dict(type='list', elements='raw', required=True),
                  netns=dict(type='str'), ignore_missing=dict(type='bool', default=False))


def normalize_interfaces(items, default_netns=None, extra=()):
    """A facts module's ``interfaces`` (names or dicts) -> [{'name', 'netns', *extra}],
    ``netns`` defaulting to ``default_netns``. Raises ValueError with an actionable message."""
    allowed = {'name', 'netns'} | set(extra)
    out = []
    for i, item in enumerate(items or []):
        item = {'name': item} if isinstance(item, str) else item
        if not isinstance(item, dict):
            raise ValueError('interfaces[%d] must be a name or a dict, got %r' % (i, item))
        if 'name' not in item or set(item) - allowed:
            raise ValueError('interfaces[%d] must be a name or a dict with name and optional '
                             '%s, got keys %s' % (i, ', '.join(sorted(allowed - {'name'})),
                                                  sorted(item)))
        entry = dict((k, item.get(k)) for k in extra)
        entry.update(name=item['name'], netns=item.get('netns') or default_netns)
        err = ifname_error(entry['name']) or netns_error(entry['netns'])
        if err:
            raise ValueError('interfaces[%d]: %s' % (i, err))
        out.append(entry)
    if not out:
        raise ValueError('interfaces is empty: list the interfaces to inspect')
    return out


def where(netns):
    """``netns <name>`` or ``the root namespace``, for messages."""
    return 'netns %s' % netns if netns else 'the root namespace'


def missing_error(name, netns, netns_found):
    """Why a facts module found no interface ``name`` (pure)."""
    if not netns_found:
        return 'network namespace %s does not exist' % netns
    return 'interface %s does not exist%s' % (name, ' in netns %s' % netns if netns else '')


def exit_interface_facts(module, items, gather, fact, errors=()):
    """The facts modules' main loop: ``gather(item)`` each interface, fail on a missing
    one unless ``ignore_missing``, exit with ``interfaces`` and the ``fact`` keyed by
    ``netns/name`` (or ``name``). Exceptions in ``errors`` fail the module with their text."""
    out = []
    try:
        for item in items:
            entry = gather(item)
            if not entry['exists'] and not module.params['ignore_missing']:
                module.fail_json(msg='%s (set ignore_missing: true to report it instead)'
                                 % entry['error'])
            out.append(entry)
    except errors as exc:
        module.fail_json(msg=str(exc))
    facts = dict(('%s/%s' % (e['netns'], e['name']) if e['netns'] else e['name'], e)
                 for e in out)
    module.exit_json(changed=False, interfaces=out, ansible_facts={fact: facts})


def write_report_files(module, report_dir, files, content):
    """Write each ``content[key]`` (bytes) to ``files[key]`` where the file does not hold
    exactly that already, atomically; return the keys that differ (written unless in
    check mode), so that ``changed`` is true only when a report file changes."""
    stale = [k for k in content if _file_differs(files[k], content[k])]
    if stale and not module.check_mode:
        try:
            os.makedirs(report_dir, exist_ok=True)
            for k in stale:
                fd, tmp = tempfile.mkstemp(dir=os.path.dirname(files[k]), prefix='.tmp-')
                with os.fdopen(fd, 'wb') as fh:
                    fh.write(content[k])
                os.chmod(tmp, 0o644)
                os.rename(tmp, files[k])
        except OSError as exc:
            module.fail_json(msg='cannot write the report under %s: %s'
                             % (report_dir, exc.strerror or exc))
    return stale


def _file_differs(path, content):
    try:
        with open(path, 'rb') as fh:
            return fh.read() != content
    except OSError:
        return True
