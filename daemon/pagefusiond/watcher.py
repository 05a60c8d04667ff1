# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Processes: who has mergeable memory, and how much."""

from __future__ import annotations

import os

from .collection import _ksm
from .procevents import KernelCounters

SMAPS_NOTE = ('cannot read /proc/<pid>/smaps (ptrace access; CAP_SYS_PTRACE missing?): '
              'mergeable memory is estimated from the resident size')


def is_mergeable(stat):
    """Whether a process's ksm_stat says it has mergeable memory: True, False, or None (an exiting process).

    Kernels whose ksm_stat has no ``ksm_mergeable`` line count a process once ksmd has seen its pages.
    """
    mergeable = stat.get('mergeable')
    if mergeable is not None:
        return mergeable
    if stat.get('rmap_items') is None:
        return None  # an empty ksm_stat: the process is exiting
    return bool(stat.get('rmap_items') or stat.get('merging_pages') or stat.get('merge_any'))


class ProcessWatcher(object):
    """Finds the processes with mergeable memory and estimates how many mergeable pages they have.

    Each scan reads ``/proc/<pid>/ksm_stat`` of every process (through :func:`_ksm.read_process_ksm`).
    For a mergeable process, the resident pages of its mergeable VMAs (``/proc/<pid>/smaps``,
    VmFlags ``mg``) are the estimate; smaps is re-read only when the process's resident size
    (``/proc/<pid>/statm``) moved, so a steady host costs one small read per process and step; a process seen
    at start-up counts with its resident size until the next scan reads its smaps.
    Between scans, :meth:`spot` takes cheap looks (``process_watch``: see :meth:`spot`).
    ``available`` is False on kernels without ``ksm_stat`` (before Linux 6.1): the daemon then
    relies on KSM's own counters and never goes idle. ``exact`` is False on kernels whose ksm_stat
    has no ``ksm_mergeable`` line (before about 6.14): a process then counts as mergeable once
    ksmd has seen its pages.
    """

    def __init__(self, proc_root=_ksm.DEFAULT_PROC_ROOT, page_size=None, process_watch='counters'):
        self.proc_root = proc_root
        self.page_size = page_size or _ksm.system_page_size()
        # 'counters': look closer only when the kernel's counters moved (procevents); 'poll': look every time
        self.counters = KernelCounters(proc_root) if process_watch == 'counters' else None
        if self.counters is not None and not self.counters.available:
            self.counters = None
        self.known = {}  # pid -> {'rss': resident pages at the last smaps read, 'pages': estimate}
        self.seen = set()  # every pid the last scan looked at
        self.looked = set()  # pids a cheap look read since the last scan, not mergeable then
        self.available = True
        self.exact = True
        self.first_scan = True
        self.notes = set()  # conditions the controller logs once
        self.moved = True  # whether the last cheap look saw the kernel's counters move (always, without them)

    def signal_name(self):
        """What the cheap looks between scans watch (for the log and the state file)."""
        return self.counters.name if self.counters is not None else 'every process (poll)'

    def _pids(self):
        try:
            return [int(e) for e in os.listdir(self.proc_root) if e.isdigit()]
        except OSError:
            return []

    def _resident(self, pid):
        try:
            return int(_ksm.read_proc_text(os.path.join(self.proc_root, str(pid), 'statm')).split()[1])
        except (IOError, OSError, ValueError, IndexError):
            return None

    def _estimate(self, pid):
        try:
            return _ksm.mergeable_rss_pages(_ksm.read_proc_text(os.path.join(self.proc_root, str(pid), 'smaps')), self.page_size)
        except (IOError, OSError):
            return None

    def _entry(self, pid):
        """``{'rss', 'pages'}`` of a mergeable process (smaps re-read only when its resident size moved), or None."""
        resident = self._resident(pid)
        entry = self.known.get(pid)
        if entry is None and resident is not None and self.first_scan:
            # At start-up: the resident size for now, smaps (a walk over all its pages: ~25 ms for a 1 GiB guest)
            # at the next scan (the boost's second step), so that a daemon started with guests running writes the
            # boost knobs without waiting. Only then: a rough entry refined later would hide a newcomer's growth.
            return {'rss': resident, 'pages': resident, 'rough': True}
        if entry is not None and not entry['rough'] and resident is not None and \
                abs(resident - entry['rss']) <= max(256, entry['rss'] // 100):
            return dict(entry)
        pages = self._estimate(pid)
        if pages is None:
            # smaps needs ptrace read access (CAP_SYS_PTRACE for other users' or more privileged processes);
            # the resident size is the upper bound that is left.
            if resident is None:
                return None
            pages = resident
            self.notes.add(SMAPS_NOTE)
        return {'rss': resident or 0, 'pages': pages, 'rough': False}

    def scan(self):
        """Scan the processes. Returns ``{'processes': {pid: info}, 'pages': N, 'new': [pids]}``."""
        found = {}
        new = []
        seen_stat = False
        exact = True
        counted = self.counters.read() if self.counters is not None else None  # before the listing: nothing slips by
        pids = self._pids()
        self.seen = set(pids)
        self.looked = set()
        for pid in pids:
            stat = _ksm.read_process_ksm(pid, self.proc_root)
            if stat is None or stat.get('source') != 'ksm_stat':
                continue
            seen_stat = True
            if stat.get('mergeable') is None and stat.get('rmap_items') is not None:
                exact = False
            if not is_mergeable(stat):
                continue
            entry = self._entry(pid)
            if entry is None:
                continue
            if pid not in self.known:
                new.append(pid)
            entry['stat'] = stat
            found[pid] = entry
        self._learn(seen_stat, exact, found)
        self.first_scan = False
        if self.counters is not None:
            self.counters.mark(counted)
        pages = sum(max(e['pages'], e['stat'].get('rmap_items') or 0) for e in found.values())
        return {'processes': found, 'pages': pages, 'new': new}

    def _learn(self, seen_stat, exact, found):
        """What this scan tells about the kernel (``available``, ``exact``), and the processes to remember."""
        if not seen_stat:
            # No process showed a ksm_stat: either the kernel has none, or /proc is not readable.
            self.available = os.path.exists(os.path.join(self.proc_root, 'self', 'ksm_stat'))
        else:
            self.available = True
            self.exact = exact
        self.known = dict((pid, {'rss': e['rss'], 'pages': e['pages'], 'rough': e['rough']}) for pid, e in found.items())

    def spot(self, threshold_pages):
        """A cheap look between scans: why a step should run now, or None.

        With the kernel's counters (:class:`KernelCounters`) it first reads two small files and stops there
        unless a pid was handed out or anonymous memory moved by ``threshold_pages``. A new pid alone reads the
        ksm_stat of pids not looked at since the last scan; moved memory (and every look without the counters)
        also reads the resident size of the known mergeable processes and every pid the last scan did not see.
        So it can run every fraction of a second. Finds a new process with mergeable
        memory (kernels whose ksm_stat says ``ksm_mergeable``), or known ones grown by ``threshold_pages``.
        """
        self.moved = True
        if not self.available or not self.exact:
            return None
        moved = 'pid+memory'
        if self.counters is not None:
            moved = self.counters.moved(threshold_pages * self.page_size // 1024)
            if not moved:
                self.moved = False
                return None  # no new pid and no anonymous memory moved: nothing a closer look could find
        pids = self._pids()
        gone = set(self.known).difference(pids)
        if gone:
            return 'mergeable process %d exited' % min(gone)  # the scan then sees whether anything is left
        # A new pid alone (any fork on the host) cannot have grown the known guests: then only pids not looked at
        # since the last scan are read. When anonymous memory moved, the known guests' sizes and every pid the last
        # scan did not see are read (a process just forked may have marked its memory mergeable since).
        sizes = 'memory' in moved
        grown = 0
        for pid in pids:
            entry = self.known.get(pid)
            if entry is not None:
                if not sizes:
                    continue
                resident = self._resident(pid)
                if resident is None:
                    return 'mergeable process %d exited' % pid
                grown += max(0, resident - entry['rss'])
            elif pid not in self.seen and (sizes or pid not in self.looked):
                stat = _ksm.read_process_ksm(pid, self.proc_root)
                if stat is not None and stat.get('mergeable'):
                    return 'new mergeable process %d' % pid
                self.looked.add(pid)
        if grown >= max(threshold_pages, 1):
            return 'mergeable processes grew by %d MiB' % (grown * self.page_size // 1048576)
        return None
