# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hack/fleet.py takes the distribution mirror from the controller's apt sources (deb822
.sources or one-line .list), so the repository names no mirror host."""
from __future__ import annotations

import importlib.util
import os

import pytest

_PATH = os.path.join(os.path.dirname(__file__), '..', '..', 'hack', 'fleet.py')
_SPEC = importlib.util.spec_from_file_location('kbfleet_hack', _PATH)
fleet = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fleet)

DEB822 = """\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_deb822_takes_the_stanza_of_the_suite_not_security():
    assert fleet.mirror_from_deb822(DEB822, 'bookworm') == 'http://mirror.example/debian'
    assert fleet.mirror_from_deb822(DEB822, 'trixie') is None


def test_deb822_skips_disabled_and_source_only_stanzas():
    text = ('Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n\n'
            'Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n' + DEB822)
    assert fleet.mirror_from_deb822(text, 'bookworm') == 'http://mirror.example/debian'


@pytest.mark.parametrize('line, expected', [
    ('deb http://mirror.example/debian bookworm main', 'http://mirror.example/debian'),
    ('deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main contrib',
     'http://m.example/debian'),
    ('# deb http://commented.example/debian bookworm main', None),
    ('deb-src http://src.example/debian bookworm main', None),
    ('deb http://mirror.example/debian bookworm-updates main', None),
])
def test_one_line_sources(line, expected):
    assert fleet.mirror_from_list(line + '\n', 'bookworm') == expected


def test_apt_mirror_reads_the_directory_then_sources_list(tmp_path):
    sources = tmp_path / 'sources.list.d'
    sources.mkdir()
    (sources / 'other.sources').write_text('Types: deb\nURIs: http://x.example/y\nSuites: jammy\n')
    listing = tmp_path / 'sources.list'
    listing.write_text('deb http://list.example/debian/ bookworm main\n')
    assert fleet.apt_mirror('bookworm', str(sources), str(listing)) == 'http://list.example/debian'
    (sources / 'debian.sources').write_text(DEB822)
    assert fleet.apt_mirror('bookworm', str(sources), str(listing)) == 'http://mirror.example/debian'


def test_apt_mirror_without_a_source_says_so(tmp_path):
    with pytest.raises(SystemExit, match='no apt source for bookworm'):
        fleet.apt_mirror('bookworm', str(tmp_path / 'none'), str(tmp_path / 'none.list'))
