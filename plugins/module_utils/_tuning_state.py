# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Save-the-original bookkeeping for tuning modules.

A tuning module records the value a knob had *the first time it changes it*, in one JSON
file per tuned object under ``TUNING_STATE_DIR``. A later run that changes the knob
again keeps the first original, so ``state: restored`` puts back exactly what the host had
before kbypass touched it (the approach of tuned's ``net`` plugin), then deletes the file.

File names cannot collide: ``nic:<ifname>.json`` / ``nic:<netns>:<ifname>.json`` for an
interface, ``host.json`` / ``host:<netns>.json`` for host_tune. Neither a namespace nor an
interface name may contain ":", so each name decodes to exactly one (kind, netns, ifname).

sysfs and procfs of a namespace are read and written through ``_netns.fs_op``.
"""

from __future__ import annotations

import json
import os

from ansible_collections.kbypass.xdp.plugins.module_utils._common import STATE_ROOT, prune_dir
from ansible_collections.kbypass.xdp.plugins.module_utils._supervise import write_json_atomic

TUNING_STATE_DIR = STATE_ROOT + '/tuning'
STATE_VERSION = 1


def sysctl_path(name):
    """``net.core.busy_poll`` -> ``/proc/sys/net/core/busy_poll``."""
    return '/proc/sys/' + name.replace('.', '/')


def target_key(netns=None, ifname=None):
    """The tuned object's name, also the key of the tuning role's summary: ``veth0`` or
    ``ns1:veth0`` for an interface, ``host`` or ``host:ns1`` for host_tune."""
    if ifname is None:
        return 'host:%s' % netns if netns else 'host'
    return '%s:%s' % (netns, ifname) if netns else ifname


def state_file(state_dir, netns=None, ifname=None):
    """Path of the saved-originals file of one tuned object (an interface, or the host's
    sysctls in ``netns`` when ``ifname`` is None): ``nic:`` + the key, or the key alone
    for host_tune (``host...``, never ``nic:...``)."""
    kind = 'nic:' if ifname is not None else ''
    return os.path.join(state_dir or TUNING_STATE_DIR,
                        kind + target_key(netns, ifname) + '.json')


def load_state(path):
    """Return the saved state dict, or an empty skeleton when there is none yet."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {'version': STATE_VERSION, 'original': {}}
    except (ValueError, OSError) as exc:
        raise ValueError('saved tuning state %s cannot be read (%s); inspect it and remove '
                         'it to start over' % (path, exc))
    data.setdefault('original', {})
    return data


def save_state(path, data):
    """Write ``data`` atomically, creating the directory. Raises ValueError with a
    message a person can act on."""
    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        write_json_atomic(path, data)
    except OSError as exc:
        raise ValueError('cannot save the original values in %s: %s'
                         % (path, exc.strerror or exc))


def remove_state(path):
    """Remove a saved-originals file; its directory goes with the last one (save_state
    creates it again)."""
    os.remove(path)
    prune_dir(os.path.dirname(path))


def remember(state, section, key, value):
    """Record ``value`` as the original of ``section/key`` unless one is already saved.

    Returns True when something new was recorded. Keys are stored as strings (JSON).
    """
    sect = state['original'].setdefault(section, {})
    key = str(key)
    if key in sect:
        return False
    sect[key] = value
    return True
