# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Unit tests of the KSM benchmark's report: B1 medians, the B1/B2/B3 tables, the checks, docs/benchmarks.md, the plot.

The runs are hand-made in the shape scenarios.b1/b2/b3 return; every expected cell is worked out in a comment.
"""

from __future__ import annotations

import matplotlib  # noqa: F401  pylint: disable=unused-import  # the plot tests draw with it
import pytest

from ansible_collections.pagefusion.core.benchmarks.ksmbench import document, measure, report
from ansible_collections.pagefusion.core.benchmarks.ksmbench.measure import Censored

SIZE = (4, 256)


def b1_run(policy, t50, t90, cpu_t90, cpu_per_gib=None, cap=25.0, fraction_at_cap=None, cpu_at_cap=None,
           guests=4, mib=256, tag=None, daemon=None):
    """A B1 result as scenarios.b1 returns it; ``t90=None`` is a run stopped at ``cap``; ``daemon``: D's own CPU."""
    run = {'bench': 'B1', 'policy': policy, 'guests': guests, 'mib': mib, 't50': t50, 't90': t90, 'cpu_t90': cpu_t90,
           'cap': cap, 'cpu_per_gib': cpu_per_gib, 'achievable_pages': 45000, 'tag': tag, 'sample_interval': 0.05}
    if t90 is not None:
        run['daemon_cpu_t90'] = daemon or 0.0
        run['total_cpu_t90'] = cpu_t90 + (daemon or 0.0)
    end = t90 * 1.25 if t90 is not None else cap
    top = 1.0 if t90 is not None else fraction_at_cap
    run['trace'] = [[0.0, 0.0, 0.0], [end / 8, top * 0.3, 0.1], [end / 2, top * 0.7, 0.5], [end, top, 1.0]]
    if t90 is None:
        run['fraction_at_cap'] = fraction_at_cap
        run['cpu_at_cap'] = cpu_at_cap
        run['daemon_cpu_at_cap'] = daemon or 0.0
        run['total_cpu_at_cap'] = (cpu_at_cap or 0.0) + (daemon or 0.0)
    return run


# N=4, G=256 MiB. D and KX ran 3 times each; K0's first two runs hit the cap (median settled, third skipped);
# KA: one finished, two capped; KT: all finished; KT+P: one finished, one capped.
B1 = [
    b1_run('D', 1.5, 3.1, 1.3, 1.2, cap=180.0, tag='D slow', daemon=0.3),
    b1_run('KX', 1.0, 2.0, 20.0, 15.0, cap=180.0),
    b1_run('KX+Z', 1.0, 2.4, 20.0, 15.0, cap=180.0),
    b1_run('D', 1.0, 2.0, 0.8, 0.9, cap=180.0, tag='D fast', daemon=0.1),
    b1_run('KX', 1.1, 2.14, 24.0, 18.0, cap=180.0),
    b1_run('KX+Z', 1.1, 2.5, 25.0, 18.0, cap=180.0),
    b1_run('D', 1.2, 2.5, 1.0, 1.0, cap=180.0, tag='D middle', daemon=0.2),
    b1_run('KX', 1.3, 2.6, 30.0, 22.0, cap=180.0),
    b1_run('KX+Z', 1.3, 2.6, 26.0, 22.0, cap=180.0),
    b1_run('K0', 8.0, None, None, 9.0, fraction_at_cap=0.6, cpu_at_cap=4.0),
    b1_run('K0', 10.0, None, None, 8.0, fraction_at_cap=0.7, cpu_at_cap=5.0),
    b1_run('KA', 6.0, 12.0, 3.0, 2.0),
    b1_run('KA', 7.0, None, None, 5.0, fraction_at_cap=0.8, cpu_at_cap=6.0),
    b1_run('KA', 8.0, None, None, 6.0, fraction_at_cap=0.86, cpu_at_cap=7.0),
    b1_run('KT', 10.0, 20.0, 5.0, 3.0),
    b1_run('KT', 11.0, 24.0, 6.0, 3.5),
    b1_run('KT', 12.0, 30.0, 7.5, 4.0),
    b1_run('KT+P', 12.0, 21.0, 7.0, 4.0),
    b1_run('KT+P', 13.0, None, None, 5.0, fraction_at_cap=0.88, cpu_at_cap=8.0),
]


