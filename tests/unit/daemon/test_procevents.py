# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The kernel's counters as the cheap signal between sweeps, and the sweeps themselves, on the simulated kernel."""

from __future__ import annotations

import errno
import os
import struct

from ansible_collections.pagefusion.core.daemon.pagefusiond.procevents import (
    RATE_LIMIT, RATE_WINDOW, KernelCounters, ProcConnector, count_new_processes, parse_anon_pages, parse_last_pid)
from ansible_collections.pagefusion.core.daemon.pagefusiond.service import Daemon
from ansible_collections.pagefusion.core.daemon.pagefusiond import watcher as watcher_module
from ansible_collections.pagefusion.core.daemon.pagefusiond.watcher import ProcessWatcher
from ansible_collections.pagefusion.core.tests.unit.daemon.sim import PAGE, Harness, make_config

THRESHOLD = 8192  # pages: new_memory_threshold_mib's default (32 MiB)


def test_parsers_read_the_kernel_formats_and_refuse_garbage():
    assert parse_last_pid(b'0.08 0.03 0.01 1/163 17560\n') == 17560
    assert parse_last_pid(b'') is None and parse_last_pid(b'a b c d x') is None
    assert parse_anon_pages(b'MemTotal: 100 kB\nAnonPages:      123456 kB\nMapped: 1 kB\n') == 123456
    assert parse_anon_pages(b'MemTotal: 100 kB\n') is None and parse_anon_pages(b'AnonPages: x kB\n') is None


def test_counters_move_on_a_new_pid_and_on_anonymous_memory_either_way(tmp_path):
    h = Harness(tmp_path)
    counters = KernelCounters(h.kernel.proc)
    assert counters.available
    counters.mark()
    assert counters.moved(32768) is None
    h.kernel.fork()
    assert counters.moved(32768) == 'pid'
    assert counters.moved(32768) is None  # remembered
    proc = h.kernel.add_process(2001, mib=64)  # a fork and 64 MiB faulted in
    assert counters.moved(32768) == 'pid+memory'
    proc.unique += 4096  # 16 MiB more: below the threshold, and it adds up with what comes next
    h.kernel._write_counters()
    assert counters.moved(32768) is None
    proc.unique += 4096
    h.kernel._write_counters()
    assert counters.moved(32768) == 'memory'
    h.kernel.remove_process(2001)  # an exit gives memory back
    assert counters.moved(32768) == 'memory'


def test_counters_unavailable_without_the_files_fall_back_to_polling(tmp_path):
    h = Harness(tmp_path)
    os.unlink(os.path.join(h.kernel.proc, 'loadavg'))
    os.unlink(os.path.join(h.kernel.proc, 'meminfo'))
    assert not KernelCounters(h.kernel.proc).available
    watcher = ProcessWatcher(h.kernel.proc, PAGE)
    assert watcher.counters is None and watcher.signal_name() == 'every process (poll)'
    h.kernel.add_process(2101, mib=64)
    assert watcher.spot(THRESHOLD) == 'new mergeable process 2101'


def test_with_counters_still_a_quiet_host_costs_no_process_reads(tmp_path, monkeypatch):
    h = Harness(tmp_path)
    for pid in range(2201, 2233):
        h.kernel.add_process(pid, mib=32)
    watcher = h.controller.watcher
    watcher.scan()
    reads = []
    monkeypatch.setattr(watcher, '_pids', lambda: reads.append(1) or [])
    for dummy in range(20):
        assert watcher.spot(THRESHOLD) is None
    assert reads == []


