# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The churn-aware steady rate and the real saving (realsaving.py) on the simulated kernel (churn_sim.py)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.pagefusion.core.daemon.pagefusiond.outputs import render_metrics, status_text
from ansible_collections.pagefusion.core.daemon.pagefusiond.rates import steady_budget
from ansible_collections.pagefusion.core.daemon.pagefusiond.realsaving import SharingMonitor, steady_pass_seconds
from ansible_collections.pagefusion.core.tests.unit.daemon.churn_sim import ChurnKernel
from ansible_collections.pagefusion.core.tests.unit.daemon.sim import PAGE, Harness, make_config

GUESTS = (101, 102, 103, 104)


def test_steady_pass_follows_the_break_rate():
    config = make_config()
    assert steady_pass_seconds(config, None, 10000) == 60.0  # no cow_ksm: the fixed pass
    assert steady_pass_seconds(config, 0.0, 10000) == 900.0  # nothing breaks sharing: the quiet pass
    assert steady_pass_seconds(config, 5.0, 0) == 900.0  # nothing saved, nothing to lose
    # 0.5% of 100000 pages may wait for ksmd; breaks wait half a pass: 2 * 500 / 50 = 20 s
    assert steady_pass_seconds(config, 50.0, 100000) == 20.0
    assert steady_pass_seconds(config, 1e6, 100000) == 2.0  # never faster than steady_min_pass_seconds
    assert steady_pass_seconds(make_config(steady_loss_percent='1'), 50.0, 100000) == 40.0


def _vmstat(proc, cow):
    with open(os.path.join(proc, 'vmstat'), 'w') as handle:
        handle.write('nr_free_pages 5\ncow_ksm %d\n' % cow)


def test_break_rate_rises_at_once_and_falls_slowly(tmp_path):
    monitor = SharingMonitor(str(tmp_path), PAGE)
    monitor.measure(0.0, 1.0, {}, 0)
    assert monitor.breaks_per_second is None  # no vmstat: unknown
    _vmstat(str(tmp_path), 1000)
    monitor.measure(2.0, 3.0, {}, 0)
    assert monitor.breaks_per_second is None and monitor.cow_ksm == 1000  # one reading: no rate yet
    _vmstat(str(tmp_path), 1200)
    monitor.measure(4.0, 5.0, {}, 0)
    assert monitor.breaks_per_second == 100.0
    monitor.measure(6.0, 7.0, {}, 0)  # no writes for one step: believed slowly
    assert monitor.breaks_per_second == 80.0
    _vmstat(str(tmp_path), 2200)
    monitor.measure(8.0, 9.0, {}, 0)
    assert monitor.breaks_per_second == 500.0


def test_real_saving_sampled_every_interval_only(tmp_path):
    kernel = ChurnKernel(tmp_path)
    for pid in (101, 102):
        kernel.add_process(pid, mib=16)
    os.unlink(os.path.join(kernel.proc, '102', 'smaps_rollup'))  # no ptrace access, or gone
    monitor = SharingMonitor(kernel.proc, PAGE)
    processes = {101: {'stat': {'zero_pages': 7}}, 102: {'stat': {}}}
    monitor.measure(10.0, 1700000010.0, processes, 30.0, 1000)
    first = monitor.real
    assert (first['processes'], first['unreadable'], first['sampled']) == (1, 1, 1700000010.0)
    assert first['pages'] == 7  # nothing merged yet: only the zero pages ksm_stat reports
    monitor.measure(20.0, 1700000020.0, processes, 30.0, 1100)
    assert monitor.real is first
    monitor.measure(40.0, 1700000040.0, processes, 30.0, 1100)  # the saving moved since the last sample
    assert monitor.real['sampled'] == 1700000040.0
    monitor.measure(80.0, 1700000080.0, processes, 30.0, 1100)  # nothing moved: ten times the interval
    assert monitor.real['sampled'] == 1700000040.0
    monitor.measure(340.0, 1700000340.0, processes, 30.0, 1100)
    assert monitor.real['sampled'] == 1700000340.0
    monitor.measure(341.0, 1700000341.0, {101: {'stat': {}}}, 30.0, 1100)  # a process went: back to the interval
    assert monitor.real['sampled'] == 1700000340.0
    monitor.measure(370.0, 1700000370.0, {101: {'stat': {}}}, 30.0, 1100)
    assert monitor.real['sampled'] == 1700000370.0
    monitor.measure(900.0, 1700000900.0, processes, 0)
    assert monitor.real['sampled'] == 1700000370.0  # 0: never again


def _churn_harness(tmp_path, cost_per_page=0.5e-6, **config):
    config.setdefault('state_path', str(tmp_path / 'run' / 'state.json'))
    config.setdefault('real_saving_interval', '10')
    config.setdefault('watch_interval', '0')  # one simulated advance a step: the tree's files are slow on a busy machine
    h = Harness(tmp_path, config=make_config(**config), kernel_class=ChurnKernel, cost_per_page=cost_per_page)
    for pid in GUESTS:
        h.kernel.add_process(pid, mib=64)
    h.run(120, until=lambda s: s['phase'] == 'steady')
    assert h.controller.phase == 'steady'
    return h