def window(cpu_percent, saved_fraction, seconds=60.0, daemon=0.0, actual=None):
    """A measure.window dict: ksmd's CPU %, the daemon's CPU % (``daemon``), the real saving when ``actual``."""
    out = {'cpu_percent': cpu_percent, 'saved_fraction': saved_fraction, 'seconds': seconds,
           'cpu_seconds': cpu_percent * seconds / 100.0, 'daemon_cpu_percent': daemon,
           'daemon_cpu_seconds': daemon * seconds / 100.0, 'total_cpu_percent': cpu_percent + daemon}
    if actual is not None:
        out['actual_saved_fraction'] = actual
    return out


def b2_run(policy, idle, churn):
    """A B2 result as scenarios.b2 returns it (idle/churn are measure.window dicts, None without samples)."""
    return {'bench': 'B2', 'policy': policy, 'guests': 4, 'mib': 256, 'phase_seconds': 60, 'churn_pages_per_s': 655,
            's_hits': 0.2, 'fast_forward': policy not in ('D', 'KX'), 'converged': True, 'converge_seconds': 3.0,
            'idle': idle, 'churn': churn, 'achievable_pages': 45000,
            'trace': [[0.0, 0.5, 0.0], [3.0, 0.99, 1.0], [63.0, 0.99, 1.5], [123.0, 0.95, 4.0]]}


# cpu_seconds = cpu_percent * 60 s / 100: D idle 0.3, churn 2.46; KX idle 24, churn 30
B2 = [
    b2_run('D', window(0.5, 0.99, daemon=0.1), window(4.1, 0.95, daemon=0.2)),
    b2_run('KT', None, window(3.0, 0.5)),
    b2_run('K0', window(2.0, 0.99), window(2.5, 0.6)),
    b2_run('KX', window(40.0, 0.995), window(50.0, 0.97)),
    b2_run('KA', window(1.0, 0.99), window(4.0, 0.9)),
]


def b3_run(policy, t90, cpu_t90, fraction_at_end, cpu_at_end, cap=12.0, daemon=0.0):
    """A B3 result as scenarios.b3 returns it (``daemon``: D's own CPU until T90 or the end)."""
    return {'bench': 'B3', 'policy': policy, 'guests': 3, 'mib': 256, 'fast_forward': policy not in ('D', 'KX', 'KX+Z'),
            'cap': cap, 'converged': True, 't90': t90, 'cpu_t90': cpu_t90, 'fraction_at_end': fraction_at_end,
            'cpu_at_end': cpu_at_end, 'newcomer_pages': 45000, 'sample_interval': 0.05,
            'daemon_cpu_t90': None if t90 is None else daemon, 'total_cpu_t90': None if t90 is None else cpu_t90 + daemon,
            'daemon_cpu_at_end': daemon, 'total_cpu_at_end': cpu_at_end + daemon}


B3 = [
    b3_run('D', 1.0, 0.1, 0.9, 0.1, cap=180.0, daemon=0.02),
    b3_run('D', 1.2, 0.12, 0.91, 0.12, cap=180.0, daemon=0.03),
    b3_run('D', 1.5, 0.2, 0.92, 0.2, cap=180.0, daemon=0.05),
    b3_run('KX+Z', 1.1, 4.0, 0.9, 4.0, cap=180.0),
    b3_run('KX', 1.0, 5.0, 0.9, 5.0, cap=180.0),
    b3_run('KX', 1.4, 6.0, 0.9, 6.0, cap=180.0),
    b3_run('KX', 2.0, 7.0, 0.9, 7.0, cap=180.0),
    b3_run('K0', None, None, 0.3, 0.5),
    b3_run('K0', None, None, 0.5, 0.7),
]


def table_rows(table):
    """A Markdown table as {first cell: [cells]} plus the row order."""
    lines = table.split('\n')
    assert lines[1].startswith('|---|')
    rows = [[c.strip() for c in line.strip('|').split('|')] for line in lines[2:]]
    return dict((r[0], r[1:]) for r in rows), [r[0] for r in rows]


# format helpers

