# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""libvirt lifecycle events (optional): a domain started or resumed wakes pagefusiond at once."""

from __future__ import annotations

import threading
import time


class LibvirtEvents(object):
    """Wakes the daemon on libvirt domain lifecycle events (started/resumed), reconnecting on loss.

    Uses libvirt-python's default event loop: virEventRegisterDefaultImpl() before the connection
    is opened, one thread running virEventRunDefaultImpl(), domainEventRegisterAny(LIFECYCLE).
    """

    def __init__(self, uri, on_event, log, retry_seconds=10.0):
        self.uri = uri
        self.on_event = on_event
        self.log = log
        self.retry_seconds = retry_seconds
        self.libvirt = None
        self.conn = None
        self.stop_event = threading.Event()
        self.lost = threading.Event()

    def start(self):
        """Start the event threads; False when libvirt-python is not importable."""
        try:
            import libvirt  # pylint: disable=import-outside-toplevel
        except ImportError:
            self.log('libvirt-python not importable: watching processes and KSM counters only')
            return False
        self.libvirt = libvirt
        try:
            libvirt.registerErrorHandler(lambda ctx, err: None, None)
            libvirt.virEventRegisterDefaultImpl()
        except libvirt.libvirtError as err:
            self.log('libvirt event loop unavailable (%s): watching processes only' % err)
            return False
        threading.Thread(target=self._run_loop, name='libvirt-events', daemon=True).start()
        threading.Thread(target=self._connect_loop, name='libvirt-connect', daemon=True).start()
        return True

    def _run_loop(self):
        while not self.stop_event.is_set():
            try:
                self.libvirt.virEventRunDefaultImpl()
            except Exception:  # pylint: disable=broad-except
                time.sleep(1.0)

    def _lifecycle(self, conn, dom, event, detail, opaque):
        lv = self.libvirt
        if event in (lv.VIR_DOMAIN_EVENT_STARTED, lv.VIR_DOMAIN_EVENT_RESUMED):
            try:
                name = dom.name()
            except lv.libvirtError:
                name = '?'
            self.on_event('libvirt domain %s %s' % (name, 'started' if event == lv.VIR_DOMAIN_EVENT_STARTED else 'resumed'))

    def _closed(self, conn, reason, opaque):
        self.lost.set()

    def _connect(self):
        """Open a read-only connection that reports lifecycle events and its own loss; raises libvirtError."""
        lv = self.libvirt
        conn = lv.openReadOnly(self.uri)
        try:
            conn.registerCloseCallback(self._closed, None)
            conn.domainEventRegisterAny(None, lv.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle, None)
            try:
                conn.setKeepAlive(5, 3)
            except lv.libvirtError:
                pass
        except lv.libvirtError:
            self._close(conn)
            raise
        return conn

    def _close(self, conn):
        """Drop a lost connection (its callbacks go with it); errors of a dead connection do not matter."""
        try:
            conn.close()
        except self.libvirt.libvirtError:
            pass

    def _watch(self, conn):
        """Block until the connection is lost (close callback, or keepalive says it is dead) or we stop."""
        while not self.stop_event.is_set() and not self.lost.wait(self.retry_seconds):
            if not conn.isAlive():
                break

    def _connect_loop(self):
        """Connect, listen until the connection is lost, reconnect: after 1 s, then less often up to ``retry_seconds``."""
        failures = 0
        connected_before = False
        while not self.stop_event.is_set():
            self.lost.clear()  # before connecting: a loss reported during the set-up must count
            try:
                conn = self._connect()
            except self.libvirt.libvirtError as err:
                if failures == 0:
                    self.log('cannot connect to libvirt %s (%s): retrying, watching processes meanwhile'
                             % (self.uri, str(err).strip()))
                failures += 1
                self.stop_event.wait(min(self.retry_seconds, float(2 ** min(failures - 1, 10))))
                continue
            self.conn, failures = conn, 0
            self.log('listening to libvirt lifecycle events on %s' % self.uri)
            if connected_before:
                # Domains may have started while libvirtd was away: look now rather than at the next interval.
                self.on_event('libvirt %s reconnected' % self.uri)
            connected_before = True
            self._watch(conn)
            self.conn = None
            self._close(conn)
            if not self.stop_event.is_set():
                self.log('libvirt connection %s lost; reconnecting' % self.uri)
                self.stop_event.wait(min(1.0, self.retry_seconds))

    def stop(self):
        self.stop_event.set()
