# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Unit tests of the pure figures of the KSM benchmark: crossings, windows, B1 figures, censored medians, ratios.

Every expectation is computed by hand from the samples (comments show the arithmetic).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.pagefusion.core.benchmarks.ksmbench import measure
from ansible_collections.pagefusion.core.benchmarks.ksmbench.measure import Censored

PAGE_SIZE = 4096
PAGES_PER_GIB = 262144  # 2**30 / 4096


def row(t, saved, fraction, cpu):
    """A Trace row: t, saved pages, saved fraction, ksmd CPU seconds, pages_to_scan, sleep_millisecs, run."""
    return [t, saved, fraction, cpu, 100, 20, 1]


# Achievable saving 327680 pages (1.25 GiB); saved/achievable gives the fractions.
CONVERGING = [
    row(0.0, 0, 0.0, 0.0),
    row(10.0, 131072, 0.4, 1.0),
    row(20.0, 262144, 0.8, 3.0),
    row(30.0, 311296, 0.95, 4.0),
    row(40.0, 327680, 1.0, 4.5),
]


# crossing

def test_crossing_interpolates_between_the_two_samples_around_the_share():
    # 0.5 lies between 0.4 (t=10, cpu=1) and 0.8 (t=20, cpu=3): part = 0.1 / 0.4 = 0.25
    assert measure.crossing(CONVERGING, 0.5) == pytest.approx((12.5, 1.5))
    # 0.9 lies between 0.8 (t=20, cpu=3) and 0.95 (t=30, cpu=4): part = 0.1 / 0.15 = 2/3
    assert measure.crossing(CONVERGING, 0.9) == pytest.approx((20.0 + 20.0 / 3, 3.0 + 2.0 / 3))


def test_crossing_exactly_at_a_sample_gives_that_sample():
    assert measure.crossing(CONVERGING, 0.8) == pytest.approx((20.0, 3.0))
    assert measure.crossing(CONVERGING, 1.0) == pytest.approx((40.0, 4.5))


def test_crossing_at_the_first_sample_is_not_interpolated():
    samples = [row(0.5, 300000, 0.92, 0.01), row(1.5, 327680, 1.0, 0.02)]
    assert measure.crossing(samples, 0.5) == (0.5, 0.01)
    assert measure.crossing(samples, 0.9) == (0.5, 0.01)
    # a share of 0 is reached by any first sample, even one with nothing saved
    assert measure.crossing(CONVERGING, 0.0) == (0.0, 0.0)


def test_crossing_never_reached_or_no_samples_is_none():
    assert measure.crossing(CONVERGING, 1.01) is None
    assert measure.crossing(CONVERGING[:3], 0.9) is None
    assert measure.crossing([], 0.5) is None


def test_crossing_interpolates_from_the_sample_just_before_after_a_dip():
    # 0.45 at t=5, a dip to 0.3 at t=10, 0.7 at t=20: 0.5 is crossed between t=10 and t=20, part = 0.2 / 0.4
    samples = [row(0.0, 0, 0.2, 0.0), row(5.0, 0, 0.45, 1.0), row(10.0, 0, 0.3, 2.0), row(20.0, 0, 0.7, 4.0)]
    assert measure.crossing(samples, 0.5) == pytest.approx((15.0, 3.0))


# window

WINDOW_SAMPLES = [
    row(0.0, 0, 0.0, 0.0),
    row(2.0, 0, 0.5, 0.5),
    row(4.0, 0, 0.5, 1.0),
    row(10.0, 0, 1.0, 2.5),
    row(12.0, 0, 1.0, 3.0),
]


def test_window_time_weighted_mean_and_cpu_percent():
    # rows t=2, 4, 10: area 2 * (0.5 + 0.5) / 2 + 6 * (0.5 + 1.0) / 2 = 1.0 + 4.5 = 5.5 over 8 s
    # (the plain mean of the three samples would be 0.667); CPU 2.0 s over 8 s = 25 %
    expected = {'cpu_percent': 25.0, 'saved_fraction': 0.6875, 'seconds': 8.0, 'cpu_seconds': 2.0,
                'daemon_cpu_seconds': 0.0, 'daemon_cpu_percent': 0.0, 'total_cpu_percent': 25.0}
    assert measure.window(WINDOW_SAMPLES, 2.0, 10.0) == pytest.approx(expected)
    # bounds between samples select the same rows
    assert measure.window(WINDOW_SAMPLES, 1.0, 11.0) == pytest.approx(expected)


