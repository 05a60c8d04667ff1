# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A simulated KSM for the unit tests of pagefusiond, and a harness that steps the controller on it.

SimKernel keeps a temporary /sys/kernel/mm/ksm and /proc in the formats of the 6.18 kernel (the
ones _ksm reads) and answers the knobs the way the kernel does: ksmd scans ``pages_to_scan``
pages per batch and sleeps ``sleep_millisecs`` between batches, each scanned page costs CPU time
(so ksmd's schedstat grows with the pages scanned), ``full_scans`` advances once per pass over
all mergeable pages, and a page merges the second time ksmd sees it (zero pages the first time
with use_zero_pages=1). Time is a fake clock the tests advance.
"""

from __future__ import annotations

import os

from ansible_collections.pagefusion.core.daemon.pagefusiond.config import validate_config
from ansible_collections.pagefusion.core.daemon.pagefusiond.controller import Controller
from ansible_collections.pagefusion.core.daemon.pagefusiond.watcher import ProcessWatcher
from ansible_collections.pagefusion.core.plugins.module_utils import _ksm

PAGE = 4096
KSMD_PID = 77

TREE = {
    'advisor_max_cpu': '70', 'advisor_max_pages_to_scan': '30000', 'advisor_min_pages_to_scan': '500',
    'advisor_mode': '[none] scan-time', 'advisor_target_scan_time': '200', 'full_scans': '0', 'general_profit': '0',
    'ksm_zero_pages': '0', 'max_page_sharing': '256', 'merge_across_nodes': '1', 'pages_scanned': '0', 'pages_shared': '0',
    'pages_sharing': '0', 'pages_skipped': '0', 'pages_to_scan': '100', 'pages_unshared': '0', 'pages_volatile': '0',
    'run': '0', 'sleep_millisecs': '20', 'smart_scan': '1', 'stable_node_chains': '0',
    'stable_node_chains_prune_millisecs': '2000', 'stable_node_dups': '0', 'use_zero_pages': '0',
}


class Clock(object):
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def wall(self):
        return 1700000000.0 + self.now


class SimProcess(object):
    def __init__(self, pid, shared, zero, unique, mergeable=True):
        self.pid = pid
        self.shared = shared
        self.zero = zero
        self.unique = unique
        self.mergeable = mergeable
        self.covered = 0.0  # pages ksmd has looked at since the process appeared

    @property
    def pages(self):
        return self.shared + self.zero + self.unique

    def passes(self):
        return self.covered / self.pages if self.pages else 0.0


class SimKernel(object):
    """A fake KSM that scans and merges in simulated time (see the module docstring)."""

    def __init__(self, tmp_path, cost_per_page=4.5e-6, overrides=None):
        self.root = str(tmp_path / 'ksm')
        self.proc = str(tmp_path / 'proc')
        os.makedirs(self.root)
        os.makedirs(os.path.join(self.proc, 'self'))
        with open(os.path.join(self.proc, 'self', 'ksm_stat'), 'w') as handle:
            handle.write('ksm_rmap_items 0\nksm_mergeable: no\n')
        values = dict(TREE)
        values.update(overrides or {})
        for name, value in values.items():
            self._put(name, value)
        self.cost = cost_per_page
        self.cpu = 5.0
        self.procs = {}
        self.writes = []
        self.last_pid = 300
        self._write_ksmd()
        self._write_counters()

    def _put(self, name, value):
        with open(os.path.join(self.root, name), 'w') as handle:
            handle.write('%s\n' % value)

    def knob(self, name):
        return _ksm.parse_value(name, open(os.path.join(self.root, name)).read())

    def _write_ksmd(self):
        base = os.path.join(self.proc, str(KSMD_PID))
        if not os.path.isdir(base):
            os.makedirs(base)
        with open(os.path.join(base, 'comm'), 'w') as handle:
            handle.write('ksmd\n')
        with open(os.path.join(base, 'stat'), 'w') as handle:
            handle.write('%d (ksmd) S 2 0 0 0 -1 %d 0 0 0 0 0 0 0 0 25 5 1 0 0 0 0\n' % (KSMD_PID, _ksm.PF_KTHREAD))
        with open(os.path.join(base, 'schedstat'), 'w') as handle:
            handle.write('%d 0 0\n' % int(self.cpu * 1e9))

    def _write_counters(self):
        """/proc/loadavg's last pid and /proc/meminfo's AnonPages (the processes' pages plus a base)."""
        with open(os.path.join(self.proc, 'loadavg'), 'w') as handle:
            handle.write('0.08 0.03 0.01 1/%d %d\n' % (120 + len(self.procs), self.last_pid))
        anon_kib = 200000 + sum(p.pages * PAGE // 1024 for p in self.procs.values())
        with open(os.path.join(self.proc, 'meminfo'), 'w') as handle:
            handle.write('MemTotal:       24000000 kB\nMemFree:        20000000 kB\nMemAvailable:   21000000 kB\n'
                         'Buffers:           10000 kB\nCached:           500000 kB\nSwapCached:            0 kB\n'
                         'Active:          300000 kB\nInactive:        300000 kB\nAnonPages:    %8d kB\n'
                         'Mapped:          100000 kB\n' % anon_kib)

    def fork(self, pid=None):
        """A process was created (the last pid moves); returns its pid."""
        self.last_pid = pid if pid is not None else self.last_pid + 1
        self._write_counters()
        return self.last_pid

    def sysfs(self):
        ksm = _ksm.KsmSysfs(root=self.root, proc_root=self.proc, page_size=PAGE)
        raw = ksm._write_raw

        def recording(name, text):
            self.writes.append((name, text))
            raw(name, text)
        ksm._write_raw = recording
        return ksm

    # -- processes ---------------------------------------------------------------------------

    def add_process(self, pid, mib=256, shared=0.45, zero=0.25, mergeable=True):
        pages = mib * 256
        proc = SimProcess(pid, int(pages * shared), int(pages * zero), pages - int(pages * shared) - int(pages * zero), mergeable)
        self.procs[pid] = proc
        os.makedirs(os.path.join(self.proc, str(pid)))
        self._write_proc(proc)
        self.fork(pid)
        return proc

    def remove_process(self, pid):
        del self.procs[pid]
        base = os.path.join(self.proc, str(pid))
        for name in os.listdir(base):
            os.unlink(os.path.join(base, name))
        os.rmdir(base)
        self._write_counters()

    def _merged(self, proc):
        """(merging, zero) pages of one process from how often ksmd has seen its pages."""
        passes = proc.passes()
        twice = max(0.0, min(1.0, passes - 1.0))
        once = max(0.0, min(1.0, passes))
        uzp = self.knob('use_zero_pages') == 1
        return int(proc.shared * twice), int(proc.zero * (once if uzp else twice)), uzp

    def _write_proc(self, proc):
        base = os.path.join(self.proc, str(proc.pid))
        merging, zero, uzp = self._merged(proc) if proc.mergeable else (0, 0, False)
        rmap = int(min(proc.covered, proc.pages)) if proc.mergeable else 0
        with open(os.path.join(base, 'ksm_stat'), 'w') as handle:
            values = (rmap, zero if uzp else 0, merging + (0 if uzp else zero), 'yes' if proc.mergeable else 'no')
            handle.write('ksm_rmap_items %d\nksm_zero_pages %d\nksm_merging_pages %d\nksm_process_profit 0\n'
                         'ksm_merge_any: no\nksm_mergeable: %s\n' % values)
        with open(os.path.join(base, 'statm'), 'w') as handle:
            handle.write('%d %d 100 10 0 %d 0\n' % (proc.pages + 5000, proc.pages + 2000, proc.pages))
        with open(os.path.join(base, 'smaps'), 'w') as handle:
            handle.write('55d0c0000000-55d0c0021000 r--p 00000000 fe:00 1 /usr/bin/sim\nRss:                 132 kB\nVmFlags: rd mr mw me\n')
            handle.write('7f0000000000-7f0010000000 rw-p 00000000 00:00 0\nSize:  %d kB\nRss:  %d kB\nAnonymous: %d kB\n'
                         'VmFlags: rd wr mr mw me ac %s\n' % (proc.pages * 4, proc.pages * 4, proc.pages * 4, 'mg' if proc.mergeable else ''))
            handle.write('7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]\nRss:  8000 kB\nVmFlags: rd wr mr mw me gd ac\n')

    def achievable(self, uzp=True):
        procs = [p for p in self.procs.values() if p.mergeable]
        if not procs:
            return 0
        return sum(p.shared for p in procs) - max(p.shared for p in procs) + sum(p.zero for p in procs) - (0 if uzp else 1)

    # -- time --------------------------------------------------------------------------------

    def advance(self, seconds):
        run = self.knob('run')
        procs = [p for p in self.procs.values() if p.mergeable]
        total = sum(p.pages for p in procs)
        counters = dict((k, self.knob(k) if os.path.exists(os.path.join(self.root, k)) else 0) for k in ('full_scans', 'pages_scanned'))
        if run == 2:
            for proc in procs:
                proc.covered = 0.0
            self._put('run', 0)
        elif run == 1 and total:
            batch = self.knob('pages_to_scan')
            sleep = self.knob('sleep_millisecs') / 1000.0
            batch_time = batch * self.cost + max(sleep, 0.001)
            scanned = batch / batch_time * seconds
            self.cpu += scanned * self.cost
            self.position = getattr(self, 'position', 0.0) + scanned
            counters['full_scans'] += int(self.position // total)
            self.position %= total
            counters['pages_scanned'] += int(scanned)
            for proc in procs:
                proc.covered += scanned * proc.pages / total
        merged = [self._merged(p) for p in procs]
        shared_parts = [m[0] for m in merged]
        sharing = sum(shared_parts) - (max(shared_parts) if shared_parts else 0)
        uzp = self.knob('use_zero_pages') == 1
        zero = sum(m[1] for m in merged)
        rmap = sum(int(min(p.covered, p.pages)) for p in procs)
        self._put('full_scans', counters['full_scans'])
        self._put('pages_scanned', counters['pages_scanned'])
        self._put('pages_shared', max(shared_parts) + (0 if uzp or not zero else 1) if shared_parts else 0)
        self._put('pages_sharing', sharing + (0 if uzp else max(0, zero - 1)))
        self._put('ksm_zero_pages', zero if uzp else 0)
        self._put('pages_unshared', max(0, rmap - sharing - zero))
        for proc in self.procs.values():
            self._write_proc(proc)
        self._write_ksmd()
        self._write_counters()

    def saved(self):
        return self.knob('pages_sharing') + self.knob('ksm_zero_pages')


def make_config(**overrides):
    raw = {'libvirt_uri': '', 'metrics_path': '', 'process_connector': 'false'}  # the real connector: test_procevents
    raw.update(overrides)
    return validate_config(raw)


class Harness(object):
    """A controller on a SimKernel with a fake clock; ``run(seconds)`` steps like the daemon loop."""

    def __init__(self, tmp_path, config=None, kernel_class=None, **kernel_args):
        self.kernel = (kernel_class or SimKernel)(tmp_path, **kernel_args)
        self.clock = Clock()
        self.logs = []
        self.ksm = self.kernel.sysfs()
        self.config = config or make_config(state_path=str(tmp_path / 'run' / 'state.json'))
        self.controller = Controller(self.config, self.ksm, ProcessWatcher(self.kernel.proc, PAGE),
                                     clock=self.clock, wall=self.clock.wall, log=self.logs.append,
                                     snapshot_path=str(tmp_path / 'snapshot.json'))
        self.history = []

    def step(self):
        state = self.controller.step()
        self.history.append((self.clock.now, state['phase'], self.kernel.saved(), dict(state['knobs']), state['ksmd_cpu_percent']))
        return state

    def next_step(self):
        """The daemon's next step after the cheap look of its pause (which wakes it when it spotted something)."""
        reason = self.controller.spot()
        if reason:
            self.controller.wake(reason)
        return self.step()

    def interval(self):
        return self.config['boost_interval'] if self.controller.phase in ('boost', 'settle') else self.config['interval']

    def run(self, seconds, until=None):
        end = self.clock.now + seconds
        state = self.controller.state
        while self.clock.now < end:
            state = self.step()
            if until is not None and until(state):
                return state
            self.pause()
        return state

    def pause(self):
        """The interval, then (idle and steady phases) the watcher's cheap look, as the daemon's pause takes it
        (the daemon looks every ``watch_interval`` within the interval; test_service drives that timing)."""
        dt = self.interval()
        self.kernel.advance(dt)
        self.clock.now += dt
        if self.config['watch_interval'] and self.controller.phase in ('idle', 'steady'):
            reason = self.controller.spot()
            if reason:
                self.controller.wake(reason)

    def first_time(self, predicate):
        for now, phase, saved, knobs, cpu in self.history:
            if predicate(phase, saved, knobs):
                return now
        return None


class NeverWoken(object):
    """Stands in for the wake event: every wait times out at once and counts."""

    def __init__(self):
        self.waits = []

    def wait(self, timeout):
        self.waits.append(timeout)
        return False

    def set(self):
        pass

    def clear(self):
        pass
