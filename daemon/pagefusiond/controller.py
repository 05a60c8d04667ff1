# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""One control step of pagefusiond: observe, decide, plan, apply, report."""

from __future__ import annotations

import os
import time

from . import __version__
from .collection import _ksm
from .meter import KsmdMeter
from .phases import Observation, PhaseMachine
from .rates import RateModel
from .realsaving import SharingMonitor, steady_pass_seconds
from .snapshot import KnobSnapshot, knob_text
from .vms import QEMU_RUN_DIRS, VmDirectory, sharing_tenants
from .watcher import ProcessWatcher


def rmap_items(counters):
    """Pages ksmd tracks (its rmap items): shared + sharing + unshared + volatile."""
    return sum(counters.get(k, 0) for k in ('pages_shared', 'pages_sharing', 'pages_unshared', 'pages_volatile'))


class Controller(object):
    """The decision logic: one :meth:`step` reads KSM and the processes, picks the phase, writes the knobs.

    ``ksm`` is a :class:`_ksm.KsmSysfs`; ``watcher`` a :class:`ProcessWatcher`; ``clock`` is
    monotonic seconds, ``wall`` epoch seconds, ``log`` a callable taking one message;
    ``snapshot_path`` where the host's own knobs are saved until they are restored (None: nowhere).
    The pieces: ``phases`` (:class:`PhaseMachine`), ``meter`` (:class:`KsmdMeter`), ``rates``
    (:class:`RateModel`), ``snapshot`` (:class:`KnobSnapshot`).
    """

    def __init__(self, config, ksm, watcher=None, clock=time.monotonic, wall=time.time, log=None, snapshot_path=None):
        self.config = config
        self.ksm = ksm
        self.watcher = watcher if watcher is not None else ProcessWatcher(ksm.proc_root, ksm.page_size,
                                                                          config['process_watch'])
        self.clock = clock
        self.wall = wall
        self.log = log or (lambda message: None)
        self.phases = PhaseMachine(ksm.page_size)
        self.meter = KsmdMeter(ksm)
        self.rates = RateModel()
        self.sharing = SharingMonitor(ksm.proc_root, ksm.page_size)  # broken sharing (steady rate), real saving
        self.steady_pass = config['steady_pass_seconds']
        self.snapshot = KnobSnapshot(ksm, snapshot_path, self.log, self.error_once, wall, config=lambda: self.config)
        # libvirt's status files describe the real /proc's processes only (not a test's /proc).
        self.vms = VmDirectory(ksm.proc_root, QEMU_RUN_DIRS if ksm.proc_root == _ksm.DEFAULT_PROC_ROOT else ())
        self.since = None
        self.wake_reason = None
        self.procs = None  # the last full look at the processes
        self.swept = None  # when it was taken (monotonic)
        self.watch_sources = []  # what wakes the daemon between steps (set by the service; in the state file)
        self.errors = set()
        self.last_error = None
        self.state = None
        self.started = wall()

    @property
    def phase(self):
        return self.phases.phase

    @phase.setter
    def phase(self, value):
        self.phases.phase = value

    # -- helpers -------------------------------------------------------------------------

    def error_once(self, message):
        """Log an error the first time it occurs (sysfs write errors repeat every step)."""
        self.last_error = message
        if message not in self.errors:
            self.errors.add(message)
            self.log('error: %s (logged once; pagefusiond keeps going)' % message)

    def debug(self, message):
        if self.config.get('log_level') == 'debug':
            self.log('debug: %s' % message)

    def wake(self, reason):
        """Something (a libvirt event, a spotted process) says new mergeable memory may be coming: look now."""
        self.wake_reason = reason

    def spot(self):
        """The watcher's cheap look for new mergeable memory (see :meth:`ProcessWatcher.spot`)."""
        spot = getattr(self.watcher, 'spot', None)
        if spot is None:
            return None
        return spot(self.phases.threshold_pages(self.config))

    # -- the step --------------------------------------------------------------------------

    def step(self):
        """One control step. Returns the state dict (also kept in ``self.state``)."""
        now = self.clock()
        try:
            data = self.ksm.read_all()
        except (_ksm.KsmError, IOError, OSError) as err:
            self.error_once('cannot read KSM: %s' % err)
            return self.state
        if self.snapshot.knobs is None:
            self.snapshot.take()
        observation, procs = self.observe(now, data)
        self.decide(observation)
        wanted = self.plan(data['knobs'], observation)
        knobs_after = self.apply(data['knobs'], wanted)
        if self.phase != 'boost':
            # After the knobs are written, and never while boosting: the sample walks every guest's page tables
            # (about 5 ms of CPU per GiB), which would delay the first boost write and compete with ksmd.
            self.sharing.sample_when_due(now, self.wall(), procs['processes'], self.config['real_saving_interval'],
                                         data['saved_pages'])
        return self.report(data, knobs_after, observation, procs)

    def observe(self, now, data):
        """Measure ksmd, scan the processes; returns the phase machine's :class:`Observation` and the scan."""
        counters = data['counters']
        self.meter.measure(now, counters)
        procs = self.look(now)
        self.sharing.measure_breaks(now)
        for note in sorted(getattr(self.watcher, 'notes', ())):
            self.error_once(note)
        tracked = rmap_items(counters)
        available = self.watcher.available
        observation = Observation(
            now=now,
            trusted=available and self.watcher.exact,
            processes=len(procs['processes']),
            # Growth of mergeable memory: the processes' estimate, or (no ksm_stat before Linux 6.1) ksmd's rmap items.
            basis=procs['pages'] if available else tracked,
            estimate=max(procs['pages'], tracked) if available else tracked,
            saved=data['saved_pages'],
            full_scans=counters.get('full_scans', 0),
            scanned=counters.get('pages_scanned'),
            new=tuple(procs['new']),
            wake=self.wake_reason,
        )
        self.wake_reason = None
        return observation, procs

    def look(self, now):
        """The processes: a full scan while boosting or settling, when woken, and every ``sweep_interval`` in the
        idle and steady phases; in between, the last scan (the cheap looks of :meth:`spot` wake the daemon when
        new mergeable memory appears, so a steady host does not read every process's ksm_stat each step)."""
        due = (self.procs is None or self.wake_reason is not None or self.phase not in ('idle', 'steady')
               or now - self.swept >= self.config['sweep_interval']
               or not (self.watcher.available and self.watcher.exact))  # only a scan sees processes there
        if due:
            self.procs, self.swept = self.watcher.scan(), now
            return self.procs
        return dict(self.procs, new=[])

    def decide(self, observation):
        """Run the phase machine; log its transitions and start the rate model afresh on each."""
        decision = self.phases.decide(observation, self.config)
        if decision.note:
            self.debug(decision.note)
        for before, after, reason in decision.transitions:
            self.log('phase %s -> %s: %s' % (before or 'start', after, reason))
            self.since = self.wall()
            self.rates.new_phase()
        return decision

    def plan(self, knobs, observation):
        """The knob values the current phase wants."""
        self.steady_pass = steady_pass_seconds(self.config, self.sharing.breaks_per_second, observation.saved)
        return self.rates.wanted_knobs(self.config, self.phase, knobs, observation.estimate, self.meter, self.steady_pass)

    def apply(self, knobs, wanted):
        """Write what differs between ``knobs`` and ``wanted``; returns the knobs as they are afterwards."""
        try:
            changes = _ksm.plan_changes(knobs, wanted, self.ksm.root)
            if changes:
                self.ksm.apply(changes)
                self.debug('wrote %s' % knob_text(dict((k, v[1]) for k, v in changes.items())))
            return _ksm.predict_knobs(knobs, changes)
        except _ksm.KsmError as err:
            self.error_once(str(err))
            try:
                return self.ksm.read_knobs()
            except (_ksm.KsmError, IOError, OSError):
                return dict(knobs)

    def report(self, data, knobs, observation, procs):
        """Keep and return the state dict of this step."""
        self.state = self.make_state(data, knobs, observation.estimate, procs)
        self.state.update(self.sharing.state_fields(self.steady_pass))
        meter = self.meter
        self.debug('step: phase=%s pages_to_scan=%s sleep_millisecs=%s ksmd_cpu=%s%% cost/page=%s saved=%d full_scans=%d estimate=%d' % (
            self.phase, knobs.get('pages_to_scan'), knobs.get('sleep_millisecs'), self.state['ksmd_cpu_percent'],
            '%.2gs' % meter.cpu_per_page if meter.cpu_per_page else '?', observation.saved, observation.full_scans,
            observation.estimate))
        return self.state

    def make_state(self, data, knobs, estimate, procs):
        size = self.ksm.page_size
        cpu_percent, cpu_seconds = self.meter.cpu_percent, self.meter.last_cpu
        vms = self.vms.describe(procs['processes'], size)
        return {
            'phase': self.phase,
            'since': self.since,
            'updated': self.wall(),
            'started': self.started,
            'pid': os.getpid(),
            'version': __version__,
            'knobs': knobs,
            'counters': data['counters'],
            'page_size': size,
            'saved_pages': data['saved_pages'],
            'saved_bytes': data['saved_bytes'],
            'shared_bytes': data['shared_bytes'],
            'ksmd_cpu_percent': None if cpu_percent is None else round(cpu_percent, 3),
            'ksmd_cpu_seconds': None if cpu_seconds is None else round(cpu_seconds, 3),
            'mergeable_pages_estimate': estimate,
            'mergeable_bytes_estimate': estimate * size,
            'mergeable_processes': len(procs['processes']),
            'boosts': self.phases.boosts,
            'watch_sources': list(self.watch_sources),
            'vms': vms,
            'sharing_tenants': sharing_tenants(vms),
            'daemon_cpu_seconds': round(sum(os.times()[:2]), 3),
            'last_error': self.last_error,
            'config': self.config,
        }

    def stopped_state(self):
        state = dict(self.state or {'config': self.config, 'pid': os.getpid(), 'version': __version__})
        state['phase'] = 'stopped'
        state['since'] = state['updated'] = self.wall()
        try:
            state['knobs'] = self.ksm.read_knobs()
        except (_ksm.KsmError, IOError, OSError):
            pass
        return state
