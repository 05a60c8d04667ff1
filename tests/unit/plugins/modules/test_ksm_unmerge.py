# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The ksm module refuses an unmerge that does not fit in MemAvailable minus the margin (check mode alike).

The kernel side is the FakeKernel of the KSM model's tests; the real kernel is in the ``ksm`` integration target.
"""

from __future__ import annotations

import pytest

from ansible_collections.pagefusion.core.plugins.modules import ksm as ksm_module
from ansible_collections.pagefusion.core.tests.unit.plugins.module_utils.test_ksm import FakeKernel, make_tree

MIB = 1024 * 1024
# 256 MiB merged (pages_sharing, 4 KiB pages) on a host with 2048 MiB available.
MERGED = {'run': '1', 'pages_shared': '1000', 'pages_sharing': '65536', 'ksm_zero_pages': '0'}


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    proc = tmp_path / 'proc'
    proc.mkdir()
    (proc / 'meminfo').write_text('MemTotal: 8388608 kB\nMemAvailable: 2097152 kB\n')
    fake = FakeKernel(make_tree(tmp_path / 'ksm', MERGED), proc_root=str(proc))
    monkeypatch.setattr(ksm_module, 'KsmSysfs', lambda: fake)
    return fake


@pytest.mark.parametrize('check_mode', [True, False])
def test_run_2_refused_when_short(run_module, kernel, check_mode):
    result, failed = run_module(ksm_module.main, {'run': 2, 'unmerge_margin_mib': 2000}, check_mode=check_mode)
    assert failed and result['changed'] is False
    assert result['msg'].startswith('Refusing to unmerge all KSM pages (run=2): it would take back 256.0 MiB, '
                                    'but MemAvailable is 2048.0 MiB and the margin is 2000.0 MiB (48.0 MiB may be taken back)')
    assert result['unmerge_fit']['fits'] is False and result['unmerge_fit']['take_back_bytes'] == 256 * MIB
    assert kernel.writes == []


def test_run_2_fits_with_the_default_margin(run_module, kernel):
    result, failed = run_module(ksm_module.main, {'run': 2}, check_mode=True)
    assert not failed and result['changed'] and result['unmerge_fit']['fits']
    assert result['unmerge_fit']['margin_bytes'] == 1024 * MIB
    result, failed = run_module(ksm_module.main, {'run': 2})
    assert not failed and kernel.read('run') == 2 and kernel.read('pages_sharing') == 0
    result, failed = run_module(ksm_module.main, {'run': 2, 'unmerge_margin_mib': 10 ** 6}, check_mode=True)
    assert not failed and not result['changed'] and 'unmerge_fit' not in result


def test_run_2_when_short_with_the_override_warns(run_module, kernel):
    result, failed = run_module(ksm_module.main, {'run': 2, 'unmerge_margin_mib': 2000, 'unmerge_when_short': True})
    assert not failed and result['changed'] and result['unmerge_fit']['fits'] is False
    assert 'unmerge_when_short=true' in result['warnings'][0] and kernel.read('run') == 2


def test_stopping_without_unmerge_is_never_refused(run_module, kernel):
    result, failed = run_module(ksm_module.main, {'run': 0, 'unmerge_margin_mib': 10 ** 6})
    assert not failed and kernel.read('run') == 0 and kernel.read('pages_sharing') == 65536


def test_allow_unmerge_refused_when_short_before_any_write(run_module, kernel):
    args = {'max_page_sharing': 512, 'sleep_millisecs': 50, 'allow_unmerge': True, 'unmerge_margin_mib': 2000}
    for check_mode in (True, False):
        result, failed = run_module(ksm_module.main, args, check_mode=check_mode)
        assert failed and 'to change max_page_sharing: it would take back 256.0 MiB' in result['msg']
    assert kernel.writes == []
    result, failed = run_module(ksm_module.main, dict(args, unmerge_margin_mib=0, unmerge_timeout=5))
    assert not failed and result['unmerged'] and result['unmerge_fit']['fits']
    assert (kernel.read('max_page_sharing'), kernel.read('run')) == (512, 1)


def test_without_allow_unmerge_the_busy_error_comes_first(run_module, kernel):
    result, failed = run_module(ksm_module.main, {'max_page_sharing': 512, 'unmerge_margin_mib': 2000})
    assert failed and 'allow_unmerge' in result['msg'] and 'unmerge_fit' not in result


@pytest.mark.parametrize('args', [{'unmerge_margin_mib': -1}, {'unmerge_timeout': 0}])
def test_bad_unmerge_options(run_module, kernel, args):
    result, failed = run_module(ksm_module.main, args)
    assert failed and 'unmerge_margin_mib must be at least 0' in result['msg']
