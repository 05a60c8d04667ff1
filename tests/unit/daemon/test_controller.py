# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""pagefusiond's control step against a simulated KSM (sim.py): phases, CPU budget, knobs, errors."""

from __future__ import annotations

import errno
import os

from ansible_collections.pagefusion.core.daemon.pagefusiond.controller import Controller
from ansible_collections.pagefusion.core.tests.unit.daemon.sim import Harness, SimKernel, make_config


def test_idle_without_mergeable_memory_stops_ksmd(tmp_path):
    h = Harness(tmp_path, overrides={'run': '1'})
    state = h.step()
    assert state['phase'] == 'idle'
    assert h.kernel.knob('run') == 0
    assert ('run', '2') not in h.kernel.writes
    assert 'phase start -> idle' in h.logs[0]


def test_boost_on_new_vm_then_settle_and_steady(tmp_path):
    h = Harness(tmp_path)
    h.run(4)
    assert h.controller.phase == 'idle'
    for pid in (101, 102, 103, 104):
        h.kernel.add_process(pid, mib=256)
    start = h.clock.now
    state = h.next_step()
    assert state['phase'] == 'boost'
    assert state['mergeable_pages_estimate'] >= 4 * 65536
    knobs = state['knobs']
    assert knobs['run'] == 1
    assert knobs['sleep_millisecs'] == 5
    # A full pass within boost_pass_seconds (0.1 s), capped by the CPU budget (95 %): with the prior cost of 2 us a page
    # that is 0.95 / 2e-6 = 475000 pages/s, i.e. 475000 * 5 ms / (1 - 0.95) = 47500 per batch.
    assert knobs['pages_to_scan'] >= 47500
    assert h.kernel.knob('use_zero_pages') == 1
    achievable = h.kernel.achievable()
    h.run(60, until=lambda s: s['phase'] == 'steady')
    assert h.controller.phase == 'steady'
    t90 = h.first_time(lambda phase, saved, knobs: saved >= 0.9 * achievable)
    assert t90 is not None and t90 - start <= 5.0, h.history
    assert h.kernel.saved() >= 0.99 * achievable
    h.run(10)
    steady = h.controller.state
    assert steady['phase'] == 'steady'
    assert steady['knobs']['sleep_millisecs'] == 100
    assert steady['knobs']['pages_to_scan'] < knobs['pages_to_scan'] / 10
    # Steady ksmd CPU stays under its budget (2 % of one core by default).
    assert steady['ksmd_cpu_percent'] <= 2.0 * 1.1
    phases = [line for line in h.logs if 'phase' in line]
    assert [p.split(':')[0] for p in phases] == ['phase start -> idle', 'phase idle -> boost', 'phase boost -> settle', 'phase settle -> steady']
    assert ('run', '2') not in h.kernel.writes


def test_already_merged_memory_settles_fast(tmp_path):
    h = Harness(tmp_path)
    h.kernel.add_process(201)
    h.kernel.add_process(202)
    h.kernel.procs[201].covered = h.kernel.procs[202].covered = 10 * 65536  # merged long ago
    h.kernel.advance(0)
    h.run(30, until=lambda s: s['phase'] == 'steady')
    assert h.controller.phase == 'steady'
    assert h.clock.now - 1000.0 < 10


def test_newcomer_reboosts_from_steady(tmp_path):
    h = Harness(tmp_path)
    for pid in (301, 302, 303):
        h.kernel.add_process(pid)
    h.run(60, until=lambda s: s['phase'] == 'steady')
    assert h.controller.phase == 'steady'
    h.kernel.add_process(304)
    state = h.next_step()
    assert state['phase'] == 'boost'
    assert 'new mergeable processes: 304' in h.logs[-1]
    assert state['boosts'] == 2
    proc = h.kernel.procs[304]
    start = h.clock.now
    h.run(30, until=lambda s: h.kernel._merged(proc)[0] >= 0.9 * proc.shared)
    assert h.clock.now - start <= 5.0


def test_small_growth_does_not_boost_but_a_new_small_process_does(tmp_path):
    h = Harness(tmp_path)
    proc = h.kernel.add_process(401)
    h.run(60, until=lambda s: s['phase'] == 'steady')
    proc.unique += 8 * 256  # the known guest grows by 8 MiB, below new_memory_threshold_mib (32)
    h.kernel._write_proc(proc)  # pylint: disable=protected-access
    h.controller.wake('a look at every process')
    assert h.next_step()['phase'] == 'steady'
    # A new mergeable process boosts while it is still small (a QEMU that has not filled its memory yet): the
    # kernel puts it behind ksmd's cursor, so the pass over the others had better start now.
    h.kernel.add_process(402, mib=8)
    state = h.next_step()
    assert state['phase'] == 'boost'
    assert 'a new process has mergeable memory (new mergeable processes: 402)' in h.logs[-1]


def test_vm_gone_goes_idle_without_unmerging(tmp_path):
    h = Harness(tmp_path)
    h.kernel.add_process(501)
    h.kernel.add_process(502)
    h.run(60, until=lambda s: s['phase'] == 'steady')
    h.kernel.remove_process(501)
    h.kernel.remove_process(502)
    state = h.next_step()
    assert state['phase'] == 'idle'
    assert h.kernel.knob('run') == 0
    assert ('run', '2') not in h.kernel.writes


def test_idle_stop_false_keeps_ksmd_running(tmp_path):
    h = Harness(tmp_path, config=make_config(idle_stop='false'), overrides={'run': '1'})
    assert h.step()['phase'] == 'idle'
    assert h.kernel.knob('run') == 1


