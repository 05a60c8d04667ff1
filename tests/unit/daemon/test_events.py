# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""libvirt lifecycle events."""

from __future__ import annotations

import threading
import time

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


class FakeLibvirtError(Exception):
    pass


class FakeConnection(object):
    def __init__(self):
        self.alive = True
        self.closed = False
        self.close_callback = None

    def registerCloseCallback(self, callback, opaque):
        self.close_callback = callback

    def domainEventRegisterAny(self, dom, event_id, callback, opaque):
        pass

    def setKeepAlive(self, interval, count):
        raise FakeLibvirtError('keepalive not supported')

    def isAlive(self):
        return self.alive

    def close(self):
        self.closed = True


class FakeLibvirt(object):
    """libvirt-python's connection calls: the daemon is down for ``down`` attempts after each connection."""

    libvirtError = FakeLibvirtError
    VIR_DOMAIN_EVENT_ID_LIFECYCLE = 0

    def __init__(self, down=0):
        self.down = down
        self.failing = 0
        self.connections = []
        self.attempts = 0

    def openReadOnly(self, uri):
        self.attempts += 1
        if self.failing:
            self.failing -= 1
            raise FakeLibvirtError('Failed to connect socket to /run/libvirt/libvirt-sock-ro: Connection refused')
        conn = FakeConnection()
        self.connections.append(conn)
        return conn

    def drop(self):
        """libvirtd goes away: the close callback fires, the next ``down`` attempts fail."""
        self.failing = self.down
        conn = self.connections[-1]
        conn.alive = False
        conn.close_callback(conn, 0, None)


def _wait(predicate, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_reconnects_after_libvirtd_restarts_and_wakes_the_daemon():
    fake = FakeLibvirt(down=2)
    logs, woken = [], []
    events = LibvirtEvents('qemu:///system', woken.append, logs.append, retry_seconds=0.05)
    events.libvirt = fake
    threading.Thread(target=events._connect_loop, daemon=True).start()
    try:
        assert _wait(lambda: len(fake.connections) == 1)
        fake.drop()
        assert _wait(lambda: len(fake.connections) == 2 and woken)
    finally:
        events.stop()
    assert fake.connections[0].closed  # the lost connection is closed, not leaked
    assert fake.attempts == 4  # two refused while libvirtd is away, then connected again
    assert woken == ['libvirt qemu:///system reconnected']
    assert [m for m in logs if 'cannot connect' in m][0].count('Connection refused') == 1
    assert sum('cannot connect' in m for m in logs) == 1  # said once, not at every retry
    assert sum('listening to libvirt lifecycle events' in m for m in logs) == 2
    assert any('connection qemu:///system lost; reconnecting' in m for m in logs)