def test_window_over_every_sample():
    # area 2 * 0.25 + 2 * 0.5 + 6 * 0.75 + 2 * 1.0 = 8.0 over 12 s; CPU 3 s over 12 s
    expected = {'cpu_percent': 25.0, 'saved_fraction': 8.0 / 12.0, 'seconds': 12.0, 'cpu_seconds': 3.0,
                'daemon_cpu_seconds': 0.0, 'daemon_cpu_percent': 0.0, 'total_cpu_percent': 25.0}
    assert measure.window(WINDOW_SAMPLES, 0.0, 12.0) == pytest.approx(expected)
    assert measure.window(WINDOW_SAMPLES, -5.0, 50.0) == pytest.approx(expected)


def test_window_needs_two_samples_at_different_times():
    assert measure.window([], 0.0, 10.0) is None
    assert measure.window(WINDOW_SAMPLES, 5.0, 11.0) is None  # only t=10
    assert measure.window(WINDOW_SAMPLES, 13.0, 20.0) is None  # none
    assert measure.window([row(3.0, 0, 0.1, 0.0), row(3.0, 0, 0.2, 0.1)], 0.0, 10.0) is None


# convergence_figures

def test_convergence_figures_of_a_run_reaching_t90():
    figures = measure.convergence_figures(CONVERGING, PAGE_SIZE, 60)
    # T90 at t=26.67 with 3.667 CPU s; the first sample at or after it (t=30) saved 311296 pages = 1.1875 GiB
    assert figures == pytest.approx({
        't50': 12.5,
        't90': 20.0 + 20.0 / 3,
        'cpu_t90': 11.0 / 3,
        'daemon_cpu_t90': 0.0,
        'total_cpu_t90': 11.0 / 3,
        'cap': 60,
        'cpu_per_gib': (11.0 / 3) / 1.1875,
        'sample_interval': 10.0,
    })
    assert 'fraction_at_cap' not in figures
    assert 'cpu_at_cap' not in figures


def test_convergence_figures_with_t90_at_the_first_sample():
    figures = measure.convergence_figures([row(0.5, 300000, 0.92, 0.01)], PAGE_SIZE, 60)
    assert figures == pytest.approx({
        't50': 0.5, 't90': 0.5, 'cpu_t90': 0.01, 'cap': 60, 'daemon_cpu_t90': 0.0, 'total_cpu_t90': 0.01,
        'cpu_per_gib': 0.01 / (300000.0 / PAGES_PER_GIB), 'sample_interval': None,
    })


def test_convergence_figures_censored_at_the_cap():
    # stopped at t=20 with 0.8 of the achievable saved: T50 known, T90 censored; 3 CPU s for 1 GiB
    figures = measure.convergence_figures(CONVERGING[:3], PAGE_SIZE, 20)
    assert figures == pytest.approx({
        't50': 12.5, 't90': None, 'cpu_t90': None, 'cap': 20, 'sample_interval': 10.0,
        'cpu_per_gib': 3.0, 'fraction_at_cap': 0.8, 'cpu_at_cap': 3.0, 'daemon_cpu_at_cap': 0.0, 'total_cpu_at_cap': 3.0,
    })


def test_convergence_figures_never_reaching_half():
    figures = measure.convergence_figures(CONVERGING[:2], PAGE_SIZE, 10)
    # 1.0 CPU s for 131072 pages = 0.5 GiB
    assert figures == pytest.approx({
        't50': None, 't90': None, 'cpu_t90': None, 'cap': 10, 'sample_interval': 10.0,
        'cpu_per_gib': 2.0, 'fraction_at_cap': 0.4, 'cpu_at_cap': 1.0, 'daemon_cpu_at_cap': 0.0, 'total_cpu_at_cap': 1.0,
    })


