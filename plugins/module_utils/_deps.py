# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Import pyroute2 wherever the target has it.

The interpreter Ansible picked on a target may not be the one that has pyroute2
(the toolchain role installs it into a small venv, distros ship it as a system
package). Like ansible.posix's firewalld util, respawn under an interpreter that
has it before giving up with ``missing_required_lib``.
"""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.respawn import (
    has_respawned,
    probe_interpreters_for_module,
    respawn_module,
)

# Where the toolchain role puts pyroute2, then the distro interpreters.
PYROUTE2_INTERPRETERS = (
    '/opt/kbypass/venv/bin/python3',
    '/usr/bin/python3',
    '/usr/libexec/platform-python',
)

try:
    import pyroute2  # noqa: F401  pylint: disable=unused-import
    HAS_PYROUTE2 = True
    PYROUTE2_IMPORT_ERROR = None
except ImportError:
    HAS_PYROUTE2 = False
    PYROUTE2_IMPORT_ERROR = traceback.format_exc()


def require_pyroute2(module):
    """Return normally when pyroute2 is importable; respawn or fail otherwise."""
    if HAS_PYROUTE2:
        return
    if not has_respawned():
        interpreter = probe_interpreters_for_module(PYROUTE2_INTERPRETERS, 'pyroute2')
        if interpreter:
            respawn_module(interpreter)
    module.fail_json(
        msg=missing_required_lib(
            'pyroute2',
            reason='to talk netlink; run the kbypass.xdp.toolchain role first',
        ),
        exception=PYROUTE2_IMPORT_ERROR,
    )
