# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure helpers shared by every kbypass.xdp module: name validation and paths."""

from __future__ import annotations

import os
import re

IFNAMSIZ = 16  # including the NUL: at most 15 visible characters
# `ip netns add` accepts anything that is a valid file name; we are stricter so that
# names are safe in paths, pins and unit names.
_NETNS_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$')

NETNS_RUN_DIR = '/run/netns'
BPFFS_ROOT = '/sys/fs/bpf'
PIN_ROOT = BPFFS_ROOT + '/kbypass'
STATE_ROOT = '/run/kbypass'
ROOT_NS_LABEL = 'init_net'  # pin path component for the root network namespace


def ifname_error(name):
    """Return a human message when ``name`` cannot be a Linux interface name, else None."""
    if not name:
        return 'interface name is empty'
    if len(name) > IFNAMSIZ - 1:
        return ('interface name %r is %d characters long; Linux allows at most %d'
                % (name, len(name), IFNAMSIZ - 1))
    if '/' in name or ':' in name or any(c.isspace() for c in name) or name in ('.', '..'):
        return 'interface name %r may not contain "/", ":" or whitespace, nor be "." or ".."' % name
    return None


def netns_error(name):
    """Return a human message when ``name`` is not an acceptable namespace name, else None."""
    if name is None:
        return None
    if not _NETNS_RE.match(name) or name in ('.', '..'):
        return ('network namespace name %r is invalid: use 1-63 characters from '
                'letters, digits, "_", "." and "-", starting with a letter or digit' % name)
    return None


def netns_path(name):
    """Path of a named namespace as `ip netns` creates it."""
    return os.path.join(NETNS_RUN_DIR, name)


def default_pin_dir(ifname, netns=None):
    """bpffs directory where the steering program's maps for one interface are pinned.

    Modules run in the root mount namespace (pyroute2 switches only the network
    namespace), so these pins are reachable whatever namespace the link lives in.
    """
    return '%s/%s/%s' % (PIN_ROOT, netns or ROOT_NS_LABEL, ifname)
