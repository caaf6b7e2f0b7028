"""Unit-test helpers (report_samples, module_main) are importable by name from every test file."""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
