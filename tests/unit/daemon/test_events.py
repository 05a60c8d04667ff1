# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""libvirt lifecycle events."""

from __future__ import annotations

from ansible_collections.pagefusion.core.daemon.pagefusiond.events import LibvirtEvents


def test_libvirt_events_without_libvirt_python(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == 'libvirt':
            raise ImportError(name)
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, '__import__', fake_import)
    logs = []
    events = LibvirtEvents('qemu:///system', lambda reason: None, logs.append)
    assert events.start() is False
    assert 'libvirt-python not importable' in logs[0]