def test_formats_of_seconds_numbers_and_ratios():
    assert report.fmt_seconds(None) == 'n/a'
    assert report.fmt_seconds(2.5) == '2.50 s'
    assert report.fmt_seconds(24.0) == '24.0 s'
    assert report.fmt_seconds(Censored(25.0)) == '> 25 s'
    assert report.fmt_number(None) == 'n/a'
    assert report.fmt_number(1.0) == '1.00'
    assert report.fmt_number(0.5, 3) == '0.500'
    assert report.fmt_number(Censored(4.0)) == '> 4.00'
    assert report.fmt_ratio(None) == 'n/a'
    assert report.fmt_ratio(('=', 2.5 / 2.14)) == '1.17x'
    assert report.fmt_ratio(('<', 0.1)) == '< 0.10x'
    assert report.fmt_ratio(('>', 10.0)) == '> 10x'
    assert report.fmt_ratio(('=', 11.21)) == '11x'


# b1_medians

def test_b1_medians_of_finished_runs_and_the_median_run():
    medians = report.b1_medians(B1)
    assert set(medians) == set(SIZE + (p,) for p in ('D', 'KX', 'KX+Z', 'K0', 'KA', 'KT', 'KT+P'))
    d = medians[SIZE + ('D',)]
    # each figure is its own median: T50 of 1.5, 1.0, 1.2; T90 of 3.1, 2.0, 2.5; CPU 1.3, 0.8, 1.0; per GiB 1.2, 0.9, 1.0
    assert d['runs'] == 3
    assert d['t50'] == pytest.approx(1.2)
    assert d['t90'] == pytest.approx(2.5)
    assert d['cpu_t90'] == pytest.approx(1.0)
    assert d['cpu_per_gib'] == pytest.approx(1.0)
    # the daemon's own CPU: 0.3, 0.1, 0.2; ksmd + daemon: 1.6, 0.9, 1.2
    assert d['daemon_cpu_t90'] == pytest.approx(0.2)
    assert d['total_cpu_t90'] == pytest.approx(1.2)
    assert d['fraction_at_cap'] is None
    assert not isinstance(d['t90'], Censored)
    # the run with the median T90, not the first or the last one
    assert d['median_run']['tag'] == 'D middle'


def test_b1_medians_all_runs_capped():
    k0 = report.b1_medians(B1)[SIZE + ('K0',)]
    assert k0['runs'] == 2
    assert isinstance(k0['t90'], Censored) and float(k0['t90']) == 25.0
    # CPU to T90 is at least the smaller CPU used until the cap
    assert isinstance(k0['cpu_t90'], Censored) and float(k0['cpu_t90']) == 4.0
    assert k0['t50'] == pytest.approx(9.0)
    assert k0['cpu_per_gib'] is None
    assert k0['fraction_at_cap'] == pytest.approx(0.65)


def test_b1_medians_most_runs_capped_one_finished():
    # used to raise KeyError: a finished run has no fraction_at_cap
    ka = report.b1_medians(B1)[SIZE + ('KA',)]
    assert ka['runs'] == 3
    assert isinstance(ka['t90'], Censored) and float(ka['t90']) == 25.0
    assert isinstance(ka['cpu_t90'], Censored) and float(ka['cpu_t90']) == 6.0
    # the median of the capped runs' saved fractions, 0.8 and 0.86
    assert ka['fraction_at_cap'] == pytest.approx(0.83)
    assert ka['cpu_per_gib'] is None
    assert ka['median_run']['t90'] is None


def test_b1_medians_even_count_half_capped_is_a_bound_halfway_to_the_cap():
    ktp = report.b1_medians(B1)[SIZE + ('KT+P',)]
    # T90: 21 finished, the other capped at 25: more than (21 + 25) / 2; CPU: more than (7 + 8) / 2
    assert isinstance(ktp['t90'], Censored) and float(ktp['t90']) == pytest.approx(23.0)
    assert isinstance(ktp['cpu_t90'], Censored) and float(ktp['cpu_t90']) == pytest.approx(7.5)
    assert ktp['fraction_at_cap'] == pytest.approx(0.88)
    assert ktp['median_run']['t90'] == 21.0  # the lower of the middle pair


