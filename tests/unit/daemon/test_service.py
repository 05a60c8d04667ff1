# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The long-running pagefusiond: signals, reload, output errors, and the pause between steps."""

from __future__ import annotations

import json
import signal

from ansible_collections.pagefusion.core.daemon.pagefusiond.config import load_config
from ansible_collections.pagefusion.core.daemon.pagefusiond.service import Daemon
from ansible_collections.pagefusion.core.tests.unit.daemon.churn_sim import ChurnKernel
from ansible_collections.pagefusion.core.tests.unit.daemon.sim import NeverWoken, SimKernel, make_config


def test_sighup_reload_keeps_old_config_when_the_new_one_is_bad(tmp_path):
    conf = tmp_path / 'pagefusiond.conf'
    conf.write_text('max_cpu_percent = 40\nstate_path = %s\n' % (tmp_path / 'state.json'))
    config = load_config(str(conf))
    kernel = SimKernel(tmp_path)
    logs = []
    daemon = Daemon(str(conf), config, ksm=kernel.sysfs(), log=logs.append)
    conf.write_text('max_cpu_percent = 60\nstate_path = %s\n' % (tmp_path / 'state.json'))
    daemon.on_hup(signal.SIGHUP, None)
    assert daemon.reload_wanted and daemon.wake_event.is_set()
    assert daemon.reload()
    assert daemon.config['max_cpu_percent'] == 60.0
    assert daemon.controller.config['max_cpu_percent'] == 60.0
    assert 'max_cpu_percent' in logs[-1]
    conf.write_text('max_cpu_percent = 600\n')
    assert not daemon.reload()
    assert daemon.config['max_cpu_percent'] == 60.0
    assert 'reload refused' in logs[-1] and 'max_cpu_percent' in logs[-1]


def test_sigterm_stops_the_loop_and_restores(tmp_path):
    conf = tmp_path / 'pagefusiond.conf'
    conf.write_text('state_path = %s\nlibvirt_uri =\nmetrics_path =\nprocess_connector = false\n' % (tmp_path / 'run' / 'state.json'))
    kernel = SimKernel(tmp_path)
    kernel.add_process(1301)

    class Waiter(object):
        """Stands in for the wake event: the second wait delivers SIGTERM."""

        def __init__(self):
            self.calls = 0

        def wait(self, timeout):
            self.calls += 1
            if self.calls == 2:
                daemon.on_term(signal.SIGTERM, None)

        def set(self):
            pass

        def clear(self):
            pass

    daemon = Daemon(str(conf), load_config(str(conf)), ksm=kernel.sysfs(), log=lambda m: None, waiter=Waiter())
    assert daemon.run(install_signals=False) == 0
    assert kernel.knob('run') == 0
    assert json.loads((tmp_path / 'run' / 'state.json').read_text())['phase'] == 'stopped'


def test_missing_metrics_dir_is_logged_once(tmp_path):
    conf = make_config(state_path=str(tmp_path / 'state.json'), metrics_path=str(tmp_path / 'absent' / 'x.prom'))
    kernel = SimKernel(tmp_path)
    logs = []
    daemon = Daemon('/nonexistent.conf', conf, ksm=kernel.sysfs(), log=logs.append)
    daemon.run_step()
    daemon.run_step()
    assert len([line for line in logs if 'metrics directory' in line]) == 1


def test_pause_in_steady_wakes_early_for_a_newcomer(tmp_path):
    config = make_config(state_path=str(tmp_path / 'run' / 'state.json'))
    kernel = SimKernel(tmp_path)
    for pid in (1701, 1702, 1703):
        kernel.add_process(pid, mib=64)
    waiter = NeverWoken()
    daemon = Daemon(str(tmp_path / 'none.conf'), config, ksm=kernel.sysfs(), log=lambda m: None, waiter=waiter)
    daemon.run_step()
    daemon.controller.phase = 'steady'
    daemon.pause()
    # nothing new: the whole interval (2 s) in slices of watch_interval (0.25 s), then the step
    assert waiter.waits == [0.25] * 8
    assert daemon.controller.wake_reason is None
    del waiter.waits[:]
    kernel.add_process(1704, mib=64)
    daemon.pause()
    assert waiter.waits == [0.25]
    assert daemon.controller.wake_reason == 'new mergeable process 1704'
    state = daemon.run_step()
    assert state['phase'] == 'boost'


