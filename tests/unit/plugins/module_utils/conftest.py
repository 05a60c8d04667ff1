# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared fixtures: a libvirt backend on the real test driver (test:///<node file>)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def test_driver_backend():
    """``test_driver_backend(node_path)``: a LibvirtBackend on one test-driver connection, closed afterwards.

    The test driver keeps its state for as long as that one connection lives.
    """
    pytest.importorskip('libvirt')
    from ansible_collections.pagefusion.core.plugins.module_utils import _libvirt

    opened = []

    def open_backend(node_path):
        backend = _libvirt.LibvirtBackend('test://' + os.path.abspath(node_path))
        opened.append(backend)
        return backend

    yield open_backend
    for backend in opened:
        backend.close()
