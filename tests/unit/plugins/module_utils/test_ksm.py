# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Unit tests of the KSM model on a temporary sysfs tree shaped like a 6.18 kernel's.

A plain file tree cannot answer EBUSY or EINVAL, so FakeKernel re-implements the write rules of
mm/ksm.c (checked on a real 6.18 kernel) on top of the tree and records every write.
"""

from __future__ import annotations

import errno
import os

import pytest

from ansible_collections.pagefusion.core.plugins.module_utils import _ksm
from ansible_collections.pagefusion.core.plugins.module_utils._ksm import (
    KERNEL_DEFAULTS,
    KsmAdvisorError,
    KsmBusyError,
    KsmNotAvailableError,
    KsmPermissionError,
    KsmSysfs,
    KsmUnknownKnobError,
    KsmUnmergeTimeout,
    KsmUnsupportedError,
    KsmValueError,
    KsmWriteError,
    check_plan,
    find_ksmd_pid,
    parse_ksm_stat,
    parse_value,
    plan_changes,
    predict_knobs,
    read_ksmd_cpu_seconds,
    read_process_ksm,
    tmpfiles_lines,
    unmerge_needed,
    write_order,
)

# The file set and formats of /sys/kernel/mm/ksm on the 6.18 development kernel, at defaults.
REAL_TREE = {
    'advisor_max_cpu': '70',
    'advisor_max_pages_to_scan': '30000',
    'advisor_min_pages_to_scan': '500',
    'advisor_mode': '[none] scan-time',
    'advisor_target_scan_time': '200',
    'full_scans': '0',
    'general_profit': '0',
    'ksm_zero_pages': '0',
    'max_page_sharing': '256',
    'merge_across_nodes': '1',
    'pages_scanned': '0',
    'pages_shared': '0',
    'pages_sharing': '0',
    'pages_skipped': '0',
    'pages_to_scan': '100',
    'pages_unshared': '0',
    'pages_volatile': '0',
    'run': '0',
    'sleep_millisecs': '20',
    'smart_scan': '1',
    'stable_node_chains': '0',
    'stable_node_chains_prune_millisecs': '2000',
    'stable_node_dups': '0',
    'use_zero_pages': '0',
}

ADVISOR_FILES = ('advisor_max_cpu', 'advisor_max_pages_to_scan', 'advisor_min_pages_to_scan', 'advisor_mode', 'advisor_target_scan_time')


def make_tree(path, overrides=None, without=()):
    path.mkdir(parents=True, exist_ok=True)
    values = dict(REAL_TREE)
    values.update(overrides or {})
    for name, value in values.items():
        if name in without:
            continue
        (path / name).write_text('%s\n' % value)
    return path


class RecordingSysfs(KsmSysfs):
    """Writes to the tree like the real class, and records each write."""

    def __init__(self, root, **kwargs):
        kwargs.setdefault('page_size', 4096)
        KsmSysfs.__init__(self, str(root), **kwargs)
        self.writes = []

    def _write_raw(self, name, text):
        self.writes.append((name, text))
        KsmSysfs._write_raw(self, name, text)

    def set_file(self, name, value):
        with open(self.path(name), 'w') as handle:
            handle.write('%s\n' % value)


class FakeKernel(RecordingSysfs):
    """The write rules of mm/ksm.c on top of the fake tree."""

    def __init__(self, root, **kwargs):
        RecordingSysfs.__init__(self, root, **kwargs)
        self.fail_next = {}       # knob -> errno to raise once
        self.unmerge_works = True

    def _write_raw(self, name, text):
        self.writes.append((name, text))
        if name in self.fail_next:
            raise OSError(self.fail_next.pop(name), os.strerror(errno.EBUSY))
        raw = self._read_raw(name).strip()
        if name == 'pages_to_scan' and '[scan-time]' in self._read_raw('advisor_mode'):
            raise OSError(errno.EINVAL, 'Invalid argument')
        if name in ('merge_across_nodes', 'max_page_sharing') and raw != text and int(self._read_raw('pages_shared')):
            raise OSError(errno.EBUSY, 'Device or resource busy')
        if name == 'run' and text == '2' and self.unmerge_works:
            for counter in ('pages_shared', 'pages_sharing', 'pages_unshared', 'pages_volatile'):
                self.set_file(counter, 0)
        if name == 'advisor_mode':
            previous = parse_value('advisor_mode', raw)
            self.set_file('advisor_mode', '[none] scan-time' if text == 'none' else 'none [scan-time]')
            if previous != text:
                self.set_file('pages_to_scan', 100 if text == 'none' else self._read_raw('advisor_min_pages_to_scan').strip())
            return
        self.set_file(name, text)


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / 'ksm')


@pytest.fixture
def kernel(tree):
    return FakeKernel(tree)


# -- reading ---------------------------------------------------------------------------------


def test_present_and_missing(tmp_path, tree):
    assert KsmSysfs(str(tree), page_size=4096).present()
    missing = KsmSysfs(str(tmp_path / 'nope'), page_size=4096)
    assert not missing.present()
    with pytest.raises(KsmNotAvailableError) as exc:
        missing.read_all()
    assert 'CONFIG_KSM' in str(exc.value)
    with pytest.raises(KsmNotAvailableError):
        missing.plan({'run': 1})


def test_read_all_separates_knobs_and_counters(tmp_path):
    tree = make_tree(tmp_path / 'ksm', overrides={
        'pages_shared': '10', 'pages_sharing': '90', 'ksm_zero_pages': '5', 'general_profit': '-4096',
        'advisor_mode': 'none [scan-time]',
    })
    (tree / 'some_future_counter').write_text('7\n')
    state = KsmSysfs(str(tree), page_size=4096).read_all()
    assert set(state['knobs']) == set(_ksm.KNOB_NAMES)
    assert state['knobs']['advisor_mode'] == 'scan-time'
    assert state['knobs']['run'] == 0 and state['knobs']['pages_to_scan'] == 100
    assert state['counters']['general_profit'] == -4096
    assert state['counters']['ksm_zero_pages'] == 5
    assert 'run' not in state['counters'] and 'pages_shared' not in state['knobs']
    assert state['other'] == {'some_future_counter': 7}
    assert state['page_size'] == 4096
    assert state['saved_pages'] == 95
    assert state['saved_bytes'] == 95 * 4096
    assert state['shared_bytes'] == 10 * 4096


def test_read_all_negative_zero_pages_and_old_kernel(tmp_path):
    old = ('smart_scan', 'pages_scanned', 'pages_skipped', 'general_profit', 'ksm_zero_pages') + ADVISOR_FILES
    tree = make_tree(tmp_path / 'ksm', overrides={'pages_sharing': '3'}, without=old)
    state = KsmSysfs(str(tree), page_size=4096).read_all()
    assert 'advisor_mode' not in state['knobs'] and 'smart_scan' not in state['knobs']
    assert 'ksm_zero_pages' not in state['counters']
    assert state['saved_pages'] == 3


def test_parse_value():
    assert parse_value('advisor_mode', '[none] scan-time\n') == 'none'
    assert parse_value('advisor_mode', 'none [scan-time]\n') == 'scan-time'
    assert parse_value('general_profit', '-123\n') == -123
    assert parse_value('run', '1\n') == 1


def test_page_size_default_from_sysconf(tree):
    assert KsmSysfs(str(tree)).page_size == os.sysconf('SC_PAGE_SIZE')


# -- /proc -----------------------------------------------------------------------------------

KSM_STAT_618 = (
    'ksm_rmap_items 64\n'
    'ksm_zero_pages 0\n'
    'ksm_merging_pages 64\n'
    'ksm_process_profit 258048\n'
    'ksm_merge_any: no\n'
    'ksm_mergeable: yes\n'
)


def make_proc(tmp_path, processes):
    proc = tmp_path / 'proc'
    proc.mkdir()
    for pid, files in processes.items():
        base = proc / str(pid)
        base.mkdir()
        for name, text in files.items():
            (base / name).write_text(text)
    (proc / 'self').mkdir()
    (proc / 'meminfo').write_text('MemTotal: 1 kB\n')
    return proc


def test_parse_ksm_stat_both_formats_and_unknown_keys():
    parsed = parse_ksm_stat(KSM_STAT_618 + 'ksm_future_thing 12\nksm_future_flag: yes\n')
    assert parsed['ksm_rmap_items'] == 64
    assert parsed['ksm_process_profit'] == 258048
    assert parsed['ksm_merge_any'] is False
    assert parsed['ksm_mergeable'] is True
    assert parsed['ksm_future_thing'] == 12
    assert parsed['ksm_future_flag'] is True


def test_read_process_ksm(tmp_path):
    proc = make_proc(tmp_path, {
        100: {'ksm_stat': KSM_STAT_618 + 'ksm_future_thing 3\n', 'ksm_merging_pages': '64\n'},
        # ~6.4 kernel: ksm_stat without the yes/no lines, and a negative profit
        200: {'ksm_stat': 'ksm_rmap_items 10\nksm_merging_pages 0\nksm_process_profit -640\n'},
        # ~5.19 kernel: no ksm_stat, only ksm_merging_pages
        300: {'ksm_merging_pages': '17\n'},
        400: {'comm': 'nothing\n'},
    })
    first = read_process_ksm(100, str(proc))
    assert first['merging_pages'] == 64 and first['rmap_items'] == 64 and first['zero_pages'] == 0
    assert first['process_profit'] == 258048
    assert first['merge_any'] is False and first['mergeable'] is True
    assert first['other'] == {'ksm_future_thing': 3}
    assert first['source'] == 'ksm_stat'
    second = read_process_ksm(200, str(proc))
    assert second['process_profit'] == -640
    assert second['mergeable'] is None and second['merge_any'] is None and second['zero_pages'] is None
    third = read_process_ksm(300, str(proc))
    assert third['merging_pages'] == 17 and third['source'] == 'ksm_merging_pages'
    assert third['rmap_items'] is None and third['mergeable'] is None
    assert read_process_ksm(400, str(proc)) is None
    assert read_process_ksm(999, str(proc)) is None
    assert KsmSysfs(str(tmp_path), proc_root=str(proc), page_size=4096).process_ksm(300)['merging_pages'] == 17


def test_mergeable_rss_pages():
    text = ('00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/qemu\nRss: 100 kB\nVmFlags: rd ex mr mw me dw\n'
            '7f00-7f01 rw-p 00000000 00:00 0\nRss: 262144 kB\nVmFlags: rd wr mr mw me ac sd mg\n'
            '7f02-7f03 rw-p 00000000 00:00 0\nRss: 40 kB\nVmFlags: rd wr mr mw me ac mg\n')
    assert _ksm.mergeable_rss_pages(text, 4096) == (262144 + 40) // 4


ROLLUP = ('55d0c0000000-7ffd00021000 ---p 00000000 00:00 0                          [rollup]\n'
          'Rss:              270000 kB\nPss:              140000 kB\nPss_Anon:         120000 kB\nPss_File:          20000 kB\n'
          'Anonymous:        240000 kB\nKSM:              180000 kB\nSwapPss:               0 kB\n')


def test_smaps_rollup_real_saving_counts_anonymous_pages_only(tmp_path):
    (tmp_path / '41').mkdir()
    (tmp_path / '41' / 'smaps_rollup').write_text(ROLLUP)
    rollup = _ksm.read_smaps_rollup(41, str(tmp_path))
    assert rollup['Anonymous'] == 240000 and rollup['KSM'] == 180000 and '55d0c0000000-7ffd00021000' not in rollup
    # shared libraries (file pages) are left out: Anonymous - Pss_Anon, not Rss - Pss
    assert _ksm.shared_anon_kb(rollup) == 120000
    assert _ksm.shared_anon_kb({'Rss': 300, 'Pss': 100}) == 200  # kernels without Pss_Anon
    assert _ksm.read_smaps_rollup(42, str(tmp_path)) is None


def test_vmstat_ksm_counters():
    assert _ksm.parse_vmstat_ksm('nr_free_pages 12\nksm_swpin_copy 0\ncow_ksm 836385\ncow_ksm_bad x\n') == {
        'cow_ksm': 836385, 'ksm_swpin_copy': 0}
    assert _ksm.parse_vmstat_ksm('nr_free_pages 12\n') == {}


def test_parse_vmstat_ksm_reads_the_counter_and_refuses_garbage():
    assert _ksm.parse_vmstat_ksm('nr_free_pages 5\ncow_ksm 1234\nksm_swpin_copy 0\n')['cow_ksm'] == 1234
    assert _ksm.parse_vmstat_ksm('nr_free_pages 5\ncow_ksm 77') == {'cow_ksm': 77}
    assert _ksm.parse_vmstat_ksm('nr_free_pages 5\n') == {} and _ksm.parse_vmstat_ksm('x\ncow_ksm x\n') == {}


def _stat_line(pid, comm, ppid, flags, utime=0, stime=0):
    # fields 3.. : state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
    return '%d (%s) S %d 0 0 0 -1 %d 0 0 0 0 %d %d 0 0 20 0 1 0 15 0 0\n' % (pid, comm, ppid, flags, utime, stime)


def test_find_ksmd_and_cpu_seconds(tmp_path):
    proc = make_proc(tmp_path, {
        # a user-space impostor named ksmd comes first and is ignored
        12: {'comm': 'ksmd\n', 'stat': _stat_line(12, 'ksmd', 1, 0x400000)},
        36: {'comm': 'ksmd\n', 'stat': _stat_line(36, 'ksmd', 2, 2097216, 250, 50), 'schedstat': '1500000000 20 7\n'},
        40: {'comm': 'bash\n', 'stat': _stat_line(40, 'bash', 1, 0x400000)},
    })
    assert find_ksmd_pid(str(proc)) == 36
    assert read_ksmd_cpu_seconds(proc_root=str(proc)) == pytest.approx(1.5)
    os.unlink(str(proc / '36' / 'schedstat'))
    ticks = os.sysconf('SC_CLK_TCK')
    assert read_ksmd_cpu_seconds(36, str(proc)) == pytest.approx(300.0 / ticks)
    sysfs = KsmSysfs(str(tmp_path), proc_root=str(proc), page_size=4096)
    assert sysfs.ksmd_pid() == 36
    assert sysfs.ksmd_cpu_seconds() == pytest.approx(300.0 / ticks)


def test_no_ksmd(tmp_path):
    proc = make_proc(tmp_path, {40: {'comm': 'bash\n', 'stat': _stat_line(40, 'bash', 1, 0)}})
    assert find_ksmd_pid(str(proc)) is None
    assert read_ksmd_cpu_seconds(proc_root=str(proc)) is None
    assert find_ksmd_pid(str(tmp_path / 'missing')) is None


def test_ksmd_comm_with_parenthesis_in_stat(tmp_path):
    proc = make_proc(tmp_path, {5: {'comm': 'ksmd\n', 'stat': _stat_line(5, 'ks) md', 2, 2097216, 4, 6)}})
    assert read_ksmd_cpu_seconds(5, str(proc)) == pytest.approx(10.0 / os.sysconf('SC_CLK_TCK'))


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize('knob, value, allowed', [
    ('run', 3, '0..2'),
    ('run', -1, '0..2'),
    ('pages_to_scan', -1, '0..4294967295'),
    ('pages_to_scan', 2 ** 32, '0..4294967295'),
    ('sleep_millisecs', 'fast', '0..4294967295'),
    ('max_page_sharing', 1, '2..2147483647'),
    ('merge_across_nodes', 2, '0 or 1'),
    ('use_zero_pages', 'maybe', '0 or 1'),
    ('smart_scan', 5, '0 or 1'),
    ('advisor_mode', 'fast', "'none' or 'scan-time'"),
    ('advisor_max_cpu', 0, '1..100'),
    ('advisor_max_cpu', 101, '1..100'),
    ('advisor_target_scan_time', 0, '1..'),
    ('advisor_min_pages_to_scan', 0, '1..'),
    ('advisor_max_pages_to_scan', 0, '1..'),
    ('stable_node_chains_prune_millisecs', -5, '0..4294967295'),
    ('run', True, '0..2'),
])
def test_invalid_values_name_knob_value_and_range(knob, value, allowed):
    with pytest.raises(KsmValueError) as exc:
        plan_changes(dict(KERNEL_DEFAULTS), {knob: value})
    message = str(exc.value)
    assert knob in message and repr(value) in message and allowed in message
    assert exc.value.knob == knob


def test_valid_values_are_normalised():
    plan = plan_changes(dict(KERNEL_DEFAULTS), {
        'run': '1', 'use_zero_pages': True, 'smart_scan': 'no', 'merge_across_nodes': False,
        'advisor_mode': ' scan-time', 'pages_to_scan': None, 'max_page_sharing': 2,
    })
    assert plan == {
        'run': (0, 1), 'use_zero_pages': (0, 1), 'smart_scan': (1, 0), 'merge_across_nodes': (1, 0),
        'advisor_mode': ('none', 'scan-time'), 'max_page_sharing': (256, 2),
    }


def test_unknown_knob_and_min_above_max():
    with pytest.raises(KsmUnknownKnobError):
        plan_changes(dict(KERNEL_DEFAULTS), {'pages_shared': 1})
    with pytest.raises(KsmValueError) as exc:
        plan_changes(dict(KERNEL_DEFAULTS), {'advisor_min_pages_to_scan': 600, 'advisor_max_pages_to_scan': 500})
    assert 'advisor_min_pages_to_scan' in str(exc.value)


def test_missing_knob_names_the_kernel_feature(tmp_path):
    tree = make_tree(tmp_path / 'ksm', without=ADVISOR_FILES + ('merge_across_nodes',))
    sysfs = KsmSysfs(str(tree), page_size=4096)
    with pytest.raises(KsmUnsupportedError) as exc:
        sysfs.plan({'advisor_mode': 'scan-time'})
    assert 'advisor_mode' in str(exc.value) and 'advisor' in str(exc.value) and '6.8' in str(exc.value)
    with pytest.raises(KsmUnsupportedError) as exc:
        sysfs.plan({'merge_across_nodes': False})
    assert 'NUMA' in str(exc.value)
    assert sysfs.plan({'run': 1}) == ({'run': (0, 1)}, False)


# -- planning --------------------------------------------------------------------------------


def test_plan_no_change_when_equal():
    assert plan_changes(dict(KERNEL_DEFAULTS), dict(KERNEL_DEFAULTS)) == {}
    assert plan_changes(dict(KERNEL_DEFAULTS), {'merge_across_nodes': True, 'smart_scan': True}) == {}


def test_plan_advisor_on_refuses_pages_to_scan():
    with pytest.raises(KsmAdvisorError) as exc:
        plan_changes(dict(KERNEL_DEFAULTS), {'advisor_mode': 'scan-time', 'pages_to_scan': 1000})
    assert 'pages_to_scan' in str(exc.value) and 'scan-time' in str(exc.value)
    on = dict(KERNEL_DEFAULTS, advisor_mode='scan-time', pages_to_scan=4321)
    with pytest.raises(KsmAdvisorError):
        plan_changes(on, {'pages_to_scan': 100})
    # the value the advisor already chose, or the one switching it on will give, is fine
    assert plan_changes(on, {'pages_to_scan': 4321}) == {}
    assert plan_changes(dict(KERNEL_DEFAULTS), {'advisor_mode': 'scan-time', 'advisor_min_pages_to_scan': 800, 'pages_to_scan': 800}) == {
        'advisor_mode': ('none', 'scan-time'), 'advisor_min_pages_to_scan': (500, 800)}


def test_plan_advisor_off_accounts_for_the_reset():
    on = dict(KERNEL_DEFAULTS, advisor_mode='scan-time', pages_to_scan=4321)
    # switching off resets pages_to_scan to 100, so keeping 4321 needs a write after the switch
    assert plan_changes(on, {'advisor_mode': 'none', 'pages_to_scan': 4321}) == {
        'advisor_mode': ('scan-time', 'none'), 'pages_to_scan': (4321, 4321)}
    assert plan_changes(on, {'advisor_mode': 'none', 'pages_to_scan': 100}) == {'advisor_mode': ('scan-time', 'none')}


def test_predict_knobs():
    on = dict(KERNEL_DEFAULTS, advisor_mode='scan-time', pages_to_scan=4321)
    assert predict_knobs(on, {'advisor_mode': ('scan-time', 'none')})['pages_to_scan'] == 100
    assert predict_knobs(KERNEL_DEFAULTS, {'advisor_mode': ('none', 'scan-time'), 'advisor_min_pages_to_scan': (500, 900)})['pages_to_scan'] == 900
    assert predict_knobs(KERNEL_DEFAULTS, {'run': (0, 1)}) == dict(KERNEL_DEFAULTS, run=1)


def test_write_order():
    changes = dict((k, (None, v)) for k, v in {
        'run': 1, 'pages_to_scan': 5, 'max_page_sharing': 3, 'merge_across_nodes': 0, 'advisor_mode': 'none',
        'advisor_max_cpu': 10, 'sleep_millisecs': 1,
    }.items())
    order = write_order(changes)
    assert order[-1] == 'run'
    assert order.index('advisor_max_cpu') < order.index('advisor_mode') < order.index('pages_to_scan')
    assert order.index('pages_to_scan') < order.index('merge_across_nodes')
    assert order.index('sleep_millisecs') < order.index('max_page_sharing')
    changes['run'] = (1, 2)
    assert write_order(changes)[0] == 'run'
    changes['run'] = (1, 0)
    assert write_order(changes)[0] == 'run'


def test_unmerge_needed_and_check_plan():
    changes = {'max_page_sharing': (256, 512), 'sleep_millisecs': (20, 10)}
    assert unmerge_needed({'pages_shared': 0}, changes) == []
    assert unmerge_needed({'pages_shared': 5}, changes) == ['max_page_sharing']
    assert unmerge_needed({'pages_shared': 5}, dict(changes, run=(1, 2))) == []
    assert check_plan({'pages_shared': 5}, changes, allow_unmerge=True) is True
    assert check_plan({'pages_shared': 0}, changes) is False
    with pytest.raises(KsmBusyError) as exc:
        check_plan({'pages_shared': 5}, changes)
    assert 'max_page_sharing' in str(exc.value) and 'run=2' in str(exc.value) and 'pages_shared=5' in str(exc.value)


def test_tmpfiles_lines():
    assert tmpfiles_lines({'run': 1, 'pages_to_scan': 1000, 'advisor_mode': 'none', 'use_zero_pages': True}) == [
        'w /sys/kernel/mm/ksm/advisor_mode - - - - none',
        'w /sys/kernel/mm/ksm/pages_to_scan - - - - 1000',
        'w /sys/kernel/mm/ksm/use_zero_pages - - - - 1',
        'w /sys/kernel/mm/ksm/run - - - - 1',
    ]


# -- writing ---------------------------------------------------------------------------------


def test_set_knobs_writes_and_is_idempotent(kernel):
    plan, unmerged = kernel.set_knobs({'run': 1, 'pages_to_scan': 1000, 'sleep_millisecs': 50, 'use_zero_pages': True})
    assert plan == {'run': (0, 1), 'pages_to_scan': (100, 1000), 'sleep_millisecs': (20, 50), 'use_zero_pages': (0, 1)}
    assert not unmerged
    assert kernel.writes[-1] == ('run', '1')
    assert sorted(kernel.writes) == sorted([('run', '1'), ('pages_to_scan', '1000'), ('sleep_millisecs', '50'), ('use_zero_pages', '1')])
    assert kernel.read_knobs()['pages_to_scan'] == 1000
    mtimes = dict((n, os.stat(kernel.path(n)).st_mtime_ns) for n in _ksm.KNOB_NAMES)
    kernel.writes = []
    plan, unmerged = kernel.set_knobs({'run': 1, 'pages_to_scan': 1000, 'sleep_millisecs': 50, 'use_zero_pages': True})
    assert plan == {} and not unmerged
    assert kernel.writes == []
    assert mtimes == dict((n, os.stat(kernel.path(n)).st_mtime_ns) for n in _ksm.KNOB_NAMES)


def test_set_advisor_off_and_pages_to_scan_together(kernel):
    kernel.set_knobs({'advisor_mode': 'scan-time'})
    assert kernel.read_knobs()['pages_to_scan'] == 500
    kernel.set_file('pages_to_scan', 4321)  # the advisor's own choice
    kernel.writes = []
    plan, dummy = kernel.set_knobs({'advisor_mode': 'none', 'pages_to_scan': 4321})
    assert kernel.writes == [('advisor_mode', 'none'), ('pages_to_scan', '4321')]
    assert kernel.read_knobs()['pages_to_scan'] == 4321
    kernel.writes = []
    assert kernel.set_knobs({'advisor_mode': 'none', 'pages_to_scan': 4321}) == ({}, False)
    assert kernel.writes == []


def test_set_advisor_on_with_tunables_first(kernel):
    kernel.set_knobs({'advisor_mode': 'scan-time', 'advisor_min_pages_to_scan': 800, 'advisor_max_cpu': 30})
    assert kernel.writes[-1] == ('advisor_mode', 'scan-time')
    knobs = kernel.read_knobs()
    assert knobs['advisor_mode'] == 'scan-time' and knobs['pages_to_scan'] == 800
    kernel.writes = []
    with pytest.raises(KsmAdvisorError):
        kernel.set_knobs({'pages_to_scan': 100})
    assert kernel.writes == []


def test_einval_on_pages_to_scan_under_advisor_maps_to_advisor_error(kernel):
    kernel.set_file('advisor_mode', 'none [scan-time]')
    with pytest.raises(KsmAdvisorError):
        kernel.write('pages_to_scan', 100)


def test_ebusy_without_allow_unmerge_writes_nothing(kernel):
    kernel.set_file('pages_shared', 12)
    kernel.set_file('run', 1)
    with pytest.raises(KsmBusyError) as exc:
        kernel.set_knobs({'sleep_millisecs': 10, 'merge_across_nodes': False})
    assert 'merge_across_nodes' in str(exc.value) and 'run=2' in str(exc.value)
    assert kernel.writes == []
    # the same value needs no unmerge
    assert kernel.set_knobs({'merge_across_nodes': True, 'max_page_sharing': 256}) == ({}, False)


def test_allow_unmerge_order_and_run_restored(kernel):
    kernel.set_file('pages_shared', 12)
    kernel.set_file('run', 1)
    plan, unmerged = kernel.set_knobs({'max_page_sharing': 512, 'merge_across_nodes': False, 'sleep_millisecs': 10}, allow_unmerge=True)
    assert unmerged
    assert kernel.writes == [
        ('sleep_millisecs', '10'), ('run', '2'), ('merge_across_nodes', '0'), ('max_page_sharing', '512'), ('run', '1'),
    ]
    knobs = kernel.read_knobs()
    assert knobs['run'] == 1 and knobs['max_page_sharing'] == 512 and knobs['merge_across_nodes'] == 0


def test_allow_unmerge_with_run_in_the_plan(kernel):
    kernel.set_file('pages_shared', 3)
    kernel.set_knobs({'run': 1, 'max_page_sharing': 100}, allow_unmerge=True)
    assert kernel.writes == [('run', '2'), ('max_page_sharing', '100'), ('run', '1')]
    kernel.writes = []
    kernel.set_file('pages_shared', 3)
    plan, unmerged = kernel.set_knobs({'run': 0, 'max_page_sharing': 200}, allow_unmerge=True)
    assert unmerged
    assert kernel.writes == [('run', '0'), ('run', '2'), ('max_page_sharing', '200'), ('run', '0')]
    assert kernel.read_knobs()['run'] == 0


def test_run_2_in_the_plan_needs_no_permission(kernel):
    kernel.set_file('pages_shared', 3)
    kernel.set_file('run', 1)
    plan, unmerged = kernel.set_knobs({'run': 2, 'merge_across_nodes': False})
    assert not unmerged
    assert kernel.writes == [('run', '2'), ('merge_across_nodes', '0')]


def test_unexpected_ebusy_after_planning(kernel):
    # pages merged between planning and writing: the kernel answers EBUSY
    kernel.set_file('run', 1)
    kernel.fail_next['max_page_sharing'] = errno.EBUSY
    with pytest.raises(KsmBusyError) as exc:
        kernel.set_knobs({'max_page_sharing': 300})
    assert 'EBUSY' in str(exc.value)
    kernel.writes = []
    kernel.fail_next['max_page_sharing'] = errno.EBUSY
    plan, unmerged = kernel.set_knobs({'max_page_sharing': 300}, allow_unmerge=True)
    assert unmerged
    assert kernel.writes == [('max_page_sharing', '300'), ('run', '2'), ('max_page_sharing', '300'), ('run', '1')]


def test_unmerge_timeout(tree):
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    kernel = FakeKernel(tree, sleep=sleep, clock=lambda: now[0])
    kernel.unmerge_works = False
    kernel.set_file('pages_shared', 3)
    with pytest.raises(KsmUnmergeTimeout) as exc:
        kernel.set_knobs({'max_page_sharing': 300}, allow_unmerge=True, unmerge_timeout=2)
    assert 'pages_shared is still 3' in str(exc.value)
    assert 2 <= now[0] < 3


@pytest.mark.parametrize('code, error', [
    (errno.EACCES, KsmPermissionError),
    (errno.EPERM, KsmPermissionError),
    (errno.EINVAL, KsmWriteError),
    (errno.ENOMEM, KsmWriteError),
    (errno.ENOENT, KsmUnsupportedError),
    (errno.EBUSY, KsmBusyError),
])
def test_errno_mapping(kernel, code, error):
    kernel.fail_next['sleep_millisecs'] = code
    with pytest.raises(error) as exc:
        kernel.set_knobs({'sleep_millisecs': 5})
    assert 'sleep_millisecs' in str(exc.value)


def test_write_error_keeps_errno(kernel):
    kernel.fail_next['run'] = errno.ENOMEM
    with pytest.raises(KsmWriteError) as exc:
        kernel.write('run', 2)
    assert exc.value.errno == errno.ENOMEM


def test_real_writer_on_a_plain_tree(tree):
    sysfs = KsmSysfs(str(tree), page_size=4096)
    sysfs.set_knobs({'sleep_millisecs': 7, 'advisor_mode': 'scan-time'})
    assert (tree / 'sleep_millisecs').read_text() == '7'
    assert (tree / 'advisor_mode').read_text() == 'scan-time'
    assert sysfs.read_knobs()['advisor_mode'] == 'scan-time'


# -- snapshot / restore ----------------------------------------------------------------------


def test_snapshot_and_restore(kernel):
    snapshot = kernel.snapshot_knobs()
    assert snapshot == KERNEL_DEFAULTS
    kernel.set_knobs({'run': 1, 'pages_to_scan': 3000, 'sleep_millisecs': 0, 'smart_scan': False, 'advisor_max_cpu': 20})
    kernel.set_knobs({'advisor_mode': 'scan-time'})
    kernel.restore_knobs(snapshot)
    assert kernel.snapshot_knobs() == snapshot


def test_restore_a_snapshot_taken_under_the_advisor(kernel):
    kernel.set_knobs({'advisor_mode': 'scan-time', 'advisor_min_pages_to_scan': 700})
    kernel.set_file('pages_to_scan', 9999)  # chosen by the advisor
    snapshot = kernel.snapshot_knobs()
    kernel.set_knobs({'advisor_mode': 'none', 'pages_to_scan': 100})
    kernel.restore_knobs(snapshot)
    knobs = kernel.read_knobs()
    assert knobs['advisor_mode'] == 'scan-time' and knobs['advisor_min_pages_to_scan'] == 700
    assert knobs['pages_to_scan'] == 700  # the advisor starts again from its minimum


def test_restore_skips_knobs_the_kernel_lacks(tmp_path):
    tree = make_tree(tmp_path / 'ksm', without=ADVISOR_FILES)
    kernel = FakeKernel(tree)
    kernel.restore_knobs(dict(KERNEL_DEFAULTS, sleep_millisecs=30))
    assert kernel.writes == [('sleep_millisecs', '30')]


def test_restore_defaults(kernel):
    kernel.set_knobs({'run': 1, 'use_zero_pages': True, 'max_page_sharing': 10})
    kernel.restore_defaults()
    assert kernel.snapshot_knobs() == KERNEL_DEFAULTS
