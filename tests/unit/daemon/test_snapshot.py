# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The host's KSM knobs: saved when pagefusiond starts, put back when it stops, never unmerging."""

from __future__ import annotations

import json

from ansible_collections.pagefusion.core.daemon.pagefusiond.controller import Controller
from ansible_collections.pagefusion.core.daemon.pagefusiond.service import Daemon
from ansible_collections.pagefusion.core.tests.unit.daemon.sim import Clock, SimKernel, make_config


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
