# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The simulated KSM with writes that break sharing: /proc/vmstat ``cow_ksm`` and /proc/<pid>/smaps_rollup.

A process with ``churn`` writes that many of its merged shared pages a second: each write copies the
page (``cow_ksm`` grows) and the sharing is gone, while the KSM counters keep it until ksmd scans
the page again and merges it straight back (as the real kernel does). ``broken`` is what is
waiting for ksmd; smaps_rollup's anonymous Rss - Pss shows the saving without it.
"""

from __future__ import annotations

import os

from ansible_collections.pagefusion.core.tests.unit.daemon.sim import SimKernel


class ChurnKernel(SimKernel):
    """A :class:`SimKernel` whose processes can break sharing (``set_churn``); ``vmstat=False``: a kernel without cow_ksm."""

    def __init__(self, tmp_path, vmstat=True, **kernel_args):
        self.vmstat = vmstat
        self.cow = 0.0
        self.churn = {}   # pid -> merged pages written per second
        self.broken = {}  # pid -> pages whose sharing a write broke and ksmd has not seen since
        self.holders = 1  # processes holding merged shared pages (a KSM page's mappings)
        self.in_advance = False
        SimKernel.__init__(self, tmp_path, **kernel_args)
        self._write_vmstat()

    def set_churn(self, pid, per_second):
        self.churn[pid] = per_second

    def _write_vmstat(self):
        if self.vmstat:
            with open(os.path.join(self.proc, 'vmstat'), 'w') as handle:
                handle.write('nr_free_pages 1000\nksm_swpin_copy 0\ncow_ksm %d\n' % int(self.cow))

    def advance(self, seconds):
        before = self.knob('pages_scanned')
        self.in_advance = True  # smaps_rollup once, below (the files are slow on a busy machine)
        try:
            SimKernel.advance(self, seconds)
        finally:
            self.in_advance = False
        merged = dict((pid, self._merged(p)) for pid, p in self.procs.items() if p.mergeable)
        self.holders = sum(1 for m in merged.values() if m[0]) or 1
        total = sum(p.pages for p in self.procs.values() if p.mergeable) or 1
        seen = min(1.0, (self.knob('pages_scanned') - before) / float(total))  # share of every process ksmd visited
        for pid, (shared, zero, uzp) in merged.items():
            writes = min(self.churn.get(pid, 0.0) * seconds, shared)
            self.cow += writes
            # what was broken before is found with the share ksmd visited; new breaks half as likely on average
            broken = self.broken.get(pid, 0.0) * (1.0 - seen) + writes * (1.0 - seen / 2.0)
            self.broken[pid] = min(broken, shared)
            self._write_rollup(self.procs[pid], (shared, zero, uzp))
        self._write_vmstat()

    def _write_proc(self, proc):
        SimKernel._write_proc(self, proc)
        if not self.in_advance:
            self._write_rollup(proc, self._merged(proc) if proc.mergeable else (0, 0, False))

    def _write_rollup(self, proc, merged):
        shared, zero, uzp = merged
        shared_kb = (shared - self.broken.get(proc.pid, 0.0)) * (1.0 - 1.0 / self.holders) * 4
        anon_kb = (proc.pages - (zero if uzp else 0)) * 4  # KSM zero pages are not in Rss
        pss_anon_kb = anon_kb - shared_kb - (0 if uzp else zero * 4)
        with open(os.path.join(self.proc, str(proc.pid), 'smaps_rollup'), 'w') as handle:
            handle.write('55d0c0000000-7ffd00021000 ---p 00000000 00:00 0 [rollup]\nRss: %d kB\nPss: %d kB\n'
                         'Pss_Anon: %d kB\nPss_File: 100 kB\nAnonymous: %d kB\n'
                         % (anon_kb + 132, pss_anon_kb + 100, pss_anon_kb, anon_kb))

    def real_saved(self):
        """The saving really there: the counters' saving minus the broken pages (each was one page saved)."""
        return self.saved() - sum(self.broken.values())