def test_b1_medians_minority_capped_is_not_censored():
    runs = [b1_run('KA', 5.0, 12.0, 3.0, 2.0), b1_run('KA', 6.0, None, None, 7.0, fraction_at_cap=0.8, cpu_at_cap=6.0),
            b1_run('KA', 4.0, 10.0, 2.5, 1.5)]
    ka = report.b1_medians(runs)[SIZE + ('KA',)]
    assert ka['t90'] == 12.0 and not isinstance(ka['t90'], Censored)
    assert ka['cpu_t90'] == 3.0
    assert ka['cpu_per_gib'] == 2.0
    assert ka['fraction_at_cap'] is None
    assert ka['median_run']['t90'] == 12.0


def test_b1_median_run_of_a_capped_cell_is_the_run_with_the_smaller_cap():
    runs = [b1_run('K0', 5.0, None, None, 1.0, cap=25.0, fraction_at_cap=0.7, cpu_at_cap=3.0, tag='cap 25'),
            b1_run('K0', 5.0, 12.0, 4.0, 2.0),
            b1_run('K0', 5.0, None, None, 1.0, cap=20.0, fraction_at_cap=0.6, cpu_at_cap=2.0, tag='cap 20')]
    k0 = report.b1_medians(runs)[SIZE + ('K0',)]
    assert float(k0['t90']) == 20.0 and isinstance(k0['t90'], Censored)
    assert k0['median_run']['tag'] == 'cap 20'
    assert k0['fraction_at_cap'] == pytest.approx(0.65)


def test_b1_medians_keep_sizes_apart():
    runs = B1 + [b1_run('D', 2.0, 4.0, 2.0, 1.5, guests=8), b1_run('D', 1.0, 2.0, 1.0, 1.0, mib=512)]
    medians = report.b1_medians(runs)
    assert medians[(8, 256, 'D')]['t90'] == 4.0 and medians[(8, 256, 'D')]['runs'] == 1
    assert medians[(4, 512, 'D')]['t90'] == 2.0
    assert medians[SIZE + ('D',)]['runs'] == 3


# b1_table

def test_b1_table_cells_and_row_order():
    rows, order = table_rows(report.b1_table(report.b1_medians(B1), 4, 256))
    assert order == ['K0', 'KA', 'KT', 'KT+P', 'KX', 'KX+Z', 'D']
    # T50 | T90 | ksmd CPU | daemon CPU | ksmd+daemon | CPU per GiB | T90 vs KX | T90 vs KX+Z | CPU vs KX | runs
    # D: 2.5 / 2.14 = 1.168; 2.5 / 2.5 = 1.00; (ksmd + daemon) 1.2 / 24 = 0.05
    assert rows['D'] == ['1.20 s', '2.50 s', '1.00', '0.20', '1.20', '1.00', '1.17x', '1.00x', '0.05x', '3']
    # KX: no process of its own; 2.14 / 2.5 = 0.856
    assert rows['KX'] == ['1.10 s', '2.14 s', '24.00', '-', '24.00', '18.00', '1.00x', '0.86x', '1.00x', '3']
    assert rows['KX+Z'][1:4] == ['2.50 s', '25.00', '-']
    # K0: 25 / 2.14 = 11.7; 25 / 2.5 = 10; 4 / 24 = 0.167
    assert rows['K0'] == ['9.00 s', '> 25 s (65% saved at the cap)', '> 4.00', '-', '> 4.00', 'n/a', '> 12x', '> 10x', '> 0.17x', '2']
    assert rows['KA'] == ['7.00 s', '> 25 s (83% saved at the cap)', '> 6.00', '-', '> 6.00', 'n/a', '> 12x', '> 10x', '> 0.25x', '3']
    # KT: 24 / 2.14 = 11.2; 24 / 2.5 = 9.6; 6 / 24 = 0.25
    assert rows['KT'] == ['11.0 s', '24.0 s', '6.00', '-', '6.00', '3.50', '11x', '9.60x', '0.25x', '3']
    assert rows['KT+P'] == ['12.5 s', '> 23 s (88% saved at the cap)', '> 7.50', '-', '> 7.50', 'n/a', '> 11x', '> 9.20x', '> 0.31x', '2']


