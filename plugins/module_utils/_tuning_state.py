# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Save-the-original bookkeeping for tuning modules, and sysfs/procfs access in a netns.

A tuning module records the value a knob had *the first time it changes it*, in one JSON
file per tuned object under ``/run/kbypass/tuning/``. A later run that changes the knob
again keeps the first original, so ``state: restored`` puts back exactly what the host had
before kbypass touched it (the approach of tuned's ``net`` plugin), then deletes the file.

sysfs under ``ip netns exec`` shows the devices of that namespace (``/sys`` is remounted),
and ``/proc/sys/net`` shows that namespace's sysctls, so reads and writes for a link in a
namespace run a tiny Python helper through ``ip netns exec``. Without a namespace the same
helper runs directly, so both paths behave identically.
"""

from __future__ import annotations

import json
import os
import sys

from ansible_collections.kbypass.xdp.plugins.module_utils._common import (
    ROOT_NS_LABEL,
    STATE_ROOT,
    in_netns,
)

TUNING_STATE_DIR = STATE_ROOT + '/tuning'
STATE_VERSION = 1

# Runs under `ip netns exec` (or directly). Reads a list of paths, writes a list of
# (path, value) pairs in order, and describes a net device's sysfs node. One JSON
# object in on argv[1], one JSON object out on stdout. Errors are reported per item.
_HELPER = r'''
import json, os, sys
req = json.loads(sys.argv[1])
out = {"read": {}, "write": [], "dev": None}
for p in req.get("read", []):
    try:
        with open(p) as f:
            out["read"][p] = f.read().strip()
    except OSError as e:
        out["read"][p] = None
for p, v in req.get("write", []):
    try:
        with open(p, "w") as f:
            f.write(str(v))
        out["write"].append([p, None])
    except OSError as e:
        out["write"].append([p, "%s: %s" % (type(e).__name__, e.strerror or e)])
dev = req.get("dev")
if dev:
    base = "/sys/class/net/" + dev
    info = {"exists": os.path.isdir(base), "device_path": None, "device_name": None,
            "msi_irqs": [], "numa_node": None, "driver_module": None}
    d = base + "/device"
    if os.path.exists(d):
        real = os.path.realpath(d)
        info["device_path"] = real
        info["device_name"] = os.path.basename(real)
        cur = real
        # virtio_net: the netdev's device is virtioN, whose parent is the PCI function.
        for _ in range(3):
            m = cur + "/msi_irqs"
            if os.path.isdir(m):
                info["msi_irqs"] = sorted(int(x) for x in os.listdir(m) if x.isdigit())
                break
            cur = os.path.dirname(cur)
        for cand in (real, os.path.dirname(real)):
            try:
                with open(cand + "/numa_node") as f:
                    node = int(f.read().strip())
                info["numa_node"] = node if node >= 0 else None
                break
            except (OSError, ValueError):
                pass
        drv = d + "/driver/module"
        if os.path.exists(drv):
            info["driver_module"] = os.path.basename(os.path.realpath(drv))
    out["dev"] = info
sys.stdout.write(json.dumps(out))
'''


class HelperError(Exception):
    """The sysfs/procfs helper could not run (namespace missing, interpreter error)."""


def fs_op(module, netns=None, read=None, write=None, dev=None):
    """Read paths, write (path, value) pairs, describe a net device — in ``netns``.

    Returns the helper's dict: ``read`` {path: value or None}, ``write`` [[path, error or
    None]], ``dev`` (see _HELPER). Raises HelperError when the helper itself fails.
    """
    req = {'read': list(read or []), 'write': [list(x) for x in (write or [])], 'dev': dev}
    rc, out, err = module.run_command(
        in_netns([sys.executable, '-c', _HELPER, json.dumps(req)], netns))
    if rc != 0:
        raise HelperError('reading/writing sysfs%s failed (rc=%s): %s'
                          % (' in netns %s' % netns if netns else '', rc, (err or out).strip()))
    try:
        return json.loads(out)
    except ValueError:
        raise HelperError('unexpected output from the sysfs helper: %r' % out[:200])


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
