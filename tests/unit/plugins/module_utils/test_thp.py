# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The THP model (module_utils/_thp.py) on a fake /sys/kernel/mm/transparent_hugepage tree."""

from __future__ import annotations

import pytest

from ansible_collections.pagefusion.core.plugins.module_utils import _thp


def make_thp_tree(path, enabled='always [madvise] never', max_ptes_none='511', hpage_pmd_size='2097152'):
    """A fake THP sysfs directory; ``max_ptes_none=None`` leaves khugepaged out (a kernel without THP)."""
    path.mkdir(parents=True)
    (path / 'enabled').write_text(enabled + '\n')
    (path / 'defrag').write_text('always defer defer+madvise [madvise] never\n')
    (path / 'hpage_pmd_size').write_text(hpage_pmd_size + '\n')
    if max_ptes_none is not None:
        (path / 'khugepaged').mkdir()
        (path / 'khugepaged' / 'max_ptes_none').write_text(max_ptes_none + '\n')
    return path


def read_max_ptes_none(tree):
    return int((tree / 'khugepaged' / 'max_ptes_none').read_text())


@pytest.mark.parametrize('text, mode', [('always [madvise] never', 'madvise'), ('[always] madvise never', 'always'),
                                        ('always madvise [never]', 'never'), ('always madvise never', None)])
def test_parse_mode(text, mode):
    assert _thp.parse_mode(text) == mode


def test_state_of_the_kernel_default_is_at_risk(tmp_path):
    state = _thp.ThpSysfs(str(make_thp_tree(tmp_path / 'thp')), page_size=4096).state()
    assert state == {'present': True, 'enabled': 'madvise', 'defrag': 'madvise', 'max_ptes_none': 511,
                     'max_ptes_none_limit': 511, 'zero_pages_at_risk': True}


@pytest.mark.parametrize('enabled, value, risk', [('always [madvise] never', '0', False), ('always madvise [never]', '511', False),
                                                  ('[always] madvise never', '64', True)])
def test_zero_pages_at_risk(tmp_path, enabled, value, risk):
    sysfs = _thp.ThpSysfs(str(make_thp_tree(tmp_path / 'thp', enabled, value)), page_size=4096)
    assert sysfs.state()['zero_pages_at_risk'] is risk


def test_kernel_without_thp(tmp_path):
    sysfs = _thp.ThpSysfs(str(tmp_path / 'nothing'), page_size=4096)
    assert sysfs.state()['present'] is False and sysfs.state()['zero_pages_at_risk'] is False
    assert sysfs.plan(None) == {}
    with pytest.raises(_thp.ThpNotAvailableError, match='CONFIG_TRANSPARENT_HUGEPAGE'):
        sysfs.plan(0)


def test_plan_is_idempotent_and_validated(tmp_path):
    sysfs = _thp.ThpSysfs(str(make_thp_tree(tmp_path / 'thp')), page_size=4096)
    assert sysfs.plan(0) == {'max_ptes_none': (511, 0)}
    assert sysfs.plan(511) == {}
    for bad in (-1, 512, True, '0'):
        with pytest.raises(_thp.ThpValueError, match='from 0 to 511'):
            sysfs.plan(bad)


def test_limit_follows_the_huge_page_and_page_size(tmp_path):
    # arm64 with 64 KiB pages: 512 MiB PMD huge pages of 8192 pages.
    sysfs = _thp.ThpSysfs(str(make_thp_tree(tmp_path / 'thp', hpage_pmd_size=str(512 * 1024 * 1024))), page_size=65536)
    assert sysfs.limit() == 8191


def test_write_and_beside(tmp_path):
    tree = make_thp_tree(tmp_path / 'transparent_hugepage')
    sysfs = _thp.ThpSysfs.beside(str(tmp_path / 'ksm'), page_size=4096)
    assert sysfs.root == str(tree)
    sysfs.write_max_ptes_none(0)
    assert read_max_ptes_none(tree) == 0


def test_write_without_khugepaged_names_the_file(tmp_path):
    sysfs = _thp.ThpSysfs(str(make_thp_tree(tmp_path / 'thp', max_ptes_none=None)), page_size=4096)
    with pytest.raises(_thp.ThpNotAvailableError, match='khugepaged/max_ptes_none is missing'):
        sysfs.write_max_ptes_none(0)


def test_risk_warning_only_with_zero_pages():
    state = {'enabled': 'madvise', 'max_ptes_none': 511, 'zero_pages_at_risk': True}
    assert 'max_ptes_none is 511' in _thp.risk_warning(state, use_zero_pages=True)
    assert _thp.risk_warning(state, use_zero_pages=False) is None
    assert _thp.risk_warning(dict(state, zero_pages_at_risk=False), use_zero_pages=True) is None