def test_b1_table_says_when_d_own_cpu_was_not_measured():
    run = b1_run('D', 1.0, 2.0, 1.0, 1.0)
    del run['daemon_cpu_t90'], run['total_cpu_t90']  # a result from before the daemon's CPU was measured
    rows, dummy = table_rows(report.b1_table(report.b1_medians([run]), 4, 256))
    assert rows['D'][2:5] == ['1.00', 'n/a', '1.00']


def test_b1_table_without_kx_or_k0_and_for_another_size():
    runs = [b1_run('D', 1.0, 2.0, 1.0, 1.0), b1_run('KT', 10.0, 20.0, 5.0, 2.0), b1_run('D', 1.0, 3.0, 1.0, 1.0, guests=8)]
    medians = report.b1_medians(runs)
    rows, order = table_rows(report.b1_table(medians, 4, 256))
    assert order == ['KT', 'D']
    assert rows['D'][6:9] == ['n/a', 'n/a', 'n/a']
    rows, order = table_rows(report.b1_table(medians, 8, 256))
    assert order == ['D'] and rows['D'][1] == '3.00 s'
    assert table_rows(report.b1_table(medians, 2, 64))[1] == []


# b2_table

def test_b2_table_cells_and_row_order():
    rows, order = table_rows(report.b2_table(B2))
    assert order == ['K0', 'KA', 'KT', 'KX', 'D']
    # idle ksmd | idle daemon | idle saved | churn ksmd | churn daemon | churn saved | idle vs KX | churn vs KX | saved vs KX
    # D (ksmd + daemon): idle 0.6 / 40 = 0.015; churn 4.3 / 50 = 0.086; saved 0.95 / 0.97 = 0.979
    assert rows['D'] == ['0.500', '0.100', '99.0%', '4.100', '0.200', '95.0%', '0.01x', '0.09x', '0.98x']
    assert rows['KX'] == ['40.000', '-', '99.5%', '50.000', '-', '97.0%', '1.00x', '1.00x', '1.00x']
    assert rows['K0'] == ['2.000', '-', '99.0%', '2.500', '-', '60.0%', '0.05x', '0.05x', '0.62x']
    # KT's idle window had no samples
    assert rows['KT'] == ['n/a', '-', 'n/a', '3.000', '-', '50.0%', 'n/a', '0.06x', '0.52x']


def test_b2_table_shows_and_compares_the_real_saving():
    d = b2_run('D', window(0.5, 0.99), window(4.1, 0.95, actual=0.80))
    kx = b2_run('KX', window(40.0, 0.995), window(50.0, 0.97, actual=0.96))
    rows, dummy = table_rows(report.b2_table([kx, d]))
    assert rows['D'][5] == '95.0% / 80.0%'
    assert rows['D'][2] == '99.0%'
    # the last column compares the real savings: 0.80 / 0.96 = 0.83
    assert rows['D'][-1] == '0.83x'


def test_b2_table_without_kx_and_an_old_d_without_its_own_cpu():
    old = b2_run('D', {'cpu_percent': 0.5, 'saved_fraction': 0.99, 'seconds': 60.0, 'cpu_seconds': 0.3}, None)
    rows, order = table_rows(report.b2_table([old]))
    assert order == ['D']
    assert rows['D'][:2] == ['0.500', 'n/a']
    assert rows['D'][6:] == ['n/a'] * 3


# b3

def test_b3_medians_and_table():
    medians = report.b3_medians(B3)
    assert medians['D'] == pytest.approx({'runs': 3, 't90': 1.2, 'cpu_t90': 0.12, 'daemon_cpu_t90': 0.03,
                                          'total_cpu_t90': 0.15, 'fraction_at_end': 0.91})
    k0 = medians['K0']
    assert isinstance(k0['t90'], Censored) and float(k0['t90']) == 12.0
    assert isinstance(k0['cpu_t90'], Censored) and float(k0['cpu_t90']) == 0.5
    assert k0['daemon_cpu_t90'] is None
    assert k0['fraction_at_end'] == pytest.approx(0.4)
    rows, order = table_rows(report.b3_table(medians))
    assert order == ['K0', 'KX', 'KX+Z', 'D']
    # T90 | ksmd CPU | daemon CPU | T90 vs KX | T90 vs KX+Z | CPU (ksmd + daemon) vs KX | runs
    # D: 1.2 / 1.4 = 0.857; 1.2 / 1.1 = 1.09; 0.15 / 6 = 0.0249 (0.12 + 0.03 in floating point)
    assert rows['D'] == ['1.20 s', '0.12', '0.03', '0.86x', '1.09x', '0.02x', '3']
    # K0: 12 / 1.4 = 8.57; 12 / 1.1 = 10.9; 0.5 / 6 = 0.083
    assert rows['K0'] == ['> 12 s (40% merged at the cap)', '> 0.50', '-', '> 8.57x', '> 11x', '> 0.08x', '2']
    assert rows['KX'] == ['1.40 s', '6.00', '-', '1.00x', '1.27x', '1.00x', '3']


