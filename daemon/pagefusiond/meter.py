# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The ksmd CPU meter: how much CPU ksmd used since the last step, what a scanned page costs, and the daemon's own CPU."""

from __future__ import annotations

from .collection import _ksm

# Smoothing of the daemon's own CPU share: /proc/self/stat counts in 10 ms ticks, a step is about 2 s.
OWN_SMOOTHING = 0.3


class KsmdMeter(object):
    """Measures ksmd from its own CPU time (``/proc/<ksmd>/schedstat``) and KSM's ``pages_scanned``.

    After each :meth:`measure`: ``cpu_percent`` (of one core, since the last step), ``scan_rate``
    (pages a second), ``cpu_per_page`` (CPU seconds per scanned page, smoothed; None until 1000
    pages were scanned between two steps, and always on kernels before 6.7 that have no
    ``pages_scanned``), ``last_cpu`` (ksmd's CPU seconds since boot) and ``own_cpu_percent`` (the
    daemon's own CPU, all threads, smoothed; None when ``<proc_root>/self/stat`` cannot be read).
    """

    def __init__(self, ksm):
        self.ksm = ksm
        self.ksmd_pid = None
        self.last_cpu = None
        self.last_time = None
        self.last_scanned = None
        self.cpu_percent = None
        self.scan_rate = None
        self.cpu_per_page = None
        self.own_cpu = None
        self.own_cpu_percent = None

    def _ksmd_cpu_seconds(self):
        if self.ksmd_pid is None:
            self.ksmd_pid = self.ksm.ksmd_pid()
        cpu = self.ksm.ksmd_cpu_seconds(self.ksmd_pid) if self.ksmd_pid is not None else None
        if cpu is None and self.ksmd_pid is not None:
            self.ksmd_pid = None  # ksmd went away (or is another pid now): look it up again next time
        return cpu

    def measure(self, now, counters):
        """Take one reading at monotonic ``now`` with KSM's ``counters``; returns ksmd's CPU seconds or None."""
        cpu = self._ksmd_cpu_seconds()
        scanned = counters.get('pages_scanned')
        if cpu is not None and self.last_cpu is not None and now > self.last_time:
            used = max(0.0, cpu - self.last_cpu)
            self.cpu_percent = 100.0 * used / (now - self.last_time)
            self.scan_rate = None
            if scanned is not None and self.last_scanned is not None:
                self.scan_rate = max(0, scanned - self.last_scanned) / (now - self.last_time)
            if scanned is not None and self.last_scanned is not None and scanned - self.last_scanned >= 1000:
                sample = used / (scanned - self.last_scanned)
                self.cpu_per_page = sample if self.cpu_per_page is None else 0.5 * self.cpu_per_page + 0.5 * sample
        self._measure_own(now)
        self.last_cpu = cpu
        self.last_time = now
        self.last_scanned = scanned
        return cpu

    def _measure_own(self, now):
        """The daemon's own share of a core since the last step (the steady CPU budget covers ksmd and the daemon)."""
        own = _ksm.read_process_cpu_seconds('self', self.ksm.proc_root)
        if own is not None and self.own_cpu is not None and self.last_time is not None and now > self.last_time:
            sample = 100.0 * max(0.0, own - self.own_cpu) / (now - self.last_time)
            last = self.own_cpu_percent
            self.own_cpu_percent = sample if last is None else last + OWN_SMOOTHING * (sample - last)
        self.own_cpu = own