def test_convergence_figures_with_nothing_saved():
    figures = measure.convergence_figures([row(0.0, 0, 0.0, 0.0), row(5.0, 0, 0.0, 0.25)], PAGE_SIZE, 5)
    assert figures == {
        't50': None, 't90': None, 'cpu_t90': None, 'cap': 5, 'sample_interval': 5.0,
        'cpu_per_gib': None, 'fraction_at_cap': 0.0, 'cpu_at_cap': 0.25, 'daemon_cpu_at_cap': 0.0, 'total_cpu_at_cap': 0.25,
    }


def test_convergence_figures_without_samples():
    assert measure.convergence_figures([], PAGE_SIZE, 5) == {
        't50': None, 't90': None, 'cpu_t90': None, 'cap': 5, 'sample_interval': None,
        'cpu_per_gib': None, 'fraction_at_cap': 0.0, 'cpu_at_cap': 0.0, 'daemon_cpu_at_cap': 0.0, 'total_cpu_at_cap': 0.0,
    }


# median

def test_median_of_finished_runs():
    assert measure.median([5]) == 5.0
    assert measure.median([3, 1, 2]) == 2.0
    assert measure.median([4, 1, 3, 2]) == 2.5  # (2 + 3) / 2
    assert measure.median([2.5, 7.5]) == 5.0
    result = measure.median([3, 1, 2], caps=[10, 10, 10])
    assert not isinstance(result, Censored)
    assert isinstance(result, float)


def test_median_of_no_values_is_none():
    assert measure.median([]) is None
    assert measure.median([], caps=[]) is None


def test_median_with_a_minority_censored_is_a_finished_value():
    # 2, 3, then the censored run above both: the middle is 3
    result = measure.median([2, None, 3], caps=[10, 10, 10])
    assert result == 3.0
    assert not isinstance(result, Censored)
    # even count: 1, 3, 4, censored: (3 + 4) / 2
    result = measure.median([4, None, 1, 3], caps=(10, 10, 10, 10))
    assert result == 3.5
    assert not isinstance(result, Censored)


def test_median_on_a_censored_run_is_censored_at_the_smallest_cap():
    result = measure.median([2, None, None], caps=[10, 12, 8])
    assert isinstance(result, Censored)
    assert result == 8.0
    assert repr(result) == '>8'
    # censored runs sort by cap among themselves: 1, 2, >30, >40, >50; the middle is the one capped at 30
    result = measure.median([None, None, None, 1, 2], caps=[50, 30, 40, 60, 60])
    assert isinstance(result, Censored)
    assert result == 30.0


def test_median_all_censored():
    result = measure.median([None, None], caps=[30, 20])
    assert isinstance(result, Censored)
    assert result == 20.0
    result = measure.median([None, None, None])  # no caps: never reached at all
    assert isinstance(result, Censored)
    assert math.isinf(result)
    assert repr(result) == '>inf'


def test_median_even_count_with_one_censored_middle_run():
    # 1, 2, >10, >10: the median is (2 + more than 10) / 2, so more than 6 (not more than 10)
    result = measure.median([1, 2, None, None], caps=[10, 10, 10, 10])
    assert isinstance(result, Censored)
    assert result == 6.0
    assert repr(result) == '>6'


def test_median_ignores_the_caps_of_finished_runs():
    assert measure.median([5, 1, 3], caps=[1, 100, 2]) == 3.0


def test_censored_is_a_float_lower_bound():
    value = Censored(600)
    assert isinstance(value, float)
    assert float(value) == 600.0
    assert repr(value) == '>600'
    assert repr(Censored(12.5)) == '>12.5'


# median_settled

def test_median_settled_once_more_than_half_are_censored():
    assert measure.median_settled([], 5) is False
    assert measure.median_settled([1.0, 2.0, 3.0], 5) is False
    assert measure.median_settled([None, None], 5) is False
    assert measure.median_settled([None, 1.0, None], 5) is False
    assert measure.median_settled([None, None, None], 5) is True
    assert measure.median_settled([None, 1.0, None, None], 5) is True


