# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Unit tests of pagefusiond's control logic against a simulated KSM.

SimKernel keeps a temporary /sys/kernel/mm/ksm and /proc in the formats of the 6.18 kernel (the
ones _ksm reads) and answers the knobs the way the kernel does: ksmd scans ``pages_to_scan``
pages per batch and sleeps ``sleep_millisecs`` between batches, each scanned page costs CPU time
(so ksmd's schedstat grows with the pages scanned), ``full_scans`` advances once per pass over
all mergeable pages, and a page merges the second time ksmd sees it (zero pages the first time
with use_zero_pages=1). Time is a fake clock the tests advance.
"""

from __future__ import annotations

import errno
import json
import os
import signal

import pytest

from ansible_collections.pagefusion.core.plugins.module_utils import _ksm
from ansible_collections.pagefusion.core.plugins.module_utils import _pagefusiond as pfd

PAGE = 4096
KSMD_PID = 77

TREE = {
    'advisor_max_cpu': '70', 'advisor_max_pages_to_scan': '30000', 'advisor_min_pages_to_scan': '500',
    'advisor_mode': '[none] scan-time', 'advisor_target_scan_time': '200', 'full_scans': '0', 'general_profit': '0',
    'ksm_zero_pages': '0', 'max_page_sharing': '256', 'merge_across_nodes': '1', 'pages_scanned': '0', 'pages_shared': '0',
    'pages_sharing': '0', 'pages_skipped': '0', 'pages_to_scan': '100', 'pages_unshared': '0', 'pages_volatile': '0',
    'run': '0', 'sleep_millisecs': '20', 'smart_scan': '1', 'stable_node_chains': '0',
    'stable_node_chains_prune_millisecs': '2000', 'stable_node_dups': '0', 'use_zero_pages': '0',
}


class Clock(object):
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def wall(self):
        return 1700000000.0 + self.now


class SimProcess(object):
    def __init__(self, pid, shared, zero, unique, mergeable=True):
        self.pid = pid
        self.shared = shared
        self.zero = zero
        self.unique = unique
        self.mergeable = mergeable
        self.covered = 0.0  # pages ksmd has looked at since the process appeared

    @property
    def pages(self):
        return self.shared + self.zero + self.unique

    def passes(self):
        return self.covered / self.pages if self.pages else 0.0


class SimKernel(object):
    """A fake KSM that scans and merges in simulated time (see the module docstring)."""

    def __init__(self, tmp_path, cost_per_page=4.5e-6, overrides=None):
        self.root = str(tmp_path / 'ksm')
        self.proc = str(tmp_path / 'proc')
        os.makedirs(self.root)
        os.makedirs(os.path.join(self.proc, 'self'))
        with open(os.path.join(self.proc, 'self', 'ksm_stat'), 'w') as handle:
            handle.write('ksm_rmap_items 0\nksm_mergeable: no\n')
        values = dict(TREE)
        values.update(overrides or {})
        for name, value in values.items():
            self._put(name, value)
        self.cost = cost_per_page
        self.cpu = 5.0
        self.procs = {}
        self.writes = []
        self._write_ksmd()

    def _put(self, name, value):
        with open(os.path.join(self.root, name), 'w') as handle:
            handle.write('%s\n' % value)

    def knob(self, name):
        return _ksm.parse_value(name, open(os.path.join(self.root, name)).read())

    def _write_ksmd(self):
        base = os.path.join(self.proc, str(KSMD_PID))
        if not os.path.isdir(base):
            os.makedirs(base)
        with open(os.path.join(base, 'comm'), 'w') as handle:
            handle.write('ksmd\n')
        with open(os.path.join(base, 'stat'), 'w') as handle:
            handle.write('%d (ksmd) S 2 0 0 0 -1 %d 0 0 0 0 0 0 0 0 25 5 1 0 0 0 0\n' % (KSMD_PID, _ksm.PF_KTHREAD))
        with open(os.path.join(base, 'schedstat'), 'w') as handle:
            handle.write('%d 0 0\n' % int(self.cpu * 1e9))

    def sysfs(self):
        ksm = _ksm.KsmSysfs(root=self.root, proc_root=self.proc, page_size=PAGE)
        raw = ksm._write_raw

        def recording(name, text):
            self.writes.append((name, text))
            raw(name, text)
        ksm._write_raw = recording
        return ksm

    # -- processes ---------------------------------------------------------------------------

    def add_process(self, pid, mib=256, shared=0.45, zero=0.25, mergeable=True):
        pages = mib * 256
        proc = SimProcess(pid, int(pages * shared), int(pages * zero), pages - int(pages * shared) - int(pages * zero), mergeable)
        self.procs[pid] = proc
        os.makedirs(os.path.join(self.proc, str(pid)))
        self._write_proc(proc)
        return proc

    def remove_process(self, pid):
        del self.procs[pid]
        base = os.path.join(self.proc, str(pid))
        for name in os.listdir(base):
            os.unlink(os.path.join(base, name))
        os.rmdir(base)

    def _merged(self, proc):
        """(merging, zero) pages of one process from how often ksmd has seen its pages."""
        passes = proc.passes()
        twice = max(0.0, min(1.0, passes - 1.0))
        once = max(0.0, min(1.0, passes))
        uzp = self.knob('use_zero_pages') == 1
        return int(proc.shared * twice), int(proc.zero * (once if uzp else twice)), uzp

    def _write_proc(self, proc):
        base = os.path.join(self.proc, str(proc.pid))
        merging, zero, uzp = self._merged(proc) if proc.mergeable else (0, 0, False)
        rmap = int(min(proc.covered, proc.pages)) if proc.mergeable else 0
        with open(os.path.join(base, 'ksm_stat'), 'w') as handle:
            values = (rmap, zero if uzp else 0, merging + (0 if uzp else zero), 'yes' if proc.mergeable else 'no')
            handle.write('ksm_rmap_items %d\nksm_zero_pages %d\nksm_merging_pages %d\nksm_process_profit 0\n'
                         'ksm_merge_any: no\nksm_mergeable: %s\n' % values)
        with open(os.path.join(base, 'statm'), 'w') as handle:
            handle.write('%d %d 100 10 0 %d 0\n' % (proc.pages + 5000, proc.pages + 2000, proc.pages))
        with open(os.path.join(base, 'smaps'), 'w') as handle:
            handle.write('55d0c0000000-55d0c0021000 r--p 00000000 fe:00 1 /usr/bin/sim\nRss:                 132 kB\nVmFlags: rd mr mw me\n')
            handle.write('7f0000000000-7f0010000000 rw-p 00000000 00:00 0\nSize:  %d kB\nRss:  %d kB\nAnonymous: %d kB\n'
                         'VmFlags: rd wr mr mw me ac %s\n' % (proc.pages * 4, proc.pages * 4, proc.pages * 4, 'mg' if proc.mergeable else ''))
            handle.write('7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]\nRss:  8000 kB\nVmFlags: rd wr mr mw me gd ac\n')

    def achievable(self, uzp=True):
        procs = [p for p in self.procs.values() if p.mergeable]
        if not procs:
            return 0
        return sum(p.shared for p in procs) - max(p.shared for p in procs) + sum(p.zero for p in procs) - (0 if uzp else 1)

    # -- time --------------------------------------------------------------------------------

    def advance(self, seconds):
        run = self.knob('run')
        procs = [p for p in self.procs.values() if p.mergeable]
        total = sum(p.pages for p in procs)
        counters = dict((k, self.knob(k) if os.path.exists(os.path.join(self.root, k)) else 0) for k in ('full_scans', 'pages_scanned'))
        if run == 2:
            for proc in procs:
                proc.covered = 0.0
            self._put('run', 0)
        elif run == 1 and total:
            batch = self.knob('pages_to_scan')
            sleep = self.knob('sleep_millisecs') / 1000.0
            batch_time = batch * self.cost + max(sleep, 0.001)
            scanned = batch / batch_time * seconds
            self.cpu += scanned * self.cost
            self.position = getattr(self, 'position', 0.0) + scanned
            counters['full_scans'] += int(self.position // total)
            self.position %= total
            counters['pages_scanned'] += int(scanned)
            for proc in procs:
                proc.covered += scanned * proc.pages / total
        merged = [self._merged(p) for p in procs]
        shared_parts = [m[0] for m in merged]
        sharing = sum(shared_parts) - (max(shared_parts) if shared_parts else 0)
        uzp = self.knob('use_zero_pages') == 1
        zero = sum(m[1] for m in merged)
        rmap = sum(int(min(p.covered, p.pages)) for p in procs)
        self._put('full_scans', counters['full_scans'])
        self._put('pages_scanned', counters['pages_scanned'])
        self._put('pages_shared', max(shared_parts) + (0 if uzp or not zero else 1) if shared_parts else 0)
        self._put('pages_sharing', sharing + (0 if uzp else max(0, zero - 1)))
        self._put('ksm_zero_pages', zero if uzp else 0)
        self._put('pages_unshared', max(0, rmap - sharing - zero))
        for proc in self.procs.values():
            self._write_proc(proc)
        self._write_ksmd()

    def saved(self):
        return self.knob('pages_sharing') + self.knob('ksm_zero_pages')


def make_config(**overrides):
    raw = {'libvirt_uri': '', 'metrics_path': ''}
    raw.update(overrides)
    return pfd.validate_config(raw)


class Harness(object):
    """A controller on a SimKernel with a fake clock; ``run(seconds)`` steps like the daemon loop."""

    def __init__(self, tmp_path, config=None, **kernel_args):
        self.kernel = SimKernel(tmp_path, **kernel_args)
        self.clock = Clock()
        self.logs = []
        self.ksm = self.kernel.sysfs()
        self.config = config or make_config(state_path=str(tmp_path / 'run' / 'state.json'))
        self.controller = pfd.Controller(self.config, self.ksm, pfd.ProcessWatcher(self.kernel.proc, PAGE),
                                         clock=self.clock, wall=self.clock.wall, log=self.logs.append,
                                         snapshot_path=str(tmp_path / 'snapshot.json'))
        self.history = []

    def step(self):
        state = self.controller.step()
        self.history.append((self.clock.now, state['phase'], self.kernel.saved(), dict(state['knobs']), state['ksmd_cpu_percent']))
        return state

    def interval(self):
        return self.config['boost_interval'] if self.controller.phase in ('boost', 'settle') else self.config['interval']

    def run(self, seconds, until=None):
        end = self.clock.now + seconds
        state = self.controller.state
        while self.clock.now < end:
            state = self.step()
            if until is not None and until(state):
                return state
            dt = self.interval()
            self.kernel.advance(dt)
            self.clock.now += dt
        return state

    def first_time(self, predicate):
        for now, phase, saved, knobs, cpu in self.history:
            if predicate(phase, saved, knobs):
                return now
        return None


# ---------------------------------------------------------------------------------------------
# phases


def test_idle_without_mergeable_memory_stops_ksmd(tmp_path):
    h = Harness(tmp_path, overrides={'run': '1'})
    state = h.step()
    assert state['phase'] == 'idle'
    assert h.kernel.knob('run') == 0
    assert ('run', '2') not in h.kernel.writes
    assert 'phase start -> idle' in h.logs[0]


def test_boost_on_new_vm_then_settle_and_steady(tmp_path):
    h = Harness(tmp_path)
    h.run(4)
    assert h.controller.phase == 'idle'
    for pid in (101, 102, 103, 104):
        h.kernel.add_process(pid, mib=256)
    start = h.clock.now
    state = h.step()
    assert state['phase'] == 'boost'
    assert state['mergeable_pages_estimate'] >= 4 * 65536
    knobs = state['knobs']
    assert knobs['run'] == 1
    assert knobs['sleep_millisecs'] == 5
    # A full pass within boost_pass_seconds (0.1 s), capped by the CPU budget (95 %): with the prior cost of 2 us a page
    # that is 0.95 / 2e-6 = 475000 pages/s, i.e. 475000 * 5 ms / (1 - 0.95) = 47500 per batch.
    assert knobs['pages_to_scan'] >= 47500
    assert h.kernel.knob('use_zero_pages') == 1
    achievable = h.kernel.achievable()
    h.run(60, until=lambda s: s['phase'] == 'steady')
    assert h.controller.phase == 'steady'
    t90 = h.first_time(lambda phase, saved, knobs: saved >= 0.9 * achievable)
    assert t90 is not None and t90 - start <= 5.0, h.history
    assert h.kernel.saved() >= 0.99 * achievable
    h.run(10)
    steady = h.controller.state
    assert steady['phase'] == 'steady'
    assert steady['knobs']['sleep_millisecs'] == 100
    assert steady['knobs']['pages_to_scan'] < knobs['pages_to_scan'] / 10
    # Steady ksmd CPU stays under its budget (2 % of one core by default).
    assert steady['ksmd_cpu_percent'] <= 2.0 * 1.1
    phases = [line for line in h.logs if 'phase' in line]
    assert [p.split(':')[0] for p in phases] == ['phase start -> idle', 'phase idle -> boost', 'phase boost -> settle', 'phase settle -> steady']
    assert ('run', '2') not in h.kernel.writes


def test_already_merged_memory_settles_fast(tmp_path):
    h = Harness(tmp_path)
    h.kernel.add_process(201)
    h.kernel.add_process(202)
    h.kernel.procs[201].covered = h.kernel.procs[202].covered = 10 * 65536  # merged long ago
    h.kernel.advance(0)
    h.run(30, until=lambda s: s['phase'] == 'steady')
    assert h.controller.phase == 'steady'
    assert h.clock.now - 1000.0 < 10


def test_newcomer_reboosts_from_steady(tmp_path):
    h = Harness(tmp_path)
    for pid in (301, 302, 303):
        h.kernel.add_process(pid)
    h.run(60, until=lambda s: s['phase'] == 'steady')
    assert h.controller.phase == 'steady'
    h.kernel.add_process(304)
    state = h.step()
    assert state['phase'] == 'boost'
    assert 'new mergeable processes: 304' in h.logs[-1]
    assert state['boosts'] == 2
    proc = h.kernel.procs[304]
    start = h.clock.now
    h.run(30, until=lambda s: h.kernel._merged(proc)[0] >= 0.9 * proc.shared)
    assert h.clock.now - start <= 5.0


def test_small_growth_does_not_boost(tmp_path):
    h = Harness(tmp_path)
    h.kernel.add_process(401)
    h.run(60, until=lambda s: s['phase'] == 'steady')
    h.kernel.add_process(402, mib=8)  # below new_memory_threshold_mib (32)
    assert h.step()['phase'] == 'steady'


def test_vm_gone_goes_idle_without_unmerging(tmp_path):
    h = Harness(tmp_path)
    h.kernel.add_process(501)
    h.kernel.add_process(502)
    h.run(60, until=lambda s: s['phase'] == 'steady')
    h.kernel.remove_process(501)
    h.kernel.remove_process(502)
    state = h.step()
    assert state['phase'] == 'idle'
    assert h.kernel.knob('run') == 0
    assert ('run', '2') not in h.kernel.writes


def test_idle_stop_false_keeps_ksmd_running(tmp_path):
    h = Harness(tmp_path, config=make_config(idle_stop='false'), overrides={'run': '1'})
    assert h.step()['phase'] == 'idle'
    assert h.kernel.knob('run') == 1


def test_boost_ends_after_boost_max_seconds(tmp_path):
    # A settle that never ends (100 quiet passes wanted): boost_max_seconds ends the boost.
    h = Harness(tmp_path, config=make_config(boost_max_seconds='5', settle_passes='100'))
    h.kernel.add_process(601)
    h.kernel.add_process(602)
    h.run(20, until=lambda s: s['phase'] == 'steady')
    assert h.controller.phase == 'steady'
    assert any('boost_max_seconds' in line for line in h.logs)


# ---------------------------------------------------------------------------------------------
# CPU budget


def test_cpu_cap_scales_pages_to_scan_down(tmp_path):
    # Expensive pages: a 1 s pass would need ~ 2.6 cores; the budget is 25 %.
    h = Harness(tmp_path, config=make_config(max_cpu_percent='25'), cost_per_page=1e-5)
    for pid in (701, 702):
        h.kernel.add_process(pid, mib=512)
    h.run(10)
    cpus = [cpu for now, phase, saved, knobs, cpu in h.history[3:] if phase in ('boost', 'settle') and cpu is not None]
    assert cpus, h.history
    assert max(cpus) <= 25 * 1.25, cpus
    assert min(cpus) >= 25 * 0.5, cpus


def test_cpu_cap_without_pages_scanned_uses_feedback(tmp_path):
    # Kernels before 6.7 have no pages_scanned: the measured CPU alone scales pages_to_scan down.
    h = Harness(tmp_path, config=make_config(max_cpu_percent='20'), cost_per_page=1e-5)
    os.unlink(os.path.join(h.kernel.root, 'pages_scanned'))
    h.kernel._put = _skip_pages_scanned(h.kernel._put)
    for pid in (711, 712):
        h.kernel.add_process(pid, mib=512)
    h.run(15)
    cpus = [cpu for now, phase, saved, knobs, cpu in h.history[-6:] if cpu is not None]
    assert max(cpus) <= 20 * 1.5, h.history


def _skip_pages_scanned(put):
    def wrapper(name, value):
        if name != 'pages_scanned':
            put(name, value)
    return wrapper


def test_steady_mode_advisor_hands_over_to_the_kernel(tmp_path):
    h = Harness(tmp_path, config=make_config(steady_mode='advisor', steady_max_cpu_percent='3', steady_pass_seconds='150'))
    h.kernel.add_process(801)
    h.kernel.add_process(802)
    h.run(60, until=lambda s: s['phase'] == 'steady')
    assert h.kernel.knob('advisor_mode') == 'scan-time'
    assert h.kernel.knob('advisor_max_cpu') == 3
    assert h.kernel.knob('advisor_target_scan_time') == 150
    writes_before = len(h.kernel.writes)
    h.run(6)
    assert not [w for w in h.kernel.writes[writes_before:] if w[0] == 'pages_to_scan']
    h.kernel.add_process(803)
    assert h.step()['phase'] == 'boost'
    assert h.kernel.knob('advisor_mode') == 'none'
    assert h.kernel.knob('pages_to_scan') > 500


def test_use_zero_pages_keep(tmp_path):
    h = Harness(tmp_path, config=make_config(use_zero_pages='keep'))
    h.kernel.add_process(901)
    h.step()
    assert h.kernel.knob('use_zero_pages') == 0
    assert not [w for w in h.kernel.writes if w[0] == 'use_zero_pages']


# ---------------------------------------------------------------------------------------------
# errors, snapshot and restore


def test_sysfs_write_errors_are_logged_once_and_the_daemon_keeps_going(tmp_path):
    h = Harness(tmp_path)
    h.kernel.add_process(1001)

    def fail(name, text):
        raise OSError(errno.EACCES, 'Permission denied')
    h.ksm._write_raw = fail
    for dummy in range(5):
        state = h.step()
        h.clock.now += 0.5
    errors = [line for line in h.logs if line.startswith('error:')]
    assert len(errors) == 1
    assert 'Permission denied writing KSM knob' in errors[0]
    assert state['phase'] == 'boost'
    assert 'Permission denied' in state['last_error']


def test_restore_on_stop_puts_the_original_settings_back(tmp_path):
    config = make_config(state_path=str(tmp_path / 'run' / 'state.json'))
    kernel = SimKernel(tmp_path, overrides={'run': '0', 'pages_to_scan': '123', 'sleep_millisecs': '45'})
    kernel.add_process(1101)
    clock = Clock()
    logs = []
    daemon = pfd.Daemon(str(tmp_path / 'none.conf'), config, ksm=kernel.sysfs(), log=logs.append, clock=clock, wall=clock.wall)
    daemon.run_step()
    snapshot = tmp_path / 'run' / 'snapshot.json'
    assert json.loads(snapshot.read_text())['knobs']['pages_to_scan'] == 123
    assert kernel.knob('run') == 1
    daemon.shutdown()
    assert (kernel.knob('run'), kernel.knob('pages_to_scan'), kernel.knob('sleep_millisecs'), kernel.knob('use_zero_pages')) == (0, 123, 45, 0)
    assert not snapshot.exists()
    state = json.loads((tmp_path / 'run' / 'state.json').read_text())
    assert state['phase'] == 'stopped'
    assert ('run', '2') not in kernel.writes


def test_no_restore_when_not_configured(tmp_path):
    config = make_config(state_path=str(tmp_path / 'run' / 'state.json'), restore_on_exit='false')
    kernel = SimKernel(tmp_path)
    kernel.add_process(1201)
    daemon = pfd.Daemon(str(tmp_path / 'none.conf'), config, ksm=kernel.sysfs(), log=lambda m: None)
    daemon.run_step()
    daemon.shutdown()
    assert kernel.knob('run') == 1
    assert not (tmp_path / 'run' / 'snapshot.json').exists()


def test_snapshot_of_a_crashed_run_is_reused(tmp_path):
    kernel = SimKernel(tmp_path, overrides={'pages_to_scan': '5000', 'run': '1'})  # a crashed daemon's boost settings
    (tmp_path / 'snapshot.json').write_text(json.dumps({'knobs': {'run': 0, 'pages_to_scan': 100, 'sleep_millisecs': 20}}))
    logs = []
    controller = pfd.Controller(make_config(), kernel.sysfs(), log=logs.append, snapshot_path=str(tmp_path / 'snapshot.json'))
    controller.step()
    assert controller.snapshot['pages_to_scan'] == 100
    assert controller.restore()
    assert (kernel.knob('run'), kernel.knob('pages_to_scan')) == (0, 100)


def test_restore_never_unmerges(tmp_path):
    kernel = SimKernel(tmp_path, overrides={'run': '2'})
    controller = pfd.Controller(make_config(), kernel.sysfs(), log=lambda m: None)
    controller.step()
    controller.restore()
    assert kernel.knob('run') == 0
    assert ('run', '2') not in kernel.writes


# ---------------------------------------------------------------------------------------------
# configuration


def test_defaults_without_a_config_file(tmp_path):
    assert pfd.load_config(str(tmp_path / 'absent.conf')) == pfd.DEFAULTS


def test_config_file_parsing(tmp_path):
    path = tmp_path / 'pagefusiond.conf'
    path.write_text('# comment\n[pagefusiond]\nmax_cpu_percent = 50   # inline\nsteady_mode = advisor\nidle_stop = no\nmetrics_path =\n')
    config = pfd.load_config(str(path))
    assert config['max_cpu_percent'] == 50.0
    assert config['steady_mode'] == 'advisor'
    assert config['idle_stop'] is False
    assert config['metrics_path'] == ''
    assert config['interval'] == pfd.DEFAULTS['interval']


def test_config_without_section_header(tmp_path):
    path = tmp_path / 'c.conf'
    path.write_text('boost_pass_seconds = 2.5\n')
    assert pfd.load_config(str(path))['boost_pass_seconds'] == 2.5


@pytest.mark.parametrize('text, words', [
    ('max_cpu_percent = 150', ['max_cpu_percent', '150', 'from 1 to 100']),
    ('steady_mode = fast', ['steady_mode', 'rate, advisor']),
    ('idle_stop = maybe', ['idle_stop', 'true or false']),
    ('boost_sleep_millisecs = 2.5', ['boost_sleep_millisecs', 'an integer']),
    ('pages = 3', ["unknown key 'pages'", 'known keys are']),
    ('state_path = relative/state.json', ['state_path', 'absolute path']),
    ('[other]\nx = 1', ['unknown section [other]']),
    ('max_cpu_percent = nan', ['max_cpu_percent']),
])
def test_bad_config_names_the_key_and_the_allowed_values(tmp_path, text, words):
    path = tmp_path / 'bad.conf'
    path.write_text(text + '\n')
    with pytest.raises(pfd.ConfigError) as info:
        pfd.load_config(str(path))
    for word in words:
        assert word in str(info.value)
    assert str(path) in str(info.value)


def test_render_config_round_trips():
    assert pfd.parse_config_text(pfd.render_config(pfd.DEFAULTS)) == pfd.DEFAULTS


def test_main_bad_config_exits_2(tmp_path, capsys):
    path = tmp_path / 'bad.conf'
    path.write_text('max_cpu_percent = 0\n')
    assert pfd.main(['--config', str(path), '--check-config']) == pfd.EXIT_CONFIG
    assert pfd.main(['--config', str(path), '--once']) == pfd.EXIT_CONFIG
    err = capsys.readouterr().err
    assert 'bad configuration' in err and 'max_cpu_percent' in err


def test_main_check_config_ok(tmp_path, capsys):
    path = tmp_path / 'good.conf'
    path.write_text('[pagefusiond]\ninterval = 5\n')
    assert pfd.main(['--config', str(path), '--check-config']) == pfd.EXIT_OK
    assert 'valid' in capsys.readouterr().out
    assert pfd.main(['--config', str(tmp_path / 'missing.conf'), '--check-config']) == pfd.EXIT_CONFIG


def test_main_without_ksm_exits_3(tmp_path, capsys):
    ksm = _ksm.KsmSysfs(root=str(tmp_path / 'no-ksm'), proc_root=str(tmp_path), page_size=PAGE)
    assert pfd.main(['--config', str(tmp_path / 'absent.conf'), '--once'], ksm=ksm) == pfd.EXIT_NO_KSM
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'KSM is not available' in err


def test_main_once_prints_state(tmp_path, capsys):
    kernel = SimKernel(tmp_path)
    conf = tmp_path / 'c.conf'
    conf.write_text('state_path = %s\nlibvirt_uri =\nmetrics_path =\n' % (tmp_path / 'run' / 'state.json'))
    assert pfd.main(['--config', str(conf), '--once'], ksm=kernel.sysfs()) == 0
    state = json.loads(capsys.readouterr().out)
    assert state['phase'] == 'idle'
    assert not (tmp_path / 'run').exists()  # --once writes no files


def test_sighup_reload_keeps_old_config_when_the_new_one_is_bad(tmp_path):
    conf = tmp_path / 'pagefusiond.conf'
    conf.write_text('max_cpu_percent = 40\nstate_path = %s\n' % (tmp_path / 'state.json'))
    config = pfd.load_config(str(conf))
    kernel = SimKernel(tmp_path)
    logs = []
    daemon = pfd.Daemon(str(conf), config, ksm=kernel.sysfs(), log=logs.append)
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
    conf.write_text('state_path = %s\nlibvirt_uri =\nmetrics_path =\n' % (tmp_path / 'run' / 'state.json'))
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

    daemon = pfd.Daemon(str(conf), pfd.load_config(str(conf)), ksm=kernel.sysfs(), log=lambda m: None, waiter=Waiter())
    assert daemon.run(install_signals=False) == 0
    assert kernel.knob('run') == 0
    assert json.loads((tmp_path / 'run' / 'state.json').read_text())['phase'] == 'stopped'


# ---------------------------------------------------------------------------------------------
# outputs


def test_state_and_metrics_files(tmp_path):
    metrics_dir = tmp_path / 'textfile'
    metrics_dir.mkdir()
    conf = make_config(state_path=str(tmp_path / 'run' / 'state.json'), metrics_path=str(metrics_dir / 'pagefusiond.prom'))
    kernel = SimKernel(tmp_path)
    kernel.add_process(1401)
    kernel.add_process(1402)
    clock = Clock()
    daemon = pfd.Daemon('/nonexistent.conf', conf, ksm=kernel.sysfs(), log=lambda m: None, clock=clock, wall=clock.wall)
    daemon.run_step()
    kernel.advance(0.5)
    clock.now += 0.5
    daemon.run_step()
    state = json.loads((tmp_path / 'run' / 'state.json').read_text())
    for key in ('phase', 'since', 'knobs', 'saved_bytes', 'saved_pages', 'shared_bytes', 'ksmd_cpu_percent',
                'mergeable_pages_estimate', 'updated', 'pid', 'version', 'config'):
        assert key in state
    assert state['phase'] == 'boost'
    assert state['pid'] == os.getpid()
    assert state['updated'] == clock.wall()
    assert state['mergeable_pages_estimate'] == 2 * 65536
    assert state['ksmd_cpu_percent'] > 10
    assert state['config']['max_cpu_percent'] == pfd.DEFAULTS['max_cpu_percent']
    assert not [n for n in os.listdir(str(tmp_path / 'run')) if n.endswith('.tmp')]
    text = (metrics_dir / 'pagefusiond.prom').read_text()
    assert 'pagefusiond_phase{phase="boost"} 1\n' in text
    assert 'pagefusiond_phase{phase="idle"} 0\n' in text
    assert '# TYPE pagefusiond_saved_bytes gauge' in text
    assert 'pagefusiond_saved_bytes %d\n' % state['saved_bytes'] in text
    assert 'pagefusiond_pages_to_scan %d\n' % state['knobs']['pages_to_scan'] in text
    assert 'pagefusiond_ksmd_cpu_percent ' in text
    assert 'pagefusiond_up 1\n' in text


def test_missing_metrics_dir_is_logged_once(tmp_path):
    conf = make_config(state_path=str(tmp_path / 'state.json'), metrics_path=str(tmp_path / 'absent' / 'x.prom'))
    kernel = SimKernel(tmp_path)
    logs = []
    daemon = pfd.Daemon('/nonexistent.conf', conf, ksm=kernel.sysfs(), log=logs.append)
    daemon.run_step()
    daemon.run_step()
    assert len([line for line in logs if 'metrics directory' in line]) == 1


def test_status(tmp_path, capsys):
    kernel = SimKernel(tmp_path)
    conf = tmp_path / 'c.conf'
    conf.write_text('state_path = %s\nlibvirt_uri =\nmetrics_path =\n' % (tmp_path / 'state.json'))
    assert pfd.main(['--config', str(conf), '--status']) == 1
    assert 'not running' in capsys.readouterr().out
    daemon = pfd.Daemon(str(conf), pfd.load_config(str(conf)), ksm=kernel.sysfs(), log=lambda m: None)
    daemon.run_step()
    assert pfd.main(['--config', str(conf), '--status']) == 0
    out = capsys.readouterr().out
    assert 'phase idle' in out and 'pages_to_scan=' in out
    state = json.loads((tmp_path / 'state.json').read_text())
    state['updated'] -= 3600
    (tmp_path / 'state.json').write_text(json.dumps(state))
    assert pfd.main(['--config', str(conf), '--status']) == 1
    assert 'STALE' in capsys.readouterr().out


def test_is_stale():
    state = {'phase': 'steady', 'updated': 1000.0, 'config': {'interval': 2.0, 'boost_interval': 0.5}}
    assert not pfd.is_stale(state, now=1010.0)
    assert pfd.is_stale(state, now=1012.0)
    assert pfd.is_stale(dict(state, phase='stopped'), now=1000.0)


def test_mergeable_rss_pages():
    text = ('00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/qemu\nRss: 100 kB\nVmFlags: rd ex mr mw me dw\n'
            '7f00-7f01 rw-p 00000000 00:00 0\nRss: 262144 kB\nVmFlags: rd wr mr mw me ac sd mg\n'
            '7f02-7f03 rw-p 00000000 00:00 0\nRss: 40 kB\nVmFlags: rd wr mr mw me ac mg\n')
    assert _ksm.mergeable_rss_pages(text, 4096) == (262144 + 40) // 4


def test_watcher_unavailable_without_ksm_stat_never_goes_idle(tmp_path):
    kernel = SimKernel(tmp_path, overrides={'run': '1'})
    os.unlink(os.path.join(kernel.proc, 'self', 'ksm_stat'))
    controller = pfd.Controller(make_config(), kernel.sysfs(), log=lambda m: None)
    state = controller.step()
    assert not controller.watcher.available
    assert state['phase'] == 'boost'
    assert kernel.knob('run') == 1


def test_libvirt_events_without_libvirt_python(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == 'libvirt':
            raise ImportError(name)
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, '__import__', fake_import)
    logs = []
    events = pfd.LibvirtEvents('qemu:///system', lambda reason: None, logs.append)
    assert events.start() is False
    assert 'libvirt-python not importable' in logs[0]


def test_wake_reason_is_logged(tmp_path):
    h = Harness(tmp_path)
    h.step()
    h.kernel.add_process(1501)
    h.controller.wake('libvirt domain vm1 started')
    h.step()
    assert 'libvirt domain vm1 started' in h.logs[-1]


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


def test_an_exiting_process_with_an_empty_ksm_stat_does_not_stop_idling(tmp_path):
    h = Harness(tmp_path)
    h.kernel.add_process(1701)
    h.run(60, until=lambda s: s['phase'] == 'steady')
    os.makedirs(os.path.join(h.kernel.proc, '1702'))
    with open(os.path.join(h.kernel.proc, '1702', 'ksm_stat'), 'w') as handle:
        handle.write('')  # read while the process exits
    h.kernel.remove_process(1701)
    assert h.step()['phase'] == 'idle'


def test_kernel_without_ksm_mergeable_never_idles(tmp_path):
    # Before about 6.14 ksm_stat has no ksm_mergeable line: a process with rmap items counts, and idling is not trusted.
    h = Harness(tmp_path)
    os.makedirs(os.path.join(h.kernel.proc, '1801'))
    with open(os.path.join(h.kernel.proc, '1801', 'ksm_stat'), 'w') as handle:
        handle.write('ksm_rmap_items 0\nksm_zero_pages 0\nksm_merging_pages 0\nksm_process_profit 0\n')
    state = h.step()
    assert not h.controller.watcher.exact
    assert state['phase'] == 'boost'


def test_role_defaults_are_the_daemon_defaults():
    # roles/host_daemon/defaults/main.yml repeats the daemon's defaults for the keys it exposes: keep them equal.
    yaml = pytest.importorskip('yaml')
    root = os.path.dirname(os.path.abspath(__file__))
    for dummy in range(4):
        root = os.path.dirname(root)
    path = os.path.join(root, 'roles', 'host_daemon', 'defaults', 'main.yml')
    if not os.path.exists(path):
        pytest.skip('role not in this tree')
    with open(path) as handle:
        defaults = yaml.safe_load(handle)
    exposed = dict((k[len('host_daemon_'):], v) for k, v in defaults.items() if k[len('host_daemon_'):] in pfd.OPTIONS)
    assert sorted(exposed) == ['boost_pass_seconds', 'idle_stop', 'libvirt_uri', 'log_level', 'max_cpu_percent', 'metrics_path',
                               'restore_on_exit', 'steady_max_cpu_percent', 'steady_mode', 'steady_pass_seconds', 'use_zero_pages']
    for key, value in exposed.items():
        assert pfd.OPTIONS[key].parse(str(value).lower() if isinstance(value, bool) else str(value)) == pfd.DEFAULTS[key], key


# ---------------------------------------------------------------------------------------------
# watching between steps


class NeverWoken(object):
    """Stands in for the wake event: every wait times out at once and counts."""

    def __init__(self):
        self.waits = []

    def wait(self, timeout):
        self.waits.append(timeout)
        return False

    def set(self):
        pass

    def clear(self):
        pass


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
    assert h.controller.watcher.spot(8193) is None
    assert h.controller.watcher.spot(8192) == 'mergeable processes grew by 32 MiB'


def test_pause_in_steady_wakes_early_for_a_newcomer(tmp_path):
    config = make_config(state_path=str(tmp_path / 'run' / 'state.json'))
    kernel = SimKernel(tmp_path)
    for pid in (1701, 1702, 1703):
        kernel.add_process(pid, mib=64)
    waiter = NeverWoken()
    daemon = pfd.Daemon(str(tmp_path / 'none.conf'), config, ksm=kernel.sysfs(), log=lambda m: None, waiter=waiter)
    daemon.run_step()
    daemon.controller.phase = 'steady'
    daemon.pause()
    # nothing new: the whole interval (2 s) in slices of watch_interval (0.5 s), then the step
    assert waiter.waits == [0.5, 0.5, 0.5, 0.5]
    assert daemon.controller.wake_reason is None
    del waiter.waits[:]
    kernel.add_process(1704, mib=64)
    daemon.pause()
    assert waiter.waits == [0.5]
    assert daemon.controller.wake_reason == 'new mergeable process 1704'
    state = daemon.run_step()
    assert state['phase'] == 'boost'


def test_pause_without_watching_waits_the_interval_once(tmp_path):
    config = make_config(state_path=str(tmp_path / 'run' / 'state.json'), watch_interval='0')
    kernel = SimKernel(tmp_path)
    kernel.add_process(1801, mib=64)
    waiter = NeverWoken()
    daemon = pfd.Daemon(str(tmp_path / 'none.conf'), config, ksm=kernel.sysfs(), log=lambda m: None, waiter=waiter)
    daemon.run_step()
    daemon.controller.phase = 'steady'
    kernel.add_process(1802, mib=64)
    daemon.pause()
    assert waiter.waits == [2.0]
    assert daemon.controller.wake_reason is None
