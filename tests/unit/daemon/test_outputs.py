# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""pagefusiond's outputs: the state file, Prometheus metrics, staleness."""

from __future__ import annotations

import json
import os

from ansible_collections.pagefusion.core.daemon.pagefusiond.config import DEFAULTS
from ansible_collections.pagefusion.core.daemon.pagefusiond.outputs import is_stale
from ansible_collections.pagefusion.core.daemon.pagefusiond.service import Daemon
from ansible_collections.pagefusion.core.tests.unit.daemon.sim import Clock, SimKernel, make_config


def test_state_and_metrics_files(tmp_path):
    metrics_dir = tmp_path / 'textfile'
    metrics_dir.mkdir()
    conf = make_config(state_path=str(tmp_path / 'run' / 'state.json'), metrics_path=str(metrics_dir / 'pagefusiond.prom'))
    kernel = SimKernel(tmp_path)
    kernel.add_process(1401)
    kernel.add_process(1402)
    clock = Clock()
    daemon = Daemon('/nonexistent.conf', conf, ksm=kernel.sysfs(), log=lambda m: None, clock=clock, wall=clock.wall)
    daemon.run_step()
    kernel.advance(0.5)
    clock.now += 0.5
    daemon.run_step()
    state = json.loads((tmp_path / 'run' / 'state.json').read_text())
    for key in ('phase', 'since', 'knobs', 'saved_bytes', 'saved_pages', 'shared_bytes', 'ksmd_cpu_percent',
                'mergeable_pages_estimate', 'updated', 'pid', 'version', 'config'):
        assert key in state
    assert state['phase'] == 'boost'
    assert state['pid'] == os.getpid()
    assert state['updated'] == clock.wall()
    assert state['mergeable_pages_estimate'] == 2 * 65536
    assert state['ksmd_cpu_percent'] > 10
    assert state['config']['max_cpu_percent'] == DEFAULTS['max_cpu_percent']
    assert not [n for n in os.listdir(str(tmp_path / 'run')) if n.endswith('.tmp')]
    text = (metrics_dir / 'pagefusiond.prom').read_text()
    assert 'pagefusiond_phase{phase="boost"} 1\n' in text
    assert 'pagefusiond_phase{phase="idle"} 0\n' in text
    assert '# TYPE pagefusiond_ksm_saved_bytes gauge' in text
    assert 'pagefusiond_ksm_saved_bytes %d\n' % state['saved_bytes'] in text
    assert 'pagefusiond_ksm_pages_to_scan %d\n' % state['knobs']['pages_to_scan'] in text
    assert 'pagefusiond_ksmd_cpu_ratio ' in text
    assert 'pagefusiond_up 1\n' in text


def test_is_stale():
    state = {'phase': 'steady', 'updated': 1000.0, 'config': {'interval': 2.0, 'boost_interval': 0.5}}
    assert not is_stale(state, now=1010.0)
    assert is_stale(state, now=1012.0)
    assert is_stale(dict(state, phase='stopped'), now=1000.0)