def _mean_real_share(h, seconds):
    """Mean real saving (the simulated truth) over ``seconds`` of steady running, as a share of the counters' saving."""
    shares = []
    end = h.clock.now + seconds
    while h.clock.now < end:
        h.run(h.config['interval'])
        shares.append(h.kernel.real_saved() / float(h.kernel.saved()))
    return sum(shares) / len(shares)


def test_quiet_host_scans_slowly_and_churn_speeds_the_steady_rate_up(tmp_path):
    h = _churn_harness(tmp_path)
    state = h.run(20)
    assert state['steady_pass_seconds'] == 900.0 and state['sharing_breaks_per_second'] == 0.0
    quiet_pages = h.kernel.knob('pages_to_scan')
    assert quiet_pages <= 100  # 4 x 64 MiB in 900 s: a few dozen pages a wake-up
    for pid in GUESTS:
        h.kernel.set_churn(pid, 33.0)  # 1% of G a second, a fifth of it on shared pages
    h.run(10)  # the rate model follows within a few steps
    share = _mean_real_share(h, 60)
    state = h.controller.state
    assert 120 <= state['sharing_breaks_per_second'] <= 140
    assert state['steady_pass_seconds'] < 10
    assert h.kernel.knob('pages_to_scan') > 20 * quiet_pages
    assert share >= 0.99  # at most 0.5% of the saving waits for ksmd (plus the model's slack)
    assert state['ksmd_cpu_percent'] <= 2.0 * 1.1
    # churn stops: the rate falls back to the quiet pass without a new boost
    for pid in GUESTS:
        h.kernel.set_churn(pid, 0.0)
    state = h.run(60)
    assert state['phase'] == 'steady' and state['steady_pass_seconds'] == 900.0


def test_the_fixed_steady_pass_loses_more_under_the_same_churn(tmp_path):
    # The daemon before cow_ksm was watched: one pass a minute whatever breaks (a kernel without cow_ksm).
    config = make_config(state_path=str(tmp_path / 'run' / 'state.json'), watch_interval='0')
    h = Harness(tmp_path, config=config, kernel_class=ChurnKernel, cost_per_page=0.5e-6, vmstat=False)
    for pid in GUESTS:
        h.kernel.add_process(pid, mib=64)
    h.run(120, until=lambda s: s['phase'] == 'steady')
    for pid in GUESTS:
        h.kernel.set_churn(pid, 33.0)
    h.run(10)
    share = _mean_real_share(h, 60)
    state = h.controller.state
    assert state['steady_pass_seconds'] == 60.0 and state['sharing_breaks_per_second'] is None
    assert share < 0.95


def test_the_steady_budget_covers_the_daemons_own_cpu(tmp_path):
    # Scanning costs 4.5 us a page here, so the churn wants more than the budget: ksmd gets what the daemon leaves.
    h = _churn_harness(tmp_path, cost_per_page=4.5e-6)
    ticks = os.sysconf('SC_CLK_TCK')
    for pid in GUESTS:
        h.kernel.set_churn(pid, 33.0)
    for dummy in range(40):
        with open(os.path.join(h.kernel.proc, 'self', 'stat'), 'w') as handle:  # the daemon uses 0.5% of a core
            handle.write('1 (pagefusiond) S 0 1 1 0 -1 0 0 0 0 0 %d 0 0 0 20 0 2 0 9 0 0\n' % int(ticks * 0.005 * h.clock.now))
        state = h.run(h.config['interval'])
    assert abs(h.controller.meter.own_cpu_percent - 0.5) < 0.1
    assert steady_budget(h.config, h.controller.meter) == pytest.approx(1.5, abs=0.1)
    assert state['ksmd_cpu_percent'] <= 1.5 * 1.1 + 0.1


def test_real_saving_goes_to_the_state_metrics_and_status(tmp_path):
    h = _churn_harness(tmp_path)
    for pid in GUESTS:
        h.kernel.set_churn(pid, 33.0)
    state = h.run(30)
    assert state['real_saved_processes'] == 4 and state['real_saved_unreadable'] == 0
    assert state['real_saved_bytes'] == state['real_saved_pages'] * PAGE
    assert 0.9 * state['saved_pages'] <= state['real_saved_pages'] <= state['saved_pages']
    assert h.clock.wall() - state['real_saved_sampled'] <= 10
    text = render_metrics(state)
    assert 'pagefusiond_real_saved_bytes %d' % state['real_saved_bytes'] in text
    assert '# HELP pagefusiond_real_saved_bytes Memory the mergeable processes really save' in text
    assert 'pagefusiond_real_saved_sample_time_seconds ' in text and 'pagefusiond_ksm_cow_total ' in text
    assert 'pagefusiond_steady_pass_seconds ' in text
    assert 'real saving (Rss - Pss): ' in status_text(state, now=h.clock.wall())


def test_the_kept_open_vmstat_follows_the_counter_and_a_missing_file(tmp_path):
    monitor = SharingMonitor(str(tmp_path), PAGE)
    assert monitor.read_cow_ksm() is None  # no /proc/vmstat (yet)
    _vmstat(str(tmp_path), 500)
    assert monitor.read_cow_ksm() == 500
    _vmstat(str(tmp_path), 564)  # rewritten in place, as the kernel regenerates it: the open file sees the new text
    assert monitor.read_cow_ksm() == 564
