"""Run a module's ``main()`` in-process, as Ansible would, for unit tests."""
import contextlib
import io
import json

import pytest

from ansible.module_utils.testing import patch_module_args


def run_main(module, args, check=False):
    """``module.main()`` with ``args`` (check mode with ``check``) -> its JSON result."""
    out = io.StringIO()
    with patch_module_args(dict(args, _ansible_check_mode=True) if check else args):
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            module.main()
    return json.loads(out.getvalue())
