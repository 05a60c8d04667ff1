# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The ksm module's thp_max_ptes_none: check, real, check again; diff; persist; a kernel without THP.

The fake THP tree sits next to the fake KSM tree, where the module looks (ThpSysfs.beside); the real kernel
is in the ``ksm`` integration target.
"""

from __future__ import annotations

import pytest

from ansible_collections.pagefusion.core.plugins.modules import ksm as ksm_module
from ansible_collections.pagefusion.core.tests.unit.plugins.module_utils.test_ksm import FakeKernel, make_tree
from ansible_collections.pagefusion.core.tests.unit.plugins.module_utils.test_thp import make_thp_tree, read_max_ptes_none


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    fake = FakeKernel(make_tree(tmp_path / 'ksm'))
    monkeypatch.setattr(ksm_module, 'KsmSysfs', lambda: fake)
    return fake


def test_check_real_check_again(run_module, kernel, tmp_path):
    tree = make_thp_tree(tmp_path / 'transparent_hugepage')
    result, failed = run_module(ksm_module.main, {'thp_max_ptes_none': 0}, check_mode=True, diff=True)
    assert not failed and result['changed'] is True
    assert result['before'] == {'thp_max_ptes_none': 511} and result['after'] == {'thp_max_ptes_none': 0}
    assert result['diff'] == {'before': {'thp_max_ptes_none': 511}, 'after': {'thp_max_ptes_none': 0}}
    assert result['thp'] == {'enabled': 'madvise', 'max_ptes_none': 0, 'zero_pages_at_risk': False}
    assert read_max_ptes_none(tree) == 511
    result, failed = run_module(ksm_module.main, {'thp_max_ptes_none': 0})
    assert not failed and result['changed'] is True and read_max_ptes_none(tree) == 0
    for check_mode in (True, False):
        result, failed = run_module(ksm_module.main, {'thp_max_ptes_none': 0}, check_mode=check_mode)
        assert not failed and result['changed'] is False
    assert kernel.writes == []


def test_together_with_ksm_knobs(run_module, kernel, tmp_path):
    make_thp_tree(tmp_path / 'transparent_hugepage', max_ptes_none='0')
    result, failed = run_module(ksm_module.main, {'use_zero_pages': True, 'thp_max_ptes_none': 0})
    assert not failed and result['changed'] is True
    assert result['after'] == {'use_zero_pages': 1, 'thp_max_ptes_none': 0}


def test_out_of_range_fails_before_any_write(run_module, kernel, tmp_path):
    tree = make_thp_tree(tmp_path / 'transparent_hugepage')
    result, failed = run_module(ksm_module.main, {'thp_max_ptes_none': 512, 'run': 1})
    assert failed and result['changed'] is False
    assert 'thp_max_ptes_none' in result['msg'] and 'from 0 to 511' in result['msg']
    assert read_max_ptes_none(tree) == 511 and kernel.writes == []


def test_kernel_without_thp_fails_clearly(run_module, kernel):
    result, failed = run_module(ksm_module.main, {'thp_max_ptes_none': 0})
    assert failed and 'CONFIG_TRANSPARENT_HUGEPAGE' in result['msg'] and 'khugepaged/max_ptes_none' in result['msg']


def test_unset_leaves_thp_alone(run_module, kernel, tmp_path):
    tree = make_thp_tree(tmp_path / 'transparent_hugepage')
    result, failed = run_module(ksm_module.main, {'pages_to_scan': 100})
    assert not failed and 'thp' not in result and 'thp_max_ptes_none' not in result['after']
    assert read_max_ptes_none(tree) == 511


def test_persist_writes_the_khugepaged_line(run_module, kernel, tmp_path):
    make_thp_tree(tmp_path / 'transparent_hugepage')
    path = tmp_path / 'etc' / 'pagefusion-ksm.conf'
    result, failed = run_module(ksm_module.main, {'use_zero_pages': True, 'thp_max_ptes_none': 0, 'persist': True,
                                                  'persist_path': str(path)})
    assert not failed
    lines = path.read_text().splitlines()
    assert lines[-1] == 'w /sys/kernel/mm/transparent_hugepage/khugepaged/max_ptes_none - - - - 0'
