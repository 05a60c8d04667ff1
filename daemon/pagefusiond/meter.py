# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The ksmd CPU meter: how much CPU ksmd used since the last step, and what a scanned page costs."""

from __future__ import annotations


class KsmdMeter(object):
    """Measures ksmd from its own CPU time (``/proc/<ksmd>/schedstat``) and KSM's ``pages_scanned``.

    After each :meth:`measure`: ``cpu_percent`` (of one core, since the last step), ``scan_rate``
    (pages a second), ``cpu_per_page`` (CPU seconds per scanned page, smoothed; None until 1000
    pages were scanned between two steps, and always on kernels before 6.7 that have no
    ``pages_scanned``) and ``last_cpu`` (ksmd's CPU seconds since boot).
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
        self.last_cpu = cpu
        self.last_time = now
        self.last_scanned = scanned
        return cpu
