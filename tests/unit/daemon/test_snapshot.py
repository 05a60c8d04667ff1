# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The host's KSM knobs: saved when pagefusiond starts, put back when it stops, unmerging only when configured to and when it fits."""

from __future__ import annotations

import json

from ansible_collections.pagefusion.core.daemon.pagefusiond.controller import Controller
from ansible_collections.pagefusion.core.daemon.pagefusiond.service import Daemon
from ansible_collections.pagefusion.core.daemon.pagefusiond.snapshot import KnobSnapshot
from ansible_collections.pagefusion.core.tests.unit.daemon.sim import Clock, SimKernel, make_config
from ansible_collections.pagefusion.core.tests.unit.plugins.module_utils.test_ksm import FakeKernel, make_tree


def test_restore_on_stop_puts_the_original_settings_back(tmp_path):
    config = make_config(state_path=str(tmp_path / 'run' / 'state.json'))
    kernel = SimKernel(tmp_path, overrides={'run': '0', 'pages_to_scan': '123', 'sleep_millisecs': '45'})
    kernel.add_process(1101)
    clock = Clock()
    logs = []
    daemon = Daemon(str(tmp_path / 'none.conf'), config, ksm=kernel.sysfs(), log=logs.append, clock=clock, wall=clock.wall)
    daemon.run_step()
    snapshot = tmp_path / 'run' / 'snapshot.json'
    assert json.loads(snapshot.read_text())['knobs']['pages_to_scan'] == 123
    assert kernel.knob('run') == 1
    daemon.shutdown()
    assert (kernel.knob('run'), kernel.knob('pages_to_scan'), kernel.knob('sleep_millisecs'), kernel.knob('use_zero_pages')) == (0, 123, 45, 0)
    assert not snapshot.exists()
    state = json.loads((tmp_path / 'run' / 'state.json').read_text())
    assert state['phase'] == 'stopped'
    assert ('run', '2') not in kernel.writes


def test_no_restore_when_not_configured(tmp_path):
    config = make_config(state_path=str(tmp_path / 'run' / 'state.json'), restore_on_exit='false')
    kernel = SimKernel(tmp_path)
    kernel.add_process(1201)
    daemon = Daemon(str(tmp_path / 'none.conf'), config, ksm=kernel.sysfs(), log=lambda m: None)
    daemon.run_step()
    daemon.shutdown()
    assert kernel.knob('run') == 1
    assert not (tmp_path / 'run' / 'snapshot.json').exists()


def test_snapshot_of_a_crashed_run_is_reused(tmp_path):
    kernel = SimKernel(tmp_path, overrides={'pages_to_scan': '5000', 'run': '1'})  # a crashed daemon's boost settings
    (tmp_path / 'snapshot.json').write_text(json.dumps({'knobs': {'run': 0, 'pages_to_scan': 100, 'sleep_millisecs': 20}}))
    logs = []
    controller = Controller(make_config(), kernel.sysfs(), log=logs.append, snapshot_path=str(tmp_path / 'snapshot.json'))
    controller.step()
    assert controller.snapshot.knobs['pages_to_scan'] == 100
    assert controller.snapshot.restore()
    assert (kernel.knob('run'), kernel.knob('pages_to_scan')) == (0, 100)


def test_restore_never_unmerges(tmp_path):
    kernel = SimKernel(tmp_path, overrides={'run': '2'})
    controller = Controller(make_config(), kernel.sysfs(), log=lambda m: None)
    controller.step()
    controller.snapshot.restore()
    assert kernel.knob('run') == 0
    assert ('run', '2') not in kernel.writes


# -- unmerging on restore: only when configured to, and only when the take-back fits ---------------

MIB = 1024 * 1024


def merged_kernel(tmp_path, **overrides):
    """A FakeKernel (EBUSY and run=2 as mm/ksm.c does them) with 256 MiB merged and 2048 MiB available."""
    proc = tmp_path / 'proc'
    proc.mkdir(parents=True)
    (proc / 'meminfo').write_text('MemTotal: 8388608 kB\nMemAvailable: 2097152 kB\n')
    values = {'run': '1', 'pages_shared': '1000', 'pages_sharing': '65536'}
    values.update(overrides)
    return FakeKernel(make_tree(tmp_path / 'ksm', values), proc_root=str(proc))


def restore(kernel, saved, **config):
    logs, errors = [], []
    snapshot = KnobSnapshot(kernel, None, logs.append, errors.append, lambda: 0.0, config=lambda: make_config(**config))
    snapshot.knobs = dict(saved)
    assert snapshot.restore() and errors == []
    return snapshot, logs


def test_saved_run_2_is_not_unmerged_unless_configured(tmp_path):
    kernel = merged_kernel(tmp_path)
    snapshot, logs = restore(kernel, {'run': 2, 'sleep_millisecs': 20})
    assert kernel.read('run') == 0 and kernel.read('pages_sharing') == 65536
    assert ('run', '2') not in kernel.writes
    assert snapshot.note == ('kept the KSM pages merged (run=0 instead of run=2): restoring run=2 needs all KSM pages '
                             'unmerged, and unmerge_on_restore is false')
    assert logs[-1] == snapshot.note


def test_saved_run_2_is_unmerged_when_configured_and_it_fits(tmp_path):
    kernel = merged_kernel(tmp_path)
    snapshot, logs = restore(kernel, {'run': 2}, unmerge_on_restore='true', unmerge_margin_mib='1024')
    assert kernel.read('run') == 2 and kernel.read('pages_sharing') == 0
    assert snapshot.note is None
    assert 'it takes back 256.0 MiB of 2048.0 MiB MemAvailable, margin 1024.0 MiB' in logs[0]


def test_saved_run_2_is_not_unmerged_when_it_does_not_fit(tmp_path):
    kernel = merged_kernel(tmp_path)
    snapshot, logs = restore(kernel, {'run': 2}, unmerge_on_restore='true', unmerge_margin_mib='2000')
    assert kernel.read('run') == 0 and kernel.read('pages_sharing') == 65536
    assert ('run', '2') not in kernel.writes
    assert snapshot.note.endswith('it would take back 256.0 MiB, but MemAvailable is 2048.0 MiB and the margin is '
                                  '2000.0 MiB (48.0 MiB may be taken back) (unmerge_margin_mib)')


def test_unmerge_only_knobs_are_left_when_not_allowed_and_the_rest_is_restored(tmp_path):
    kernel = merged_kernel(tmp_path, max_page_sharing='512', pages_to_scan='5000')
    snapshot, dummy = restore(kernel, {'run': 0, 'max_page_sharing': 256, 'pages_to_scan': 100})
    assert (kernel.read('run'), kernel.read('pages_to_scan'), kernel.read('max_page_sharing')) == (0, 100, 512)
    assert 'max_page_sharing left at its current value' in snapshot.note
    # Nothing merged: the knob changes without an unmerge, and nothing needs saying.
    kernel = merged_kernel(tmp_path / 'empty', max_page_sharing='512', pages_shared='0', pages_sharing='0')
    snapshot, dummy = restore(kernel, {'run': 0, 'max_page_sharing': 256})
    assert kernel.read('max_page_sharing') == 256 and snapshot.note is None


def test_unmerge_only_knobs_are_restored_with_an_unmerge_that_fits(tmp_path):
    kernel = merged_kernel(tmp_path, max_page_sharing='512')
    snapshot, dummy = restore(kernel, {'run': 1, 'max_page_sharing': 256}, unmerge_on_restore='true')
    assert (kernel.read('run'), kernel.read('max_page_sharing'), kernel.read('pages_sharing')) == (1, 256, 0)