class ClockedWaiter(NeverWoken):
    """A wake event whose waits time out and move a clock on by their timeout."""

    def __init__(self):
        NeverWoken.__init__(self)
        self.now = 1000.0

    def clock(self):
        return self.now

    def wait(self, timeout):
        self.now += timeout
        return NeverWoken.wait(self, timeout)


def steady_on_a_clock(tmp_path, pids):
    """A daemon in the steady phase over ``pids`` (64 MiB each) whose waits move a clock; steps every 20 s."""
    config = make_config(state_path=str(tmp_path / 'run' / 'state.json'), interval='20', quiet_interval='20')
    kernel = SimKernel(tmp_path)
    for pid in pids:
        kernel.add_process(pid, mib=64)
    waiter = ClockedWaiter()
    daemon = Daemon(str(tmp_path / 'none.conf'), config, ksm=kernel.sysfs(), log=lambda m: None, waiter=waiter,
                    clock=waiter.clock)
    daemon.run_step()
    daemon.controller.phase = 'steady'
    return kernel, waiter, daemon


def test_a_host_at_rest_is_looked_at_every_still_watch_interval_until_something_moves(tmp_path):
    kernel, waiter, daemon = steady_on_a_clock(tmp_path, (1711, 1712))
    daemon.pause()
    # the phase just changed: watch_interval for 10 s, then (nothing moved) still_watch_interval, 1 s
    assert waiter.waits == [0.25] * 40 + [1.0] * 10
    assert daemon.controller.wake_reason is None
    del waiter.waits[:]
    daemon.pause()
    assert waiter.waits == [1.0] * 20  # still at rest: a look a second
    del waiter.waits[:]
    kernel.add_process(1713, mib=64)
    daemon.pause()
    assert waiter.waits == [1.0]  # the next look finds it
    assert daemon.controller.wake_reason == 'new mergeable process 1713'
    assert daemon.run_step()['phase'] == 'boost'


def test_a_moving_host_keeps_the_fast_looks(tmp_path):
    dummy, waiter, daemon = steady_on_a_clock(tmp_path, (1721,))
    daemon.pause()
    del waiter.waits[:]
    counters = daemon.controller.watcher.counters

    def fork_on_every_look(timeout):
        counters.last_pid -= 1  # as if a new pid was handed out since the last look (nothing mergeable)
        return ClockedWaiter.wait(waiter, timeout)
    waiter.wait = fork_on_every_look
    daemon.pause()
    assert waiter.waits[0] == 1.0 and set(waiter.waits[1:]) == {0.25}  # the first pid seen brings back 0.25 s
    assert daemon.controller.wake_reason is None


def test_pause_without_watching_waits_the_interval_once(tmp_path):
    config = make_config(state_path=str(tmp_path / 'run' / 'state.json'), watch_interval='0')
    kernel = SimKernel(tmp_path)
    kernel.add_process(1801, mib=64)
    waiter = NeverWoken()
    daemon = Daemon(str(tmp_path / 'none.conf'), config, ksm=kernel.sysfs(), log=lambda m: None, waiter=waiter)
    daemon.run_step()
    daemon.controller.phase = 'steady'
    kernel.add_process(1802, mib=64)
    daemon.pause()
    assert waiter.waits == [2.0]
    assert daemon.controller.wake_reason is None


def test_reload_keeps_the_keys_that_need_a_restart(tmp_path):
    conf = tmp_path / 'pagefusiond.conf'
    conf.write_text('state_path = %s\nlibvirt_uri =\nmetrics_path =\n' % (tmp_path / 'state.json'))
    logs = []
    daemon = Daemon(str(conf), load_config(str(conf)), ksm=SimKernel(tmp_path).sysfs(), log=logs.append)
    conf.write_text('state_path = %s\nlibvirt_uri = qemu:///system\nmetrics_path =\ninterval = 7\n' % (tmp_path / 'other.json'))
    assert daemon.reload()
    assert daemon.config['interval'] == 7.0
    assert daemon.config['state_path'] == str(tmp_path / 'state.json') and daemon.config['libvirt_uri'] == ''
    assert daemon.controller.config is daemon.config
    restart_notes = [m for m in logs if 'takes effect when pagefusiond restarts' in m]
    assert len(restart_notes) == 2 and any('libvirt_uri' in m for m in restart_notes)


