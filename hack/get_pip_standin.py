# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offline stand-in for the get-pip script ansible-test downloads.

ansible-test bootstraps pip in each sanity venv with a script from a host we cannot reach,
but uses ~/.ansible/test/cache/get_pip_<version>.py when it exists. hack/sanity.sh copies
this file there. It runs the standard library's ensurepip, drops the PIP_CONFIG_FILE that
ensurepip sets (so the host's pip configuration and its wheel mirror apply again), then
installs the requested packages (e.g. pip==24.2) with the new pip.
"""

from __future__ import annotations

import os
import subprocess
import sys

DROPPED = ('--no-setuptools', '--no-wheel')


def main():
    import ensurepip  # pylint: disable=import-outside-toplevel
    ensurepip.bootstrap(upgrade=True, default_pip=True)
    os.environ.pop('PIP_CONFIG_FILE', None)
    args = [arg for arg in sys.argv[1:] if arg not in DROPPED]
    if not [arg for arg in args if not arg.startswith('-')]:
        return 0
    return subprocess.call([sys.executable, '-m', 'pip', 'install'] + args)


if __name__ == '__main__':
    sys.exit(main())