def test_a_new_process_is_spotted_through_the_counters_and_a_later_madvise_by_the_sweep(tmp_path):
    h = Harness(tmp_path, config=make_config(state_path=str(tmp_path / 'state.json'), sweep_interval='30'))
    for pid in (2301, 2302):
        h.kernel.add_process(pid, mib=64)
    h.run(60, until=lambda s: s['phase'] == 'steady')
    # a process that marks memory it already has mergeable: no fork, no new memory, so no cheap look sees it ...
    late = h.kernel.add_process(2303, mib=64, mergeable=False)
    h.run(4)
    late.mergeable = True
    h.kernel._write_proc(late)
    assert h.controller.spot() is None
    scans = []
    scan = h.controller.watcher.scan
    h.controller.watcher.scan = lambda: scans.append(h.clock.now) or scan()
    h.run(40, until=lambda s: s['phase'] == 'boost')
    # ... the sweep does, once per sweep_interval (not at every 2 s step)
    assert h.controller.phase == 'boost' and 'new mergeable processes: 2303' in ' '.join(h.logs)
    assert len(scans) == 1


def test_newcomer_in_steady_is_seen_at_the_next_cheap_look(tmp_path):
    h = Harness(tmp_path)
    for pid in (2401, 2402, 2403):
        h.kernel.add_process(pid, mib=64)
    h.run(60, until=lambda s: s['phase'] == 'steady')
    h.kernel.add_process(2404, mib=64)
    assert h.controller.spot() == 'new mergeable process 2404'
    assert h.controller.spot() is None  # the counters have not moved since
    h.kernel.add_process(2405, mib=64)
    h.controller.wake(h.controller.spot())
    assert h.step()['phase'] == 'boost'
    assert 'new mergeable processes: 2404, 2405' in h.logs[-1]


def test_a_fork_alone_reads_only_the_new_pid_once_and_memory_growth_reads_it_again(tmp_path, monkeypatch):
    h = Harness(tmp_path)
    for pid in range(2501, 2533):
        h.kernel.add_process(pid, mib=32)
    watcher = h.controller.watcher
    watcher.scan()
    sizes, stats = [], []
    resident, read_ksm = watcher._resident, watcher_module._ksm.read_process_ksm
    monkeypatch.setattr(watcher, '_resident', lambda pid: sizes.append(pid) or resident(pid))
    monkeypatch.setattr(watcher_module._ksm, 'read_process_ksm', lambda pid, root: stats.append(pid) or read_ksm(pid, root))
    # a shell started on the host: a new pid, no mergeable memory; the 32 known guests' sizes are not read
    shell = h.kernel.add_process(2600, mib=1, mergeable=False)
    assert watcher.spot(THRESHOLD) is None
    assert sizes == [] and stats == [2600]
    h.kernel.fork()  # another fork: the shell has been looked at already
    assert watcher.spot(THRESHOLD) is None
    assert sizes == [] and stats == [2600]
    # the shell marks its memory mergeable and faults in more: anonymous memory moved, so it is read again
    shell.mergeable = True
    shell.unique += THRESHOLD
    h.kernel._write_proc(shell)
    h.kernel._write_counters()
    assert watcher.spot(THRESHOLD) == 'new mergeable process 2600'
    assert sizes and stats[-1] == 2600  # the known guests' sizes are read again too (until the newcomer is found)


def connector_message(what, *data):
    """One netlink datagram of the process connector: nlmsghdr, cn_msg, proc_event header and its data."""
    event = struct.pack('=IIQ', what, 0, 123456789) + struct.pack('=%dI' % len(data), *data)
    body = struct.pack('=IIIIHH', 1, 1, 0, 0, len(event), 0) + event
    return struct.pack('=IHHII', 16 + len(body), 3, 0, 0, 0) + body


FORK = 0x00000001
EXEC = 0x00000002
EXIT = 0x80000000


def test_the_connector_counts_process_starts_not_threads_nor_exits():
    process_fork = connector_message(FORK, 100, 100, 2001, 2001)
    thread_fork = connector_message(FORK, 2001, 2001, 2002, 2001)  # a QEMU vCPU thread: same thread group
    assert count_new_processes(process_fork) == 1
    assert count_new_processes(thread_fork) == 0
    assert count_new_processes(connector_message(EXEC, 2001, 2001)) == 1
    assert count_new_processes(connector_message(EXIT, 2001, 2001, 0, 17, 0, 0)) == 0
    assert count_new_processes(process_fork + thread_fork + connector_message(EXEC, 2001, 2001)) == 2
    assert count_new_processes(b'') == 0 and count_new_processes(process_fork[:30]) == 0