def test_median_settled_exactly_half_of_an_even_count_is_not_settled():
    assert measure.median_settled([None, None], 4) is False
    assert measure.median_settled([None, None, None], 4) is True


def test_median_settled_agrees_with_median():
    # 3 of 5 censored: whatever the two remaining runs give, the median is censored
    assert measure.median_settled([None, None, None], 5)
    for rest in ([1.0, 2.0], [1.0, None], [None, None]):
        assert isinstance(measure.median([None, None, None] + rest, caps=[10] * 5), Censored)


# ratio

def test_ratio_of_finished_values():
    assert measure.ratio(3.0, 2.0) == ('=', 1.5)
    assert measure.ratio(1, 4) == ('=', 0.25)
    assert measure.ratio(0.0, 2.0) == ('=', 0.0)


def test_ratio_with_censored_values_is_a_bound():
    # value > 6 over 2: more than 3
    assert measure.ratio(Censored(6), 2.0) == ('>', 3.0)
    # 3 over base > 6: less than 0.5
    assert measure.ratio(3.0, Censored(6)) == ('<', 0.5)


def test_ratio_unknown():
    assert measure.ratio(None, 2.0) is None
    assert measure.ratio(2.0, None) is None
    assert measure.ratio(None, None) is None
    assert measure.ratio(Censored(6), Censored(3)) is None
    assert measure.ratio(3.0, 0.0) is None
    assert measure.ratio(Censored(3), 0.0) is None
    assert measure.ratio(3.0, Censored(0.0)) is None


# the daemon's own CPU (column measure.OWN) next to ksmd's

def own_row(t, saved, fraction, cpu, own):
    return row(t, saved, fraction, cpu) + [own]


DAEMON_RUN = [
    own_row(0.0, 0, 0.0, 0.0, 0.10),
    own_row(10.0, 131072, 0.4, 1.0, 0.20),
    own_row(20.0, 262144, 0.8, 3.0, 0.30),
    own_row(30.0, 311296, 0.95, 4.0, 0.60),
]


def test_own_cpu_of_rows_with_and_without_the_column():
    assert measure.own(row(1.0, 0, 0.0, 0.0)) == 0.0
    assert measure.own(own_row(1.0, 0, 0.0, 0.0, None)) == 0.0
    assert measure.own(own_row(1.0, 0, 0.0, 0.0, 0.25)) == 0.25


def test_own_at_interpolates_like_the_crossing():
    # t=26.67 is 2/3 of the way from 0.30 to 0.60
    assert measure.own_at(DAEMON_RUN, 20.0 + 20.0 / 3) == pytest.approx(0.5)
    assert measure.own_at(DAEMON_RUN, 0.0) == 0.10
    assert measure.own_at(DAEMON_RUN, 99.0) == 0.60
    assert measure.own_at([], 1.0) == 0.0


def test_convergence_figures_add_the_daemon_cpu_to_ksmd():
    figures = measure.convergence_figures(DAEMON_RUN, PAGE_SIZE, 60)
    # ksmd 3.667 + daemon 0.5 at T90 = 4.167 CPU s; per GiB over the 1.1875 GiB saved at t=30
    assert figures['cpu_t90'] == pytest.approx(11.0 / 3)
    assert figures['daemon_cpu_t90'] == pytest.approx(0.5)
    assert figures['total_cpu_t90'] == pytest.approx(11.0 / 3 + 0.5)
    assert figures['cpu_per_gib'] == pytest.approx((11.0 / 3 + 0.5) / 1.1875)
    capped = measure.convergence_figures(DAEMON_RUN[:3], PAGE_SIZE, 20)
    assert capped['daemon_cpu_at_cap'] == 0.30 and capped['total_cpu_at_cap'] == pytest.approx(3.3)
    # 3.3 CPU s for 1 GiB
    assert capped['cpu_per_gib'] == pytest.approx(3.3)


