"""Make ``ansible_collections.kbypass.xdp`` importable when pytest runs from the repo root.

`make setup` links the repository into .collections/ansible_collections/kbypass/xdp.
"""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_COLL = os.path.join(_ROOT, '.collections')
_LINK = os.path.join(_COLL, 'ansible_collections', 'kbypass', 'xdp')
if not os.path.exists(_LINK):
    os.makedirs(os.path.dirname(_LINK), exist_ok=True)
    os.symlink(_ROOT, _LINK)
if _COLL not in sys.path:
    sys.path.insert(0, _COLL)
