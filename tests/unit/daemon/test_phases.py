# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The pure phase machine, driven by a table: a machine's state and one observation in, the phase and reason out."""

from __future__ import annotations

import pytest

from ansible_collections.pagefusion.core.daemon.pagefusiond.config import DEFAULTS
from ansible_collections.pagefusion.core.daemon.pagefusiond.phases import Observation, PhaseMachine

PAGE = 4096
MIB_PAGES = 256  # pages in one MiB
GUEST = 64 * 1024  # pages of a 256 MiB guest


def machine(phase=None, **state):
    """A phase machine in ``phase`` with the given state (``known_pages``, ``boost_scans``, ...)."""
    pm = PhaseMachine(PAGE, phase)
    pm.known_pages = GUEST if phase else 0
    for name, value in state.items():
        setattr(pm, name, value)
    return pm


def observe(**fields):
    """An observation of one 256 MiB guest at t=100 s, full scan 0, with ``fields`` changed."""
    values = dict(now=100.0, trusted=True, processes=1, basis=GUEST, estimate=GUEST, saved=0, full_scans=0, new=(), wake=None)
    values.update(fields)
    return Observation(**values)


BOOSTING = dict(boost_started=90.0, boost_scans=10)
SETTLING = dict(boost_started=90.0, boost_scans=10, pass_scans=12, pass_saved=1000, quiet_passes=0)

