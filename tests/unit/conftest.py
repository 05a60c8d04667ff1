# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Imports the test command requires: there ``pytest.importorskip`` of them fails instead of skipping.

Outside the test command a missing optional package (libvirt-python, matplotlib) skips the tests that need it.
``./dev units`` lists the modules it installed in :data:`REQUIRED_IMPORTS_FILE` (one per line) in its private
copy of the tree, so that a venv without them fails loudly instead of passing green with the tests skipped.
A file, not an environment variable: ansible-test units hands pytest a fixed environment.
"""

from __future__ import annotations

import os

import pytest

REQUIRED_IMPORTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), '.required-imports')


def _required_imports():
    try:
        with open(REQUIRED_IMPORTS_FILE) as handle:
            return frozenset(line.strip() for line in handle if line.strip() and not line.startswith('#'))
    except FileNotFoundError:
        return frozenset()


REQUIRED_IMPORTS = _required_imports()
_importorskip = pytest.importorskip


def _importorfail(modname, *args, **kwargs):
    try:
        return _importorskip(modname, *args, **kwargs)
    except pytest.skip.Exception as skipped:
        if modname not in REQUIRED_IMPORTS:
            raise
        reason = skipped.msg
    pytest.fail('the test command requires %s (%s lists it; ./dev setup installs it), but: %s'
                % (modname, REQUIRED_IMPORTS_FILE, reason), pytrace=False)


if REQUIRED_IMPORTS:
    pytest.importorskip = _importorfail