# b5

def b5_run(guests, daemon_percent, ksmd_percent, detect, converged=True):
    idle = window(ksmd_percent, 0.999, daemon=daemon_percent)
    return {'bench': 'B5', 'policy': 'D', 'guests': guests, 'mib': 32, 'window_seconds': 60, 'converged': converged,
            'converge_seconds': guests / 10.0, 'converge_daemon_cpu_seconds': guests / 100.0, 'steady_reached': True,
            'idle': idle, 'sample_interval': 1.0, 'detect_seconds': detect, 'detected_while_filling': False,
            'detect_cap': 30.0, 'detect_poll': 0.02}


B5 = [b5_run(128, 0.12, 0.9, 0.6), b5_run(4, 0.04, 0.3, 0.3), b5_run(32, 0.06, 0.5, None, converged=False)]


def test_b5_table_one_row_per_n_and_growth_against_the_smallest():
    rows, order = table_rows(report.b5_table(B5))
    assert order == ['4', '32', '128']
    # converged | daemon CPU-s to converge | idle daemon % | idle ksmd % | detected | daemon idle vs N=4
    assert rows['4'] == ['0.40 s', '0.04', '0.040', '0.300', '0.30 s', '1.00x']
    assert rows['32'] == ['3.20 s (not converged)', '0.32', '0.060', '0.500', 'not within 30 s', '1.50x']
    # 0.12 / 0.04 = 3
    assert rows['128'] == ['12.8 s', '1.28', '0.120', '0.900', '0.60 s', '3.00x']


# document.render

MACHINE = {'cpu': 'Test CPU 3000', 'cores': 8, 'memory_gib': 31.3, 'kernel': '6.1.0-test', 'os': 'Debian GNU/Linux 12 (bookworm)',
           'hypervisor': 'kvm', 'load_before': (0.5, 0.25, 0.1), 'python': '3.11.2'}


def realism_run(policy, t90, cpu_t90, tag=None):
    run = b1_run(policy, t90 / 2, t90, cpu_t90, 1.0, cap=180.0, guests=3, mib=256, tag=tag)
    run.update({'bench': 'realism', 'memory_mib': 256, 'boot_seconds': 4.0, 'resident_pages': 150000,
                'reference_pages': 51200, 'plateau_pages': 51200, 'raw': []})
    return run


def result(**parts):
    out = {'b1': [], 'b2': [], 'b3': [], 'realism': [], 'b5': [], 'skipped': [], 'wall_seconds': {'b1': 600.0, 'total': 900.0},
           'machine': dict(MACHINE), 'started': '2026-01-02T03:04:05+00:00', 'finished': '2026-01-02T03:19:05+00:00',
           'profile': 'default', 'daemon_defaults_overridden': {},
           'settings': {'repeats': 3, 'slow_repeats': 1, 'slow_sizes': 'first', 'sizes': [list(SIZE)], 'cap_factor': 10.0, 'min_cap': 20.0,
                        'max_cap': 180.0, 'b3_settle': 5.0},
           'policies': dict((name, 'the %s policy' % name) for name in report.ORDER)}
    out.update(parts)
    return out


