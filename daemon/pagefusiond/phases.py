# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The phase machine of pagefusiond: an observation in, the next phase and its reason out.

Pure: no I/O, no clock. The controller observes KSM and the processes, hands the machine an
:class:`Observation`, and acts on the :class:`Decision` (logs the transitions, resets the rate
model when the phase changed). The machine keeps the little it needs between steps: the phase,
when the boost started, the full-scan count and saving at the last pass, and the mergeable
pages that growth is measured from.
"""

from __future__ import annotations

from collections import namedtuple

PHASES = ('idle', 'boost', 'settle', 'steady', 'stopped')

MIB = 1048576

Observation = namedtuple('Observation', [
    'now',        # monotonic seconds of the step
    'trusted',    # the watcher sees every mergeable process (ksm_stat with ksm_mergeable): "none" means none
    'processes',  # number of processes with mergeable memory
    'basis',      # mergeable pages that growth is measured on (the processes' estimate, or ksmd's rmap items)
    'estimate',   # mergeable pages (the larger of the processes' estimate and ksmd's rmap items)
    'saved',      # pages KSM saves now
    'full_scans',  # KSM full_scans
    'new',        # pids of processes that appeared with mergeable memory
    'wake',       # why something woke the daemon (a libvirt event, a spotted process), or None
    'scanned',    # KSM pages_scanned (None on kernels before 6.9 that do not count it)
], defaults=(None,))

# Each transition is (phase before, phase after, reason); ``note`` is a debug line, or None.
Decision = namedtuple('Decision', ['phase', 'transitions', 'note'])


class PhaseMachine(object):
    """Picks the phase from one observation at a time (see the package docstring for the phases).

    ``config`` holds the daemon's keys (``new_memory_threshold_mib``, ``boost_min_passes``,
    ``settle_passes``, ``settle_threshold_percent``, ``boost_max_seconds``); ``page_size`` turns
    MiB into pages.
    """

    def __init__(self, page_size, phase=None):
        self.page_size = page_size
        self.phase = phase
        self.boost_started = None
        self.boost_scans = None
        self.pass_scans = None
        self.pass_saved = None
        self.pass_scanned = None  # pages_scanned where the part of a pass that settle looks at began
        self.quiet_passes = 0
        self.known_pages = 0
        self.boosts = 0
        self._transitions = []
        self._note = None

    def threshold_pages(self, config):
        """Growth of mergeable memory, in pages, that starts a boost."""
        return int(config['new_memory_threshold_mib'] * MIB // self.page_size)

    def decide(self, obs, config):
        """The next phase for ``obs`` (an :class:`Observation`); returns a :class:`Decision`."""
        self._transitions = []
        self._note = None
        grown = obs.basis - self.known_pages
        if obs.trusted and not obs.processes:
            self.known_pages = 0
            self._enter('idle', 'no process has mergeable memory', obs.now)
        elif self.phase in (None, 'idle') or grown >= max(self.threshold_pages(config), 1) or \
                (obs.new and self.phase == 'steady'):
            # A new mergeable process boosts however little it holds yet: ksmd's kernel puts it behind its scan
            # cursor, so the sooner the pass over the others runs, the sooner ksmd reaches the newcomer's pages.
            self._boost(obs, grown, max(self.threshold_pages(config), 1))
        else:
            if obs.basis < self.known_pages:
                self.known_pages = obs.basis  # memory went away: measure growth from here
            self._follow_passes(obs, config)
            if self.phase in ('boost', 'settle') and obs.now - self.boost_started > config['boost_max_seconds']:
                self._enter('steady', 'boost_max_seconds (%gs) reached' % config['boost_max_seconds'], obs.now)
        return Decision(self.phase, tuple(self._transitions), self._note)

    def _enter(self, phase, reason, now):
        if phase == self.phase:
            return
        if phase == 'boost' or (phase == 'settle' and self.phase != 'boost'):
            self.boost_started = now
        self._transitions.append((self.phase, phase, reason))
        self.phase = phase

    def _boost(self, obs, grown, threshold):
        """New mergeable memory (or the first look at it): boost, counting from this full scan."""
        if self.phase is None:
            why = 'pagefusiond started with mergeable memory present'
        elif self.phase == 'idle':
            why = 'mergeable memory appeared'
        elif grown < threshold:
            why = 'a new process has mergeable memory'
        else:
            why = 'mergeable memory grew by %d MiB' % (grown * self.page_size // MIB)
        if obs.new:
            why += ' (new mergeable processes: %s)' % ', '.join(str(p) for p in sorted(obs.new)[:10])
        if obs.wake:
            why += ' (%s)' % obs.wake
        if self.phase != 'boost':
            self.boosts += 1
        self._enter('boost', why, obs.now)
        self.boost_scans = obs.full_scans
        self.known_pages = obs.basis

    def _follow_passes(self, obs, config):
        """Boost ends after ``boost_min_passes`` full scans; settle after ``settle_passes`` quiet ones.

        Where KSM counts ``pages_scanned``, a settle pass is quiet as soon as ksmd has scanned
        ``settle_scan_percent`` of the mergeable pages without the saving growing (by more than
        ``settle_threshold_percent`` scaled to that part): the boost's last pass merged what was
        there to merge, and confirming it over a whole pass would cost a whole pass of ksmd's CPU.
        """
        scans, saved = obs.full_scans, obs.saved
        if self.phase == 'boost' and scans - self.boost_scans >= config['boost_min_passes']:
            self._enter('settle', '%d full scans done' % (scans - self.boost_scans), obs.now)
            self.pass_scans, self.pass_saved, self.pass_scanned, self.quiet_passes = scans, saved, obs.scanned, 0
            return
        if self.phase != 'settle':
            return
        part = self._settle_part(obs, config)
        if scans <= self.pass_scans and part is None:
            return
        share = 1.0 if scans > self.pass_scans else part
        growth = saved - self.pass_saved
        quiet = growth < max(1.0, share * obs.estimate * config['settle_threshold_percent'] / 100.0)
        self.quiet_passes = self.quiet_passes + 1 if quiet else 0
        what = 'a full scan' if scans > self.pass_scans else '%d%% of a pass' % round(share * 100)
        self._note = 'settle: %s added %d saved pages (quiet passes: %d)' % (what, growth, self.quiet_passes)
        self.pass_scans, self.pass_saved, self.pass_scanned = scans, saved, obs.scanned
        if self.quiet_passes >= config['settle_passes']:
            self._enter('steady', '%s stopped finding new sharing (%d pages saved)' % (
                'full scans' if what == 'a full scan' else 'ksmd scanned ' + what + ' and', saved), obs.now)

    def _settle_part(self, obs, config):
        """The share of a pass scanned since the settle's look began, once it reached ``settle_scan_percent``."""
        wanted = config.get('settle_scan_percent', 100) / 100.0
        if wanted >= 1.0 or obs.scanned is None or self.pass_scanned is None or obs.estimate <= 0:
            return None
        part = (obs.scanned - self.pass_scanned) / float(obs.estimate)
        return part if part >= wanted else None
