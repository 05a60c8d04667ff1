# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""pagefusiond's command line: exit codes, --check-config, --once, --status."""

from __future__ import annotations

import json
import os

from ansible_collections.pagefusion.core.daemon.pagefusiond.cli import (
    EXIT_CONFIG, EXIT_KSM_READ_ONLY, EXIT_NO_KSM, EXIT_OK, main, unwritable_knob)
from ansible_collections.pagefusion.core.daemon.pagefusiond.config import load_config
from ansible_collections.pagefusion.core.daemon.pagefusiond.service import Daemon
from ansible_collections.pagefusion.core.plugins.module_utils import _ksm
from ansible_collections.pagefusion.core.tests.unit.daemon.sim import PAGE, SimKernel


def test_main_bad_config_exits_2(tmp_path, capsys):
    path = tmp_path / 'bad.conf'
    path.write_text('max_cpu_percent = 0\n')
    assert main(['--config', str(path), '--check-config']) == EXIT_CONFIG
    assert main(['--config', str(path), '--once']) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert 'bad configuration' in err and 'max_cpu_percent' in err


def test_main_check_config_ok(tmp_path, capsys):
    path = tmp_path / 'good.conf'
    path.write_text('[pagefusiond]\ninterval = 5\n')
    assert main(['--config', str(path), '--check-config']) == EXIT_OK
    assert 'valid' in capsys.readouterr().out
    assert main(['--config', str(tmp_path / 'missing.conf'), '--check-config']) == EXIT_CONFIG


def test_main_without_ksm_exits_3(tmp_path, capsys):
    ksm = _ksm.KsmSysfs(root=str(tmp_path / 'no-ksm'), proc_root=str(tmp_path), page_size=PAGE)
    assert main(['--config', str(tmp_path / 'absent.conf'), '--once'], ksm=ksm) == EXIT_NO_KSM
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'KSM is not available' in err


def test_main_once_prints_state(tmp_path, capsys):
    kernel = SimKernel(tmp_path)
    conf = tmp_path / 'c.conf'
    conf.write_text('state_path = %s\nlibvirt_uri =\nmetrics_path =\n' % (tmp_path / 'run' / 'state.json'))
    assert main(['--config', str(conf), '--once'], ksm=kernel.sysfs()) == 0
    state = json.loads(capsys.readouterr().out)
    assert state['phase'] == 'idle'
    assert not (tmp_path / 'run').exists()  # --once writes no files


def test_status(tmp_path, capsys):
    kernel = SimKernel(tmp_path)
    conf = tmp_path / 'c.conf'
    conf.write_text('state_path = %s\nlibvirt_uri =\nmetrics_path =\n' % (tmp_path / 'state.json'))
    assert main(['--config', str(conf), '--status']) == 1
    assert 'not running' in capsys.readouterr().out
    daemon = Daemon(str(conf), load_config(str(conf)), ksm=kernel.sysfs(), log=lambda m: None)
    daemon.run_step()
    assert main(['--config', str(conf), '--status']) == 0
    out = capsys.readouterr().out
    assert 'phase idle' in out and 'pages_to_scan=' in out
    state = json.loads((tmp_path / 'state.json').read_text())
    state['updated'] -= 3600
    (tmp_path / 'state.json').write_text(json.dumps(state))
    assert main(['--config', str(conf), '--status']) == 1
    assert 'STALE' in capsys.readouterr().out


def test_main_with_ksm_settings_not_writable_exits_4(tmp_path, capsys):
    kernel = SimKernel(tmp_path)
    ksm = kernel.sysfs()
    # A directory in place of the knob: opening it for writing fails as a read-only mount would (root passes chmod).
    os.unlink(ksm.path('run'))
    os.mkdir(ksm.path('run'))
    conf = tmp_path / 'daemon.conf'
    conf.write_text('state_path = %s\nlibvirt_uri =\nmetrics_path =\n' % (tmp_path / 'run-dir' / 'state.json'))
    assert unwritable_knob(ksm)[0] == ksm.path('run')
    assert main(['--config', str(conf)], ksm=ksm) == EXIT_KSM_READ_ONLY
    err = capsys.readouterr().err
    assert err.count('\n') == 1
    assert 'cannot write the KSM settings: %s' % ksm.path('run') in err and 'exiting' in err
    assert not (tmp_path / 'run-dir').exists() and kernel.writes == []


def test_unwritable_knob_none_when_writable(tmp_path):
    ksm = SimKernel(tmp_path).sysfs()
    before = open(ksm.path('pages_to_scan')).read()
    assert unwritable_knob(ksm) is None
    assert open(ksm.path('pages_to_scan')).read() == before