def test_boost_ends_after_boost_max_seconds(tmp_path):
    # A settle that never ends (100 quiet passes wanted): boost_max_seconds ends the boost.
    h = Harness(tmp_path, config=make_config(boost_max_seconds='5', settle_passes='100'))
    h.kernel.add_process(601)
    h.kernel.add_process(602)
    h.run(20, until=lambda s: s['phase'] == 'steady')
    assert h.controller.phase == 'steady'
    assert any('boost_max_seconds' in line for line in h.logs)


def test_wake_reason_is_logged(tmp_path):
    h = Harness(tmp_path)
    h.step()
    h.kernel.add_process(1501)
    h.controller.wake('libvirt domain vm1 started')
    h.step()
    assert 'libvirt domain vm1 started' in h.logs[-1]


def test_watcher_unavailable_without_ksm_stat_never_goes_idle(tmp_path):
    kernel = SimKernel(tmp_path, overrides={'run': '1'})
    os.unlink(os.path.join(kernel.proc, 'self', 'ksm_stat'))
    controller = Controller(make_config(), kernel.sysfs(), log=lambda m: None)
    state = controller.step()
    assert not controller.watcher.available
    assert state['phase'] == 'boost'
    assert kernel.knob('run') == 1


def test_an_exiting_process_with_an_empty_ksm_stat_does_not_stop_idling(tmp_path):
    h = Harness(tmp_path)
    h.kernel.add_process(1701)
    h.run(60, until=lambda s: s['phase'] == 'steady')
    os.makedirs(os.path.join(h.kernel.proc, '1702'))
    with open(os.path.join(h.kernel.proc, '1702', 'ksm_stat'), 'w') as handle:
        handle.write('')  # read while the process exits
    h.kernel.remove_process(1701)
    assert h.next_step()['phase'] == 'idle'


def test_kernel_without_ksm_mergeable_never_idles(tmp_path):
    # Before about 6.14 ksm_stat has no ksm_mergeable line: a process with rmap items counts, and idling is not trusted.
    h = Harness(tmp_path)
    os.makedirs(os.path.join(h.kernel.proc, '1801'))
    with open(os.path.join(h.kernel.proc, '1801', 'ksm_stat'), 'w') as handle:
        handle.write('ksm_rmap_items 0\nksm_zero_pages 0\nksm_merging_pages 0\nksm_process_profit 0\n')
    state = h.step()
    assert not h.controller.watcher.exact
    assert state['phase'] == 'boost'


def test_cpu_cap_scales_pages_to_scan_down(tmp_path):
    # Expensive pages: a 1 s pass would need ~ 2.6 cores; the budget is 25 %.
    h = Harness(tmp_path, config=make_config(max_cpu_percent='25'), cost_per_page=1e-5)
    for pid in (701, 702):
        h.kernel.add_process(pid, mib=512)
    h.run(10)
    cpus = [cpu for now, phase, saved, knobs, cpu in h.history[3:] if phase in ('boost', 'settle') and cpu is not None]
    assert cpus, h.history
    assert max(cpus) <= 25 * 1.25, cpus
    assert min(cpus) >= 25 * 0.5, cpus


def test_cpu_cap_without_pages_scanned_uses_feedback(tmp_path):
    # Kernels before 6.7 have no pages_scanned: the measured CPU alone scales pages_to_scan down.
    h = Harness(tmp_path, config=make_config(max_cpu_percent='20'), cost_per_page=1e-5)
    os.unlink(os.path.join(h.kernel.root, 'pages_scanned'))
    h.kernel._put = _skip_pages_scanned(h.kernel._put)
    for pid in (711, 712):
        h.kernel.add_process(pid, mib=512)
    h.run(15)
    cpus = [cpu for now, phase, saved, knobs, cpu in h.history[-6:] if cpu is not None]
    assert max(cpus) <= 20 * 1.5, h.history


def _skip_pages_scanned(put):
    def wrapper(name, value):
        if name != 'pages_scanned':
            put(name, value)
    return wrapper


def test_steady_mode_advisor_hands_over_to_the_kernel(tmp_path):
    h = Harness(tmp_path, config=make_config(steady_mode='advisor', steady_max_cpu_percent='3', steady_pass_seconds='150'))
    h.kernel.add_process(801)
    h.kernel.add_process(802)
    h.run(60, until=lambda s: s['phase'] == 'steady')
    assert h.kernel.knob('advisor_mode') == 'scan-time'
    assert h.kernel.knob('advisor_max_cpu') == 3
    assert h.kernel.knob('advisor_target_scan_time') == 150
    writes_before = len(h.kernel.writes)
    h.run(6)
    assert not [w for w in h.kernel.writes[writes_before:] if w[0] == 'pages_to_scan']
    h.kernel.add_process(803)
    assert h.next_step()['phase'] == 'boost'
    assert h.kernel.knob('advisor_mode') == 'none'
    assert h.kernel.knob('pages_to_scan') > 500


def test_use_zero_pages_keep(tmp_path):
    h = Harness(tmp_path, config=make_config(use_zero_pages='keep'))
    h.kernel.add_process(901)
    h.step()
    assert h.kernel.knob('use_zero_pages') == 0
    assert not [w for w in h.kernel.writes if w[0] == 'use_zero_pages']


def test_sysfs_write_errors_are_logged_once_and_the_daemon_keeps_going(tmp_path):
    h = Harness(tmp_path)
    h.kernel.add_process(1001)

    def fail(name, text):
        raise OSError(errno.EACCES, 'Permission denied')
    h.ksm._write_raw = fail
    for dummy in range(5):
        state = h.step()
        h.clock.now += 0.5
    errors = [line for line in h.logs if line.startswith('error:')]
    assert len(errors) == 1
    assert 'Permission denied writing KSM knob' in errors[0]
    assert state['phase'] == 'boost'
    assert 'Permission denied' in state['last_error']
