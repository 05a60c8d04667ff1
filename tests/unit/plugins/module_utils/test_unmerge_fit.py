# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Unit tests of the unmerge fit (pure figures) and of the vm plans that it refuses."""

from __future__ import annotations

import pytest

from ansible_collections.pagefusion.core.plugins.module_utils import _unmerge_fit as fit_mod
from ansible_collections.pagefusion.core.plugins.module_utils._fusion import (
    VmRecord,
    check_unmerge_fit,
    plan_vm,
    result_for,
    unmerges_on_restart,
)
from ansible_collections.pagefusion.core.plugins.module_utils._ksm import KsmSysfs

MIB = 1024 * 1024
MEMINFO = 'MemTotal:       24576000 kB\nMemFree:         1000000 kB\nMemAvailable:    2097152 kB\nHugePages_Total:       0\n'


def test_parse_meminfo_gives_bytes():
    values = fit_mod.parse_meminfo(MEMINFO)
    assert values['MemAvailable'] == 2048 * MIB
    assert values['HugePages_Total'] == 0  # no unit: a count, kept as it is


def test_read_mem_available(tmp_path):
    (tmp_path / 'meminfo').write_text(MEMINFO)
    assert fit_mod.read_mem_available(str(tmp_path)) == 2048 * MIB
    (tmp_path / 'meminfo').write_text('MemTotal: 1000 kB\n')  # a kernel before 3.14
    assert fit_mod.read_mem_available(str(tmp_path)) is None
    assert fit_mod.read_mem_available(str(tmp_path / 'missing')) is None


def test_host_take_back_counts_sharing_and_zero_pages():
    counters = {'pages_shared': 10, 'pages_sharing': 300, 'ksm_zero_pages': 50}
    assert fit_mod.host_take_back_bytes(counters, 4096) == 350 * 4096
    # An old kernel's negative ksm_zero_pages (an accounting bug) counts as nothing.
    assert fit_mod.host_take_back_bytes({'pages_sharing': 3, 'ksm_zero_pages': -2}, 4096) == 3 * 4096
    assert fit_mod.host_take_back_bytes({}, 4096) == 0


def test_process_take_back():
    assert fit_mod.process_take_back_bytes({'merging_pages': 100, 'zero_pages': 28}, 4096) == 128 * 4096
    assert fit_mod.process_take_back_bytes({'merging_pages': 100, 'zero_pages': None}, 4096) == 100 * 4096
    assert fit_mod.process_take_back_bytes(None, 4096) is None


@pytest.mark.parametrize('take_back, available, margin, fits', [
    (100 * MIB, 2048 * MIB, 1024, True),
    (1024 * MIB, 2048 * MIB, 1024, True),       # exactly the room
    (1025 * MIB, 2048 * MIB, 1024, False),
    (0, 2048 * MIB, 4096, True),                # nothing to take back always fits
    (1, 2048 * MIB, 4096, False),               # the margin is above MemAvailable: no room at all
    (1, None, 0, False),                        # MemAvailable unknown: never fits a real take-back
    (0, None, 0, True),
])
def test_assess(take_back, available, margin, fits):
    fit = fit_mod.assess(take_back, available, margin)
    assert fit['fits'] is fits
    assert fit['margin_bytes'] == margin * MIB
    assert fit['take_back_bytes'] == take_back


def test_describe_and_require_fit_name_both_figures_and_the_margin():
    fit = fit_mod.assess(3000 * MIB, 2048 * MIB, 1024)
    with pytest.raises(fit_mod.UnmergeShortError) as info:
        fit_mod.require_fit(fit, 'Refusing to unmerge', 'unmerge_when_short=true')
    text = str(info.value)
    assert 'it would take back 3000.0 MiB, but MemAvailable is 2048.0 MiB and the margin is 1024.0 MiB' in text
    assert '(1024.0 MiB may be taken back)' in text
    assert 'unmerge_when_short=true' in text and 'Nothing was changed' in text
    assert info.value.fit is fit
    assert fit_mod.require_fit(fit, 'x', 'y', when_short=True) is fit
    assert 'cannot be read' in fit_mod.describe(fit_mod.assess(MIB, None, 0))
    # A margin above MemAvailable leaves no room, not a negative one.
    assert '(0.0 MiB may be taken back)' in fit_mod.describe(fit_mod.assess(MIB, 512 * MIB, 1024))