def test_a_libvirt_event_is_logged_and_wakes_the_loop(tmp_path):
    logs = []
    daemon = Daemon(str(tmp_path / 'absent.conf'), make_config(state_path=str(tmp_path / 'state.json')),
                    ksm=SimKernel(tmp_path).sysfs(), log=logs.append)
    daemon.on_event('libvirt domain g1 started')
    assert logs == ['woken: libvirt domain g1 started']
    assert daemon.wake_event.is_set() and daemon.controller.wake_reason == 'libvirt domain g1 started'


class StopAfterFirstPause(NeverWoken):
    """The wake event of a daemon that is told to stop during its first pause."""

    def __init__(self, daemon_box):
        NeverWoken.__init__(self)
        self.daemon_box = daemon_box

    def wait(self, timeout):
        self.daemon_box[0].stopping = True
        return NeverWoken.wait(self, timeout)


def test_watch_sources_start_after_the_first_step_and_are_logged_and_in_the_state(tmp_path):
    # The first step (which boosts a host that already runs guests) must not wait for libvirt's import and connection.
    kernel = SimKernel(tmp_path)
    kernel.add_process(1901, mib=64)
    logs = []
    box = []
    config = make_config(state_path=str(tmp_path / 'run' / 'state.json'))
    daemon = Daemon(str(tmp_path / 'none.conf'), config, ksm=kernel.sysfs(), log=logs.append, waiter=StopAfterFirstPause(box))
    box.append(daemon)
    assert daemon.run(install_signals=False) == 0
    boost = [i for i, line in enumerate(logs) if '-> boost' in line]
    watching = [i for i, line in enumerate(logs) if line.startswith('watching for new mergeable memory: ')]
    assert boost and watching and boost[0] < watching[0]
    assert 'kernel counters (/proc/loadavg last pid, /proc/meminfo AnonPages) every 0.25s' in logs[watching[0]]
    assert 'every process every 60s' in logs[watching[0]]
    sources = daemon.run_step()['watch_sources']
    assert sources and sources == daemon.controller.watch_sources


def test_process_watch_poll_is_named_in_the_log(tmp_path):
    kernel = SimKernel(tmp_path)
    logs = []
    config = make_config(state_path=str(tmp_path / 'state.json'), process_watch='poll', sweep_interval='10')
    daemon = Daemon(str(tmp_path / 'none.conf'), config, ksm=kernel.sysfs(), log=logs.append)
    daemon.start_watching()
    assert logs == ['watching for new mergeable memory: every process (poll) every 0.25s; '
                    'every process every 10s in the idle and steady phases']


def test_a_quiet_steady_host_steps_every_quiet_interval_and_a_break_brings_the_step_forward(tmp_path):
    config = make_config(state_path=str(tmp_path / 'run' / 'state.json'))
    kernel = ChurnKernel(tmp_path)
    for pid in (1901, 1902):
        kernel.add_process(pid, mib=64)
    waiter = NeverWoken()
    daemon = Daemon(str(tmp_path / 'none.conf'), config, ksm=kernel.sysfs(), log=lambda m: None, waiter=waiter)
    daemon.run_step()
    daemon.run_step()  # two readings of cow_ksm, no write between: no break rate, a quiet host
    daemon.controller.phase = 'steady'
    assert daemon.controller.sharing.quiet() and daemon.interval() == 10.0
    daemon.pause()
    # nothing new, nothing broken: quiet_interval (10 s) in slices of watch_interval, cow_ksm looked at every 2 s
    assert waiter.waits == [0.25] * 40
    del waiter.waits[:]
    kernel.cow += 63
    kernel._write_vmstat()
    daemon.pause()
    assert len(waiter.waits) == 40  # fewer than 64 broken pages: not worth a step
    del waiter.waits[:]
    kernel.cow += 1
    kernel._write_vmstat()
    daemon.pause()
    assert waiter.waits == [0.25] * 8  # 64 broken since the last step: the step comes at the next look (2 s)
    assert daemon.controller.wake_reason is None  # no sweep of /proc for it
    daemon.run_step()
    daemon.controller.phase = 'steady'
    assert not daemon.controller.sharing.quiet() and daemon.interval() == 2.0  # breaking: back to interval
