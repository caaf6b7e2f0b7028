# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Save-the-original bookkeeping for tuning modules.

A tuning module records the value a knob had *the first time it changes it*, in one JSON
file per tuned object under ``/run/kbypass/tuning/``. A later run that changes the knob
again keeps the first original, so ``state: restored`` puts back exactly what the host had
before kbypass touched it (the approach of tuned's ``net`` plugin), then deletes the file.

sysfs and procfs of a namespace are read and written through ``_netns.fs_op``.
"""

from __future__ import annotations

import json
import os

from ansible_collections.kbypass.xdp.plugins.module_utils._common import (
    ROOT_NS_LABEL,
    STATE_ROOT,
)

TUNING_STATE_DIR = STATE_ROOT + '/tuning'
STATE_VERSION = 1


def sysctl_path(name):
    """``net.core.busy_poll`` -> ``/proc/sys/net/core/busy_poll``."""
    return '/proc/sys/' + name.replace('.', '/')


def state_file(state_dir, key, netns=None):
    """Path of the saved-originals file for one tuned object."""
    return os.path.join(state_dir or TUNING_STATE_DIR,
                        '%s-%s.json' % (netns or ROOT_NS_LABEL, key))


def load_state(path):
    """Return the saved state dict, or an empty skeleton when there is none yet."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {'version': STATE_VERSION, 'original': {}}
    except ValueError as exc:
        raise ValueError('saved tuning state %s is not valid JSON (%s); inspect it and remove '
                         'it to start over' % (path, exc))
    data.setdefault('original', {})
    return data


def save_state(path, data):
    """Write ``data`` atomically (tmp file + rename), creating the directory."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write('\n')
    os.replace(tmp, path)


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
