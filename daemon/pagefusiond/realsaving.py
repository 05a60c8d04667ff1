# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Broken sharing and the real saving: what sets the steady rate, and the honest figure next to ksmd's counters.

A write to a merged page copies it (COW) and the sharing is gone at once, but ksmd's counters
(pages_sharing) only learn so when ksmd visits the page again, and then it merges the page again
straight away. So the saving lost at any moment is about the pages broken during the last half
pass: ``break rate x pass seconds / 2``. The kernel counts those writes in /proc/vmstat
``cow_ksm``: one small read a step gives the break rate, and the pass time follows from the share
of the saving one may lose (``steady_loss_percent``): near ``steady_quiet_pass_seconds`` while
nothing writes to merged pages, down to ``steady_min_pass_seconds`` under churn (the rate model
still keeps ksmd within ``steady_max_cpu_percent``).

The real saving itself (anonymous Rss - Pss of the mergeable processes from
``/proc/<pid>/smaps_rollup``, plus their KSM zero pages) walks their page tables, so it is only
sampled every ``real_saving_interval`` seconds (ten times less often while nothing moves), for
the state file and the metrics.
"""

from __future__ import annotations

import os
import time

from .collection import _ksm
from .procevents import ProcFile

# How fast a falling break rate is believed (per step): a pause between bursts of writes is not calm yet.
RATE_DECAY = 0.2
# While nothing moved (no write broke sharing, same processes, same saving) the real saving is sampled this many
# times less often: each sample walks every mergeable process's page tables (about 5 ms of CPU per GiB).
QUIET_SAMPLING = 10
# Below this many broken pages a second (smoothed) a host counts as quiet: steps may come quiet_interval apart.
QUIET_BREAKS_PER_SECOND = 1.0
# Broken pages since the last step that bring a quiet host's next step forward (a look at cow_ksm between steps).
WAKE_BREAKS = 64


def steady_pass_seconds(config, breaks_per_second, saved_pages):
    """Seconds one steady pass should take so that broken sharing costs at most ``steady_loss_percent`` of the saving.

    ``breaks_per_second`` None (a kernel without ``cow_ksm``) gives the fixed ``steady_pass_seconds``.
    """
    if breaks_per_second is None:
        return config['steady_pass_seconds']
    quiet = config['steady_quiet_pass_seconds']
    if breaks_per_second <= 0 or saved_pages <= 0:
        return quiet
    allowed = saved_pages * config['steady_loss_percent'] / 100.0
    return max(config['steady_min_pass_seconds'], min(quiet, 2.0 * allowed / breaks_per_second))


class SharingMonitor(object):
    """Measures the break rate every step and samples the real saving now and then.

    After :meth:`measure`: ``breaks_per_second`` (smoothed: up at once, down by ``RATE_DECAY`` a
    step; None when the kernel has no ``cow_ksm``), ``cow_ksm`` (the counter) and ``real`` (the
    last sample: ``pages``, ``processes``, ``unreadable``, ``sampled`` epoch seconds, ``seconds``
    the sample took; None before the first).
    """

    def __init__(self, proc_root, page_size, clock=time.monotonic):
        self.proc_root = proc_root
        self.page_size = page_size
        self.clock = clock
        self.cow_ksm = None
        self.last_time = None
        self.breaks_per_second = None
        self.real = None
        self.real_time = None
        self.real_basis = None  # (pids, saved pages, cow_ksm) when the real saving was last sampled
        self.vmstat = ProcFile(os.path.join(proc_root, 'vmstat'), 32768)

    def quiet(self):
        """True while (as far as the kernel's cow_ksm tells) no write breaks sharing."""
        return self.breaks_per_second is not None and self.breaks_per_second < QUIET_BREAKS_PER_SECOND

    def broken_since_step(self):
        """Whether writes broke at least ``WAKE_BREAKS`` shared pages since the last step (one pread of /proc/vmstat)."""
        if self.cow_ksm is None:
            return False
        cow = self.read_cow_ksm()
        return cow is not None and cow - self.cow_ksm >= WAKE_BREAKS

    def read_cow_ksm(self):
        """``cow_ksm`` now (one pread of /proc/vmstat, kept open), or None: no such counter, or unreadable."""
        try:
            text = self.vmstat.read()
        except OSError:
            return None
        return _ksm.parse_vmstat_ksm(text.decode('ascii', 'replace')).get('cow_ksm')

    def measure(self, now, wall, processes, interval, saved=None):
        """One step: read ``cow_ksm``; sample the real saving of ``processes`` when ``interval`` seconds passed (0: never).

        ``saved``: the counters' saving now; while it, the processes and ``cow_ksm`` stay as they were at the
        last sample, the interval is ``QUIET_SAMPLING`` times longer.
        """
        self.measure_breaks(now)
        self.sample_when_due(now, wall, processes, interval, saved)

    def sample_when_due(self, now, wall, processes, interval, saved=None):
        """Sample the real saving of ``processes`` when ``interval`` seconds passed since the last sample (see :meth:`measure`)."""
        if interval <= 0:
            return
        basis = (frozenset(processes), saved, self.cow_ksm)
        if self.real_basis is not None and self._unmoved(self.real_basis, basis):
            interval *= QUIET_SAMPLING
        if self.real_time is None or now - self.real_time >= interval:
            self.real = self.sample(processes, wall)
            self.real_time, self.real_basis = now, basis

    @staticmethod
    def _unmoved(before, now):
        pids, saved, cow = before
        moved = saved is not None and now[1] is not None and abs(now[1] - saved) > max(1, saved // 100)
        return pids == now[0] and cow == now[2] and not moved

    def measure_breaks(self, now):
        """Read ``cow_ksm`` and update the smoothed break rate."""
        cow = self.read_cow_ksm()
        if cow is None:
            self.cow_ksm = self.breaks_per_second = None
            return
        if self.cow_ksm is not None and self.last_time is not None and now > self.last_time:
            instant = max(0, cow - self.cow_ksm) / (now - self.last_time)
            rate = self.breaks_per_second
            self.breaks_per_second = instant if rate is None or instant >= rate else rate + RATE_DECAY * (instant - rate)
        self.cow_ksm, self.last_time = cow, now

    def sample(self, processes, wall):
        """The real saving of ``processes`` (``{pid: {'stat': ksm_stat dict, ...}}``) right now."""
        started = self.clock()
        kb = zero = counted = unreadable = 0
        for pid, entry in processes.items():
            rollup = _ksm.read_smaps_rollup(pid, self.proc_root)
            if rollup is None:
                unreadable += 1  # gone, or no ptrace access (CAP_SYS_PTRACE)
                continue
            kb += _ksm.shared_anon_kb(rollup)
            zero += (entry.get('stat') or {}).get('zero_pages') or 0
            counted += 1
        return {'pages': kb * 1024 // self.page_size + zero, 'processes': counted, 'unreadable': unreadable,
                'sampled': wall, 'seconds': round(self.clock() - started, 4)}

    def state_fields(self, steady_pass):
        """The monitor's keys of the daemon's state dict (``steady_pass``: the pass seconds the steady phase wants)."""
        real = self.real or {}
        pages = real.get('pages')
        rate = self.breaks_per_second
        return {
            'real_saved_pages': pages,
            'real_saved_bytes': None if pages is None else pages * self.page_size,
            'real_saved_sampled': real.get('sampled'),
            'real_saved_processes': real.get('processes'),
            'real_saved_unreadable': real.get('unreadable'),
            'real_saved_sample_seconds': real.get('seconds'),
            'cow_ksm': self.cow_ksm,
            'sharing_breaks_per_second': None if rate is None else round(rate, 2),
            'steady_pass_seconds': round(steady_pass, 2),
        }