def test_render_everything():
    realism = [realism_run('KX', 5.0, 20.0), realism_run('KX+Z', 4.5, 19.0), realism_run('D', 4.0, 1.0), realism_run('K0', 60.0, 3.0)]
    b2 = [dict(r, sample_interval={'converge': 0.1, 'phases': 1.02}) for r in B2]
    text = document.render(result(b1=B1, b2=b2, b3=B3, realism=realism, b5=B5, skipped=['KT+P: ksmtuned is not installed'],
                                  daemon_defaults_overridden={'scan_pages': '400'}), [SIZE], 'benchmarks.png')
    lines = text.split('\n')
    assert lines[0] == '# pagefusiond benchmark results'
    assert ('Run 2026-01-02T03:04:05+00:00 to 2026-01-02T03:19:05+00:00, default profile, on: Test CPU 3000, 8 cores, '
            '31.3 GiB, kernel 6.1.0-test, Debian GNU/Linux 12 (bookworm) (a kvm virtual machine); load average before the '
            'start 0.50, 0.25, 0.10.') in lines
    assert 'Wall time: b1 10.0 min, total 15.0 min.' in lines
    assert '- **KX+Z**: the KX+Z policy' in lines
    assert "**D ran with overrides of its defaults:** {'scan_pages': '400'}" in lines
    assert "**D's CPU is ksmd's plus the daemon's own**" in text
    assert '3 runs a cell for D, KX and KX+Z (the median is reported); 1 for the slow policies (K0, KA, KT, KT+P), at N=4 G=256 MiB only.' in text
    headings = [line for line in lines if line.startswith('#')]
    assert headings == ['# pagefusiond benchmark results', '## Policies', '## Method', '## B1: cold start',
                        '### N=4 guests, G=256 MiB', '## B2: steady state', '## B3: a newcomer joins',
                        '## Realism: real TCG guests', "## B5: the daemon's own cost against N",
                        '## What good looks like (BENCHMARKS.md, raised list)', '## Skipped', '## Saved fraction over time']
    # the sampling interval each part really had
    assert 'Sampled every 50 ms (median interval; target 50 ms).' in lines
    assert 'Sampled every 1.02 s during the phases' in text and 'every 100 ms while converging' in text
    assert '(sampled every 1.00 s)' in text
    assert report.b1_table(report.b1_medians(B1), 4, 256) in text
    assert report.b2_table(b2) in text
    assert report.b3_table(report.b3_medians(B3)) in text
    assert report.b5_table(B5) in text
    assert 'the reference is the largest plateau KX or KX+Z reached (51200 pages, 200 MiB' in text
    # D 2.5 / KX+Z 2.5 synthetic; real guests 4.0 / 4.5
    assert 'D/KX+Z for T90: synthetic (N=4, G=256 MiB) 1.00x, real guests 0.89x.' in lines
    assert "- met: B1 N=4 G=256 MiB: D's T90 no more than KX+Z's: 2.50 s vs 2.50 s (D/KX+Z = 1.00x)" in lines
    assert lines[lines.index('## Skipped') + 2] == '- KT+P: ksmtuned is not installed'
    assert '![saved fraction over time per policy](benchmarks.png)' in lines


def test_render_b1_only_without_png():
    b1 = B1 + [b1_run('D', 1.0, 3.0, 1.0, 1.0, guests=8), b1_run('KX+Z', 1.0, 2.0, 20.0, 10.0, guests=8)]
    machine = dict(MACHINE, hypervisor='none')
    text = document.render(result(b1=b1, machine=machine), None, None)
    lines = text.split('\n')
    assert '(a ' not in text  # no virtual machine named
    headings = [line for line in lines if line.startswith('#')]
    # the sizes come from the runs, in the order they ran
    assert headings == ['# pagefusiond benchmark results', '## Policies', '## Method', '## B1: cold start',
                        '### N=4 guests, G=256 MiB', '### N=8 guests, G=256 MiB', '## What good looks like (BENCHMARKS.md, raised list)']
    assert 'overrides of its defaults' not in text
    assert '![' not in text
    assert "- **not met:** B1 N=8 G=256 MiB: D's T90 no more than KX+Z's: 3.00 s vs 2.00 s (D/KX+Z = 1.50x)" in lines
    assert '- unknown: B2: not run' in lines and '- unknown: B5: not run' in lines


