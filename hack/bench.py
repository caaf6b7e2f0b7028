# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make bench`: playbooks/bench.yml on an inventory (default: this host), and the
clean-up when it did not finish.

The bench role removes what it created in an always block, but Ctrl-C stops
ansible-playbook before that block runs; so when the playbook fails or is interrupted,
this runs it once more with bench_state=absent, which removes the bench's forwarder
instances, programs, pins and bed. Arguments after the options go to ansible-playbook
(e.g. -e bench_profile=full).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLAYBOOK = os.path.join(ROOT, 'playbooks', 'bench.yml')


def playbook_argv(extra, inventory='inventory/local'):
    """The ansible-playbook command line (the one beside this interpreter)."""
    exe = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    return [exe, '-i', inventory, PLAYBOOK] + list(extra)


def cleanup_argv(extra, inventory='inventory/local'):
    """The same run with bench_state=absent: only the clean-up tasks, no build."""
    return playbook_argv(list(extra) + ['-e', 'bench_state=absent', '--skip-tags', 'build'],
                         inventory)


def main(argv=None):
    extra = list(sys.argv[1:] if argv is None else argv)
    inventory = os.environ.get('KBYPASS_INVENTORY', 'inventory/local')
    try:
        rc = subprocess.call(playbook_argv(extra, inventory), cwd=ROOT)
    except KeyboardInterrupt:
        rc = 130
    if rc != 0:
        sys.stderr.write('bench: the run did not finish (rc=%d); removing what it created\n' % rc)
        # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        subprocess.call(cleanup_argv(extra, inventory), cwd=ROOT)
    return rc


if __name__ == '__main__':
    sys.exit(main())