class FakeSocket(object):
    """Hands out the datagrams given, then raises ``last`` (an OSError) for every blocking receive."""

    def __init__(self, datagrams, last):
        self.datagrams = list(datagrams)
        self.last = last
        self.closed = False

    def recv(self, size, flags=0):
        if flags:  # the drain after a wake-up: nothing queued
            raise BlockingIOError(errno.EAGAIN, 'nothing queued')
        if self.datagrams:
            datagram = self.datagrams.pop(0)
            if isinstance(datagram, OSError):
                raise datagram
            return datagram
        raise self.last

    def close(self):
        self.closed = True


def run_connector(datagrams, last):
    woken, logs = [], []
    connector = ProcConnector(lambda: woken.append(1), logs.append, gap=0)
    connector.sock = FakeSocket(datagrams, last)
    connector._run()  # pylint: disable=protected-access
    return woken, logs, connector


def test_the_connector_wakes_on_process_starts_and_on_lost_events_and_stops_on_errors():
    datagrams = [connector_message(FORK, 1, 1, 3001, 3001), connector_message(FORK, 3001, 3001, 3002, 3001)]
    lost = OSError(errno.ENOBUFS, 'No buffer space available')  # the kernel dropped events for this socket
    woken, logs, connector = run_connector(datagrams + [connector_message(EXEC, 3001, 3001), lost],
                                           OSError(errno.EBADF, 'gone'))
    assert woken == [1, 1, 1]  # the fork and the exec, not the thread; then the lost events
    assert logs == ['process connector: [Errno 9] gone: looking on the timer only']
    assert connector.sock is None and connector.stopped


def test_a_host_that_forks_all_the_time_is_looked_at_on_the_timer():
    forks = [connector_message(FORK, 1, 1, 4000 + i, 4000 + i) for i in range(RATE_LIMIT + 5)]
    woken, logs, connector = run_connector(forks, OSError(errno.EBADF, 'not reached'))
    assert len(woken) == RATE_LIMIT
    assert logs == ['process connector: more than %d processes started in %gs: looking on the timer only' % (
        RATE_LIMIT, RATE_WINDOW)]
    assert connector.stopped


def test_a_nudge_from_the_connector_looks_at_once_and_keeps_waiting(tmp_path):
    config = make_config(state_path=str(tmp_path / 'run' / 'state.json'))
    h = Harness(tmp_path)
    for pid in (5001, 5002):
        h.kernel.add_process(pid, mib=64)

    class NudgedOnce(object):
        def __init__(self):
            self.waits = []

        def wait(self, timeout):
            self.waits.append(timeout)
            if len(self.waits) == 1:
                h.kernel.add_process(5003, mib=64)  # a process starts; the connector's thread nudges the loop
                daemon.nudged = True
                return True
            return False

        def set(self):
            pass

        def clear(self):
            pass
    waiter = NudgedOnce()
    daemon = Daemon(str(tmp_path / 'none.conf'), config, ksm=h.kernel.sysfs(), log=lambda m: None, waiter=waiter)
    daemon.run_step()
    daemon.controller.phase = 'steady'
    daemon.pause()
    assert waiter.waits == [0.25]  # the nudge's look found it: no further wait
    assert daemon.controller.wake_reason == 'new mergeable process 5003' and not daemon.nudged


def test_a_stop_while_the_connector_waits_between_looks_ends_its_thread_quietly():
    logs = []

    def stop():  # the daemon stops right after a wake-up
        connector.close()
    connector = ProcConnector(stop, logs.append, gap=0)
    connector.sock = FakeSocket([connector_message(FORK, 1, 1, 6001, 6001)], OSError(errno.EBADF, 'not reached'))
    connector._run()  # pylint: disable=protected-access
    assert connector.stopped and connector.sock is None and logs == []
