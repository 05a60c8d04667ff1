# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""thp_max_ptes_none: pagefusiond sets khugepaged's max_ptes_none while it runs and puts the host's value back.

The fake THP tree sits next to the SimKernel's fake KSM tree, where the snapshot looks (ThpSysfs.beside).
"""

from __future__ import annotations

import errno
import json

import pytest

from ansible_collections.pagefusion.core.daemon.pagefusiond.config import ConfigError, validate_config
from ansible_collections.pagefusion.core.daemon.pagefusiond.service import Daemon
from ansible_collections.pagefusion.core.plugins.module_utils import _thp
from ansible_collections.pagefusion.core.tests.unit.daemon.sim import Clock, SimKernel, make_config
from ansible_collections.pagefusion.core.tests.unit.plugins.module_utils.test_thp import make_thp_tree, read_max_ptes_none


def start(tmp_path, logs, **settings):
    config = make_config(state_path=str(tmp_path / 'run' / 'state.json'), **settings)
    kernel = SimKernel(tmp_path)
    kernel.add_process(1301)
    clock = Clock()
    daemon = Daemon(str(tmp_path / 'none.conf'), config, ksm=kernel.sysfs(), log=logs.append, clock=clock, wall=clock.wall)
    daemon.run_step()
    return daemon


def test_set_while_running_and_restored_on_stop(tmp_path):
    tree = make_thp_tree(tmp_path / 'transparent_hugepage')
    logs = []
    daemon = start(tmp_path, logs, thp_max_ptes_none='0')
    assert read_max_ptes_none(tree) == 0
    saved = json.loads((tmp_path / 'run' / 'snapshot.json').read_text())
    assert saved['thp'] == {'max_ptes_none': 511}
    assert any('set khugepaged max_ptes_none=0 (was 511)' in line for line in logs)
    daemon.shutdown()
    assert read_max_ptes_none(tree) == 511
    assert any('restored khugepaged max_ptes_none=511' in line for line in logs)


def test_keep_leaves_it_alone(tmp_path):
    tree = make_thp_tree(tmp_path / 'transparent_hugepage', max_ptes_none='64')
    daemon = start(tmp_path, [], thp_max_ptes_none='keep')
    assert read_max_ptes_none(tree) == 64
    assert 'thp' not in json.loads((tmp_path / 'run' / 'snapshot.json').read_text())
    daemon.shutdown()
    assert read_max_ptes_none(tree) == 64


def test_already_at_the_value_saves_nothing(tmp_path):
    tree = make_thp_tree(tmp_path / 'transparent_hugepage', max_ptes_none='0')
    daemon = start(tmp_path, [], thp_max_ptes_none='0')
    assert 'thp' not in json.loads((tmp_path / 'run' / 'snapshot.json').read_text())
    daemon.shutdown()
    assert read_max_ptes_none(tree) == 0


def test_a_crashed_run_leaves_the_hosts_value_for_the_next(tmp_path):
    tree = make_thp_tree(tmp_path / 'transparent_hugepage', max_ptes_none='0')  # the crashed daemon's value
    (tmp_path / 'run').mkdir()
    (tmp_path / 'run' / 'snapshot.json').write_text(json.dumps({'knobs': {'run': 0}, 'thp': {'max_ptes_none': 511}}))
    daemon = start(tmp_path, [], thp_max_ptes_none='0')
    daemon.shutdown()
    assert read_max_ptes_none(tree) == 511


def test_no_restore_when_not_configured_to(tmp_path):
    tree = make_thp_tree(tmp_path / 'transparent_hugepage')
    daemon = start(tmp_path, [], thp_max_ptes_none='0', restore_on_exit='false')
    daemon.shutdown()
    assert read_max_ptes_none(tree) == 0


def test_kernel_without_thp_is_quiet(tmp_path):
    logs = []
    daemon = start(tmp_path, logs, thp_max_ptes_none='0')
    daemon.shutdown()
    assert not any('max_ptes_none' in line for line in logs)


def test_unwritable_knob_is_one_clear_error(tmp_path, monkeypatch):
    tree = make_thp_tree(tmp_path / 'transparent_hugepage')

    def read_only(self, value):
        raise _thp.ThpWriteError(self.khugepaged_path('max_ptes_none'), value, OSError(errno.EROFS, 'Read-only file system'))

    monkeypatch.setattr(_thp.ThpSysfs, 'write_max_ptes_none', read_only)
    logs = []
    daemon = start(tmp_path, logs, thp_max_ptes_none='0')
    daemon.shutdown()
    assert read_max_ptes_none(tree) == 511
    errors = [line for line in logs if 'cannot set khugepaged max_ptes_none (thp_max_ptes_none)' in line]
    assert len(errors) == 1 and 'Read-only file system' in errors[0]


def test_default_is_zero_as_measured(tmp_path):
    # docs/thp-and-ksm-zero-pages.md: with 511 khugepaged gave the zero pages back as memory within a minute.
    tree = make_thp_tree(tmp_path / 'transparent_hugepage')
    daemon = start(tmp_path, [])
    assert read_max_ptes_none(tree) == 0
    daemon.shutdown()
    assert read_max_ptes_none(tree) == 511


def test_without_a_snapshot_file_it_is_left_alone(tmp_path):
    # pagefusiond --once keeps no snapshot file: a value it set could never be put back.
    tree = make_thp_tree(tmp_path / 'transparent_hugepage')
    kernel = SimKernel(tmp_path)
    kernel.add_process(1401)
    daemon = Daemon(str(tmp_path / 'none.conf'), make_config(), ksm=kernel.sysfs(), log=lambda m: None)
    daemon.controller.snapshot.path = None
    daemon.controller.step()
    assert read_max_ptes_none(tree) == 511


@pytest.mark.parametrize('raw, value', [('keep', 'keep'), ('0', 0), ('511', 511)])
def test_config_values(raw, value):
    assert validate_config({'thp_max_ptes_none': raw})['thp_max_ptes_none'] == value


@pytest.mark.parametrize('raw', ['512', '-1', 'off', ''])
def test_config_refuses_bad_values(raw):
    with pytest.raises(ConfigError, match='thp_max_ptes_none: allowed values are keep, or an integer from 0 to 511'):
        validate_config({'thp_max_ptes_none': raw})