def test_window_shows_the_daemon_cpu_apart_and_summed():
    # t=10..30: ksmd 3 CPU s, daemon 0.4 CPU s over 20 s
    got = measure.window(DAEMON_RUN, 10.0, 30.0)
    assert got['cpu_percent'] == pytest.approx(15.0)
    assert got['daemon_cpu_seconds'] == pytest.approx(0.4)
    assert got['daemon_cpu_percent'] == pytest.approx(2.0)
    assert got['total_cpu_percent'] == pytest.approx(17.0)


def test_sample_interval_is_the_median_step():
    rows = [row(t, 0, 0.0, 0.0) for t in (0.0, 0.05, 0.1, 0.3, 0.35)]
    # steps 0.05, 0.05, 0.2, 0.05
    assert measure.sample_interval(rows) == 0.05
    assert measure.sample_interval(rows[:1]) is None
    assert measure.sample_interval([]) is None


# B3's newcomer figures and the trace that carries the daemon's CPU (scenarios)

def test_newcomer_figures_add_the_daemon_cpu():
    from ansible_collections.pagefusion.core.benchmarks.ksmbench import scenarios  # pylint: disable=import-outside-toplevel
    samples = [own_row(0.0, 0, 0.0, 0.0, 0.0), own_row(0.5, 0, 0.5, 0.2, 0.02), own_row(1.0, 0, 1.0, 0.6, 0.06)]
    got = scenarios.newcomer_figures(samples)
    # 0.9 is 4/5 of the way from 0.5 to 1.0: t 0.9, ksmd 0.52, daemon 0.052
    assert got['t90'] == pytest.approx(0.9) and got['cpu_t90'] == pytest.approx(0.52)
    assert got['daemon_cpu_t90'] == pytest.approx(0.052) and got['total_cpu_t90'] == pytest.approx(0.572)
    assert got['sample_interval'] == 0.5
    assert got['total_cpu_at_end'] == pytest.approx(0.66)
    capped = scenarios.newcomer_figures(samples[:2])
    assert capped['t90'] is None and capped['total_cpu_t90'] is None and capped['daemon_cpu_at_end'] == 0.02


class FakeKernel(object):
    def __init__(self):
        self.ticks = 0

    def cpu(self):
        return 0.1 * self.ticks

    def read(self):
        self.ticks += 1
        return 50, True, {'pages_to_scan': 100, 'sleep_millisecs': 20, 'run': 1}, None


class FakePolicy(object):
    def __init__(self, cpu):
        self.cpu = cpu

    def own_cpu(self):
        return self.cpu


def test_cost_trace_rows_carry_the_policy_own_cpu():
    from ansible_collections.pagefusion.core.benchmarks.ksmbench import scenarios  # pylint: disable=import-outside-toplevel
    row_d = scenarios.CostTrace(FakeKernel(), lambda zero: 100, FakePolicy(1.23456)).sample()
    assert len(row_d) == measure.OWN + 1 and row_d[measure.OWN] == 1.2346 and row_d[2] == 0.5
    row_k = scenarios.CostTrace(FakeKernel(), lambda zero: 100, FakePolicy(None)).sample()
    assert row_k[measure.OWN] is None and measure.own(row_k) == 0.0


def test_process_tree_cpu_counts_live_children():
    from ansible_collections.pagefusion.core.benchmarks.ksmbench import kernel  # pylint: disable=import-outside-toplevel
    spin = 'import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\nimport sys\nsys.stdout.write("x\\n")\n' \
           'sys.stdout.flush()\ntime.sleep(30)\n'
    child = subprocess.Popen([sys.executable, '-c', spin], stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b'x\n'  # the child has spent its 0.4 CPU seconds and sleeps
        own = kernel.process_tree_cpu(child.pid)
        assert own >= 0.35
        # the parent's figure includes the live child's
        assert kernel.process_tree_cpu(os.getpid()) >= own
    finally:
        child.kill()
        child.wait()
    time.sleep(0.01)
    assert kernel.process_tree_cpu(child.pid) is None