def test_host_fit_reads_counters_and_meminfo(tmp_path):
    ksm = tmp_path / 'ksm'
    ksm.mkdir()
    for name, value in (('run', 1), ('pages_shared', 5), ('pages_sharing', 256), ('ksm_zero_pages', 0)):
        (ksm / name).write_text('%d\n' % value)
    (tmp_path / 'meminfo').write_text(MEMINFO)
    sysfs = KsmSysfs(root=str(ksm), proc_root=str(tmp_path), page_size=4096)
    fit = fit_mod.host_fit(sysfs, 0, str(tmp_path))
    assert (fit['take_back_bytes'], fit['mem_available_bytes'], fit['fits']) == (MIB, 2048 * MIB, True)
    assert fit_mod.host_fit(sysfs, 2048, str(tmp_path))['fits'] is False


# -- the vm module's plans ---------------------------------------------------------------------


def record(name, running=True, fusion=True, fusion_live=True):
    return VmRecord(name, 'libvirt', 'running' if running else 'shut off', not running, fusion,
                    fusion_live=fusion_live if running else None)


def test_unmerges_on_restart_only_for_running_vms_losing_fusion():
    assert unmerges_on_restart(plan_vm(record('a'), False, 'restart'))
    assert not unmerges_on_restart(plan_vm(record('a'), False, 'defer'))
    assert not unmerges_on_restart(plan_vm(record('a', running=False), False, 'restart'))
    assert not unmerges_on_restart(plan_vm(record('a', fusion=False, fusion_live=False), True, 'restart'))
    # Deferred earlier: the definition is already right, the restart still takes the merged memory back.
    assert unmerges_on_restart(plan_vm(record('a', fusion=False, fusion_live=True), False, 'restart'))


def test_check_unmerge_fit_adds_up_in_plan_order_and_refuses_with_figures():
    plans = [plan_vm(record(name), False, 'restart') for name in ('a', 'b', 'c')]
    merged = {'a': 600 * MIB, 'b': 600 * MIB}
    errors, warnings = check_unmerge_fit(plans, merged, 2048 * MIB, 1024, False)
    assert plans[0].unmerge_fit['fits'] and plans[0].unmerge_fit['vm_merged_bytes'] == 600 * MIB
    assert not plans[1].unmerge_fit['fits'] and plans[1].unmerge_fit['take_back_bytes'] == 1200 * MIB
    assert plans[2].unmerge_fit is None
    assert errors == [
        "Refusing: restarting VM 'b' without page fusion takes back the 600.0 MiB it has merged (ksm_stat) (with the "
        "VMs before it in this run): it would take back 1200.0 MiB, but MemAvailable is 2048.0 MiB and the margin is "
        "1024.0 MiB (1024.0 MiB may be taken back). Free memory first, lower unmerge_margin_mib, or set "
        "unmerge_when_short=true. Nothing was changed."]
    assert len(warnings) == 1 and "VM 'c' has merged" in warnings[0]
    assert result_for(plans[1], [], False)['unmerge_fit']['fits'] is False
    assert 'unmerge_fit' not in result_for(plans[2], [], False)


def test_check_unmerge_fit_override_warns_instead():
    plans = [plan_vm(record('a'), False, 'restart')]
    errors, warnings = check_unmerge_fit(plans, {'a': 3000 * MIB}, 2048 * MIB, 1024, True)
    assert errors == []
    assert 'Restarting it anyway (unmerge_when_short=true)' in warnings[0]


def test_check_unmerge_fit_nothing_merged_fits_any_margin():
    plans = [plan_vm(record('a'), False, 'restart')]
    errors, dummy = check_unmerge_fit(plans, {'a': 0}, 2048 * MIB, 10 ** 6, False)
    assert errors == [] and plans[0].unmerge_fit['fits']
