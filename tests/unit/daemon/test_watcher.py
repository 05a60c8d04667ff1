# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The process watcher: mergeable processes, their estimate, and the cheap look between steps."""

from __future__ import annotations

import os

from ansible_collections.pagefusion.core.tests.unit.daemon.sim import Harness


def test_unreadable_smaps_falls_back_to_the_resident_size(tmp_path):
    # Without ptrace access (CAP_SYS_PTRACE) smaps cannot be opened: the resident size (statm) stands in, noted once.
    h = Harness(tmp_path)
    h.kernel.add_process(1601)
    smaps = os.path.join(h.kernel.proc, '1601', 'smaps')
    h.kernel._write_proc = lambda proc: None
    os.unlink(smaps)
    os.mkdir(smaps)
    state = h.step()
    assert state['phase'] == 'boost'
    assert state['mergeable_pages_estimate'] == 65536 + 2000
    h.step()
    assert len([line for line in h.logs if 'smaps' in line]) == 1


def test_watcher_spots_a_new_mergeable_process_but_not_an_unmergeable_one(tmp_path):
    h = Harness(tmp_path)
    h.kernel.add_process(1501, mib=64)
    h.controller.watcher.scan()
    assert h.controller.watcher.spot(8192) is None
    h.kernel.add_process(1502, mib=64, mergeable=False)
    assert h.controller.watcher.spot(8192) is None
    h.kernel.add_process(1503, mib=64)
    assert h.controller.watcher.spot(8192) == 'new mergeable process 1503'
    h.controller.watcher.scan()  # the next scan knows it
    assert h.controller.watcher.spot(8192) is None


def test_watcher_spots_growth_of_known_processes(tmp_path):
    h = Harness(tmp_path)
    proc = h.kernel.add_process(1601, mib=64)
    h.controller.watcher.scan()
    proc.unique += 8192  # 32 MiB more resident
    h.kernel._write_proc(proc)
    h.kernel._write_counters()
    assert h.controller.watcher.spot(8193) is None
    assert h.controller.watcher.spot(8192) == 'mergeable processes grew by 32 MiB'


def test_start_up_counts_processes_by_resident_size_then_reads_smaps(tmp_path):
    # The first scan writes the boost knobs without walking every guest's pages (smaps); the next scan reads them.
    h = Harness(tmp_path)
    h.kernel.add_process(2501, mib=64)
    watcher = h.controller.watcher
    first = watcher.scan()
    assert first['processes'][2501]['rough'] and first['pages'] == 16384 + 2000  # statm's resident size
    second = watcher.scan()
    assert not second['processes'][2501]['rough'] and second['pages'] == 16384  # smaps: the mergeable VMA's Rss
    # later newcomers are read exactly at once: a rough entry refined later would hide a newcomer's growth
    h.kernel.add_process(2502, mib=64)
    assert not watcher.scan()['processes'][2502]['rough']