def test_render_b2_only_and_nothing():
    b2 = [b2_run('D', window(0.2, 0.99, daemon=0.05), window(1.5, 0.95, daemon=0.2, actual=0.95)),
          b2_run('KX', window(40.0, 0.99), window(50.0, 0.96, actual=0.96))]
    text = document.render(result(b2=b2), [SIZE], None)
    headings = [line for line in text.split('\n') if line.startswith('#')]
    assert headings == ['# pagefusiond benchmark results', '## Policies', '## Method', '## B2: steady state',
                        '## What good looks like (BENCHMARKS.md, raised list)']
    assert '- met: B2 idle: ksmd + daemon at most 0.3% of one core: 0.250% (ksmd 0.200% + daemon 0.050%)' in text
    text = document.render(result(machine={}, skipped=['KT: ksmtuned is not installed']), [SIZE], 'x.png')
    headings = [line for line in text.split('\n') if line.startswith('#')]
    assert headings == ['# pagefusiond benchmark results', '## Policies', '## Method', '## What good looks like (BENCHMARKS.md, raised list)',
                        '## Skipped', '## Saved fraction over time']
    assert 'on: None, None cores, None GiB, kernel None, None; load average before the start .' in text


def test_render_records_every_merged_session():
    long_runs = [b1_run('K0', 90.0, 118.0, 3.0, 5.7, cap=180.0),
                 b1_run('KA', None, None, None, 20.0, cap=180.0, fraction_at_cap=0.11, cpu_at_cap=1.3)]
    runs = [{'started': 'A', 'finished': 'B', 'parts': ['b1', 'b2'], 'machine': dict(MACHINE, load_before=(1.0, 2.0, 3.0)),
             'settings': {'repeats': 3, 'b2_phase': 60}},
            {'started': 'C', 'finished': 'D', 'parts': ['b1long'], 'machine': dict(MACHINE, load_before=(4.0, 5.0, 6.0)),
             'settings': {'repeats': 1, 'b2_phase': 300}}]
    text = document.render(result(b1=B1, b1long=long_runs, runs=runs), [SIZE], None)
    lines = text.split('\n')
    assert "Run in 2 sessions (`--merge`); the machine and settings above are the first session's:" in lines
    session_lines = [line for line in lines if line.startswith('- b1')]
    assert session_lines[0].startswith('- b1, b2 from A to B; on: Test CPU 3000') and 'load average before the start 1.00, 2.00, 3.00' in session_lines[0]
    assert session_lines[0].endswith('; settings: b2_phase=60, repeats=3')
    assert session_lines[1].startswith('- b1long from C to D; on: ') and session_lines[1].endswith('b2_phase=300, repeats=1')
    assert '### N=4 guests, G=256 MiB: the slow policies run to the end' in lines
    assert "T90 against D's: K0/D = 47x, KA/D = > 72x." in lines


def test_hand_written_tail_of_benchmarks_md_is_kept():
    old = '# old\n\n## B1\n\nold table\n\n## Fleet scale\n\nfleet text\n'
    kept = document.keep_hand_written(old, '# new\n')
    assert kept == '# new\n\n' + document.KEEP_MARKER + '\n\n## Fleet scale\n\nfleet text\n'
    # once the marker is there, the tail after it stays as it is
    assert document.keep_hand_written(kept, '# newer\n') == '# newer\n\n' + document.KEEP_MARKER + '\n\n## Fleet scale\n\nfleet text\n'
    assert document.keep_hand_written('# old, nothing hand-written\n', '# new\n') == '# new\n'
    assert document.keep_hand_written(None, '# new\n') == '# new\n'


# plot

def test_plot_writes_a_png(tmp_path):
    realism = [realism_run('KX', 5.0, 20.0), realism_run('D', 4.0, 1.0)]
    path = tmp_path / 'benchmarks.png'
    report.plot(str(path), B1, [SIZE], realism, B2)
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    assert len(data) > 20000


def test_plot_b1_only(tmp_path):
    path = tmp_path / 'b1.png'
    report.plot(str(path), [b1_run('D', 1.0, 2.0, 1.0, 1.0), b1_run('KX', 1.0, 2.0, 20.0, 10.0)], [SIZE])
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    assert len(data) > 10000


def test_measure_is_the_one_report_uses():
    assert report.measure is measure
    assert report.Censored is measure.Censored


def test_plot_with_the_long_runs(tmp_path):
    long_runs = [b1_run('K0', 90.0, 118.0, 3.0, 5.7, cap=180.0)]
    path = tmp_path / 'long.png'
    report.plot(str(path), B1, [SIZE], long_runs=long_runs)
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
