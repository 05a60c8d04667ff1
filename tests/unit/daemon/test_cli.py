# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""pagefusiond's command line: exit codes, --check-config, --once, --status."""

from __future__ import annotations

import json

from ansible_collections.pagefusion.core.daemon.pagefusiond.cli import EXIT_CONFIG, EXIT_NO_KSM, EXIT_OK, main
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