# (what, machine, observation, phase after, reason of the transition or None when the phase stays)
TABLE = [
    ('nothing mergeable at start', machine(), observe(processes=0, basis=0, estimate=0),
     'idle', 'no process has mergeable memory'),
    ('mergeable memory at start', machine(), observe(),
     'boost', 'pagefusiond started with mergeable memory present'),
    ('a guest appears while idle', machine('idle', known_pages=0), observe(new=(101,)),
     'boost', 'mergeable memory appeared (new mergeable processes: 101)'),
    ('new processes are listed sorted, ten at most', machine('idle', known_pages=0), observe(new=tuple(range(112, 100, -1))),
     'boost', 'mergeable memory appeared (new mergeable processes: 101, 102, 103, 104, 105, 106, 107, 108, 109, 110)'),
    ('a libvirt event while idle', machine('idle', known_pages=0), observe(wake='libvirt domain vm1 started'),
     'boost', 'mergeable memory appeared (libvirt domain vm1 started)'),
    ('growth by new_memory_threshold_mib in steady', machine('steady'), observe(basis=GUEST + 32 * MIB_PAGES),
     'boost', 'mergeable memory grew by 32 MiB'),
    ('growth just below the threshold in steady', machine('steady'), observe(basis=GUEST + 32 * MIB_PAGES - 1),
     'steady', None),
    ('a new mergeable process in steady, however small', machine('steady'), observe(basis=GUEST + 1, new=(202,)),
     'boost', 'a new process has mergeable memory (new mergeable processes: 202)'),
    ('the last guest went away in steady', machine('steady'), observe(processes=0, basis=0, estimate=0),
     'idle', 'no process has mergeable memory'),
    ('the last guest went away while boosting', machine('boost', **BOOSTING), observe(processes=0, basis=0, estimate=0, full_scans=11),
     'idle', 'no process has mergeable memory'),
    ('no process seen, but ksm_stat lacks ksm_mergeable', machine('steady'), observe(trusted=False, processes=0, basis=0),
     'steady', None),
    ('boost before boost_min_passes full scans', machine('boost', **BOOSTING), observe(full_scans=11),
     'boost', None),
    ('boost after boost_min_passes full scans', machine('boost', **BOOSTING), observe(full_scans=12),
     'settle', '2 full scans done'),
    ('settle: no new full scan yet', machine('settle', **SETTLING), observe(full_scans=12, saved=1000),
     'settle', None),
    ('settle: a full scan that still found sharing', machine('settle', **SETTLING), observe(full_scans=13, saved=1000 + 656),
     'settle', None),
    ('settle: a quiet full scan (< 1 % of the mergeable pages)', machine('settle', **SETTLING), observe(full_scans=13, saved=1000 + 655),
     'steady', 'full scans stopped finding new sharing (1655 pages saved)'),
    # where KSM counts pages_scanned: a quarter of a pass (settle_scan_percent) without growth is enough
    ('settle: a fifth of a pass scanned, nothing new yet', machine('settle', pass_scanned=50000, **SETTLING),
     observe(full_scans=12, saved=1000, scanned=50000 + GUEST // 5), 'settle', None),
    ('settle: a quarter of a pass scanned, quiet (< 1 % of a quarter)', machine('settle', pass_scanned=50000, **SETTLING),
     observe(full_scans=12, saved=1000 + 163, scanned=50000 + GUEST // 4),
     'steady', 'ksmd scanned 25% of a pass and stopped finding new sharing (1163 pages saved)'),
    ('settle: a quarter of a pass that still found sharing', machine('settle', pass_scanned=50000, **SETTLING),
     observe(full_scans=12, saved=1000 + 164, scanned=50000 + GUEST // 4), 'settle', None),
    ('settle: settle_scan_percent needs pages_scanned (a kernel before 6.9)', machine('settle', pass_scanned=None, **SETTLING),
     observe(full_scans=12, saved=1000, scanned=None), 'settle', None),
    ('boost_max_seconds reached while boosting', machine('boost', **BOOSTING), observe(now=90.0 + 120.5, full_scans=11),
     'steady', 'boost_max_seconds (120s) reached'),
    ('boost_max_seconds not yet reached', machine('boost', **BOOSTING), observe(now=90.0 + 120.0, full_scans=11),
     'boost', None),
    ('boost_max_seconds reached in the step that settles', machine('boost', **BOOSTING), observe(now=90.0 + 121, full_scans=12),
     'steady', 'boost_max_seconds (120s) reached'),
    ('more growth while boosting: still boost', machine('boost', **BOOSTING), observe(basis=2 * GUEST, full_scans=12),
     'boost', None),
]


@pytest.mark.parametrize('what, pm, obs, phase, reason', TABLE, ids=[row[0] for row in TABLE])
def test_phase_table(what, pm, obs, phase, reason):
    decision = pm.decide(obs, DEFAULTS)
    assert decision.phase == phase == pm.phase
    assert (decision.transitions[-1][2] if decision.transitions else None) == reason


def test_each_transition_of_a_step_is_reported_in_order():
    pm = machine('boost', **BOOSTING)
    decision = pm.decide(observe(now=90.0 + 121, full_scans=12), DEFAULTS)
    assert decision.transitions == (('boost', 'settle', '2 full scans done'),
                                    ('settle', 'steady', 'boost_max_seconds (120s) reached'))


def test_a_boost_counts_once_and_restarts_its_full_scan_count_on_more_growth():
    pm = machine('idle', known_pages=0)
    pm.decide(observe(full_scans=5), DEFAULTS)
    assert (pm.phase, pm.boosts, pm.boost_scans, pm.boost_started, pm.known_pages) == ('boost', 1, 5, 100.0, GUEST)
    pm.decide(observe(now=101.0, basis=2 * GUEST, full_scans=6), DEFAULTS)
    assert (pm.phase, pm.boosts, pm.boost_scans, pm.boost_started, pm.known_pages) == ('boost', 1, 6, 100.0, 2 * GUEST)


def test_settle_counts_quiet_passes_and_notes_each_one():
    config = dict(DEFAULTS, settle_passes=2)
    pm = machine('settle', **SETTLING)
    decision = pm.decide(observe(full_scans=13, saved=1010), config)
    assert (decision.phase, pm.quiet_passes, pm.pass_scans, pm.pass_saved) == ('settle', 1, 13, 1010)
    assert decision.note == 'settle: a full scan added 10 saved pages (quiet passes: 1)'
    decision = pm.decide(observe(full_scans=14, saved=5000), config)
    assert (decision.phase, pm.quiet_passes) == ('settle', 0)
    pm.decide(observe(full_scans=15, saved=5000), config)
    decision = pm.decide(observe(full_scans=16, saved=5000), config)
    assert decision.phase == 'steady' and decision.transitions[0][2] == 'full scans stopped finding new sharing (5000 pages saved)'


def test_a_partial_settle_look_that_found_sharing_starts_the_next_part_from_there():
    pm = machine('settle', pass_scanned=0, **SETTLING)
    decision = pm.decide(observe(full_scans=12, saved=5000, scanned=GUEST // 4), DEFAULTS)
    assert (decision.phase, pm.quiet_passes, pm.pass_saved, pm.pass_scanned) == ('settle', 0, 5000, GUEST // 4)
    assert decision.note == 'settle: 25% of a pass added 4000 saved pages (quiet passes: 0)'
    assert pm.decide(observe(full_scans=12, saved=5000, scanned=GUEST // 2 - 1), DEFAULTS).phase == 'settle'
    assert pm.decide(observe(full_scans=12, saved=5000, scanned=GUEST // 2), DEFAULTS).phase == 'steady'
    whole = dict(DEFAULTS, settle_scan_percent=100.0)  # the whole pass, as before
    pm = machine('settle', pass_scanned=0, **SETTLING)
    assert pm.decide(observe(full_scans=12, saved=1000, scanned=GUEST - 1), whole).phase == 'settle'
    assert pm.decide(observe(full_scans=13, saved=1000, scanned=GUEST), whole).phase == 'steady'


def test_memory_that_went_away_lowers_the_growth_basis():
    pm = machine('steady')
    pm.decide(observe(basis=GUEST // 2), DEFAULTS)
    assert pm.known_pages == GUEST // 2
    decision = pm.decide(observe(basis=GUEST // 2 + 32 * MIB_PAGES), DEFAULTS)
    assert decision.phase == 'boost'
