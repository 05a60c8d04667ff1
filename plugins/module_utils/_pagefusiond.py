# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""pagefusiond, the host fusion daemon of pagefusion.core: configuration, control loop, state output.

This is a private module_utils of pagefusion.core: its API may change at any time.

It runs outside Ansible (the executable ``daemon/pagefusiond`` is a thin entry point; the role
``pagefusion.core.host_daemon`` installs both files and ``_ksm.py`` into ``/usr/lib/pagefusiond``),
so it uses the Python standard library only, plus libvirt-python when it can be imported.
Every KSM read and write goes through :mod:`_ksm`, the one KSM model of the collection.

Phases (``state.json`` ``phase``):

* ``idle``: no process has mergeable memory; ksmd is stopped with ``run=0`` (merged pages stay
  merged: the daemon never unmerges).
* ``boost``: new mergeable memory appeared (a new mergeable process, mergeable memory grew, a
  libvirt domain started); ksmd scans hard, sized so that one full pass over the mergeable pages
  takes ``boost_pass_seconds``, capped by ``max_cpu_percent`` of ksmd CPU measured from ksmd's own
  CPU time. Lasts ``boost_min_passes`` full scans.
* ``settle``: same rate; each full pass is compared with the one before; after ``settle_passes``
  passes that added less than ``settle_threshold_percent`` of the mergeable pages to the saving,
  the daemon goes steady.
* ``steady``: a slow maintenance rate (one pass per ``steady_pass_seconds`` at most
  ``steady_max_cpu_percent``), or the kernel's scan-time advisor with those targets
  (``steady_mode = advisor``).
"""

from __future__ import annotations

import configparser
import errno
import json
import math
import os
import signal
import sys
import threading
import time

try:
    from ansible_collections.pagefusion.core.plugins.module_utils import _ksm
except ImportError:  # installed daemon: _ksm.py sits next to this file
    import _ksm  # type: ignore[no-redef]

__version__ = '0.1.0'

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_NO_KSM = 3

DEFAULT_CONFIG_PATH = '/etc/pagefusiond.conf'
CONFIG_SECTION = 'pagefusiond'

# ksmd CPU seconds per scanned page assumed until measured (a first pass costs ~1.5 us a page on a
# 2020s x86 core, a merging pass ~5-8 us).
PRIOR_CPU_PER_PAGE = 2e-6

PHASES = ('idle', 'boost', 'settle', 'steady', 'stopped')


# --------------------------------------------------------------------------------------------
# Configuration


class Option(object):
    """One configuration key: its type, default, bounds or choices, and its documentation."""

    __slots__ = ('name', 'kind', 'default', 'minimum', 'maximum', 'choices', 'description')

    def __init__(self, name, kind, default, description, minimum=None, maximum=None, choices=None):
        self.name = name
        self.kind = kind
        self.default = default
        self.description = description
        self.minimum = minimum
        self.maximum = maximum
        self.choices = choices

    def allowed(self):
        if self.kind == 'bool':
            return 'true or false (also yes/no, on/off, 1/0)'
        if self.kind == 'choice':
            return ', '.join(self.choices)
        if self.kind == 'path':
            return 'an absolute path, or empty to switch it off' if self.default == '' or self.name == 'metrics_path' else 'an absolute path'
        if self.kind == 'str':
            return 'any text (empty switches it off)'
        kind = 'an integer' if self.kind == 'int' else 'a number'
        return '%s from %s to %s' % (kind, _fmt(self.minimum), _fmt(self.maximum))

    def parse(self, raw):
        """Parse the text of a config value; raises ConfigError naming the key and the allowed values."""
        text = raw.strip() if isinstance(raw, str) else raw
        try:
            if self.kind == 'bool':
                if isinstance(text, bool):
                    return text
                word = str(text).lower()
                if word in ('1', 'yes', 'true', 'on'):
                    return True
                if word in ('0', 'no', 'false', 'off'):
                    return False
                raise ValueError(text)
            if self.kind == 'choice':
                if text in self.choices:
                    return text
                raise ValueError(text)
            if self.kind == 'path':
                if text == '' and self.name in ('metrics_path',):
                    return ''
                if not isinstance(text, str) or not text.startswith('/'):
                    raise ValueError(text)
                return text
            if self.kind == 'str':
                return str(text)
            if isinstance(text, bool):
                raise ValueError(text)
            value = int(text) if self.kind == 'int' else float(text)
            if math.isnan(value) or value < self.minimum or value > self.maximum:
                raise ValueError(text)
            return value
        except (TypeError, ValueError):
            raise ConfigError('invalid value %r for %s: allowed values are %s' % (raw, self.name, self.allowed()))


def _fmt(number):
    return ('%g' % number) if isinstance(number, float) else str(number)


OPTIONS = dict((o.name, o) for o in (
    Option('interval', 'float', 2.0, 'seconds between control steps in the idle and steady phases', 0.1, 3600.0),
    Option('watch_interval', 'float', 0.5,
           'between those steps, seconds between cheap looks for new mergeable processes (0: off)', 0.0, 3600.0),
    Option('boost_interval', 'float', 0.25, 'seconds between control steps in the boost and settle phases', 0.05, 60.0),
    Option('boost_pass_seconds', 'float', 0.1, 'seconds one full pass over the mergeable pages should take while boosting', 0.1, 3600.0),
    Option('boost_sleep_millisecs', 'int', 5, 'sleep_millisecs while boosting', 0, 1000),
    Option('max_cpu_percent', 'float', 95.0, 'ksmd CPU budget while boosting, percent of one core', 1.0, 100.0),
    Option('boost_max_pages_to_scan', 'int', 100000, 'highest pages_to_scan the daemon writes', 100, 10000000),
    Option('boost_min_passes', 'int', 2, 'full scans a boost lasts before the daemon checks whether sharing still grows', 1, 100),
    Option('boost_max_seconds', 'float', 120.0, 'longest boost (with settle); then steady regardless', 1.0, 86400.0),
    Option('settle_passes', 'int', 1, 'consecutive quiet full scans that end the settle phase', 1, 100),
    Option('settle_threshold_percent', 'float', 1.0,
           'a full scan is quiet when the saving grew by less than this percent of the mergeable pages', 0.0, 100.0),
    Option('steady_mode', 'choice', 'rate', "'rate' (the daemon's own slow rate) or 'advisor' (the kernel's scan-time advisor)",
           choices=('rate', 'advisor')),
    Option('steady_pass_seconds', 'float', 60.0, 'seconds one full pass should take in the steady phase', 1.0, 86400.0),
    Option('steady_sleep_millisecs', 'int', 100, 'sleep_millisecs in the steady phase', 1, 10000),
    Option('steady_max_cpu_percent', 'float', 2.0, 'ksmd CPU budget in the steady phase, percent of one core', 0.1, 100.0),
    Option('steady_min_pages_to_scan', 'int', 16, 'lowest pages_to_scan in the steady phase', 1, 100000),
    Option('new_memory_threshold_mib', 'float', 32.0, 'growth of mergeable memory (MiB) that starts a boost', 0.0, 1048576.0),
    Option('idle_stop', 'bool', True, 'stop ksmd (run=0, pages stay merged) while nothing is mergeable'),
    Option('use_zero_pages', 'choice', 'true', "'true' or 'false' to set KSM use_zero_pages, 'keep' to leave it alone",
           choices=('true', 'false', 'keep')),
    Option('restore_on_exit', 'bool', True, "put back the host's KSM settings from before the daemon started when it stops"),
    Option('state_path', 'path', '/run/pagefusiond/state.json', 'the JSON state file (read by pagefusion.core.fusion_facts)'),
    Option('metrics_path', 'path', '/var/lib/prometheus/node-exporter/pagefusiond.prom',
           'Prometheus text-format metrics file (node_exporter textfile collector); empty: none'),
    Option('libvirt_uri', 'str', 'qemu:///system', 'libvirt URI for domain lifecycle events when libvirt-python is importable; empty: none'),
    Option('log_level', 'choice', 'info', "'info' or 'debug'", choices=('info', 'debug')),
))

DEFAULTS = dict((name, option.default) for name, option in OPTIONS.items())


class ConfigError(Exception):
    """A configuration the daemon refuses (exit code 2)."""


def parse_config_text(text, source='<config>'):
    """Parse INI text (section ``[pagefusiond]``; a file without any section header is read as that section)."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=('#', ';'))
    parser.optionxform = str
    try:
        try:
            parser.read_string(text, source)
        except configparser.MissingSectionHeaderError:
            parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=('#', ';'))
            parser.optionxform = str
            parser.read_string('[%s]\n%s' % (CONFIG_SECTION, text), source)
    except configparser.Error as err:
        raise ConfigError('%s: cannot parse: %s' % (source, str(err).replace('\n', ' ')))
    extra = [s for s in parser.sections() if s != CONFIG_SECTION]
    if extra:
        raise ConfigError('%s: unknown section [%s]: the only section is [%s]' % (source, extra[0], CONFIG_SECTION))
    raw = dict(parser.items(CONFIG_SECTION)) if parser.has_section(CONFIG_SECTION) else {}
    try:
        return validate_config(raw)
    except ConfigError as err:
        raise ConfigError('%s: %s' % (source, err))


def validate_config(raw):
    """Validate a ``{key: text or value}`` dict; returns the full config with defaults filled in."""
    config = dict(DEFAULTS)
    for key in sorted(raw):
        if key not in OPTIONS:
            raise ConfigError('unknown key %r: known keys are %s' % (key, ', '.join(sorted(OPTIONS))))
        config[key] = OPTIONS[key].parse(raw[key])
    return config


def load_config(path, required=False):
    """Load and validate the config file; a missing file gives the defaults unless ``required``."""
    try:
        with open(path, 'r') as handle:
            text = handle.read()
    except (IOError, OSError) as err:
        if err.errno == errno.ENOENT and not required:
            return dict(DEFAULTS)
        raise ConfigError('cannot read config file %s: %s' % (path, err.strerror or err))
    return parse_config_text(text, path)


def render_config(config):
    """The config as INI text (the defaults file the role's template follows)."""
    lines = ['[%s]' % CONFIG_SECTION]
    for name in sorted(OPTIONS):
        value = config.get(name, DEFAULTS[name])
        if isinstance(value, bool):
            value = 'true' if value else 'false'
        lines.append('%s = %s' % (name, _fmt(value) if isinstance(value, float) else value))
    return '\n'.join(lines) + '\n'


# --------------------------------------------------------------------------------------------
# Processes: who has mergeable memory, and how much


def _read(path):
    with open(path, 'r') as handle:
        return handle.read()


class ProcessWatcher(object):
    """Finds the processes with mergeable memory and estimates how many mergeable pages they have.

    Each scan reads ``/proc/<pid>/ksm_stat`` of every process (through :func:`_ksm.read_process_ksm`).
    For a mergeable process, the resident pages of its mergeable VMAs (``/proc/<pid>/smaps``,
    VmFlags ``mg``) are the estimate; smaps is re-read only when the process's resident size
    (``/proc/<pid>/statm``) moved, so a steady host costs one small read per process and step.
    ``available`` is False on kernels without ``ksm_stat`` (before Linux 6.1): the daemon then
    relies on KSM's own counters and never goes idle. ``exact`` is False on kernels whose ksm_stat
    has no ``ksm_mergeable`` line (before about 6.14): a process then counts as mergeable once
    ksmd has seen its pages.
    """

    def __init__(self, proc_root=_ksm.DEFAULT_PROC_ROOT, page_size=None):
        self.proc_root = proc_root
        self.page_size = page_size or _ksm.system_page_size()
        self.known = {}  # pid -> {'rss': resident pages at the last smaps read, 'pages': estimate}
        self.seen = set()  # every pid the last scan looked at
        self.available = True
        self.exact = True
        self.notes = set()  # conditions the controller logs once

    def _pids(self):
        try:
            return [int(e) for e in os.listdir(self.proc_root) if e.isdigit()]
        except OSError:
            return []

    def _resident(self, pid):
        try:
            return int(_read(os.path.join(self.proc_root, str(pid), 'statm')).split()[1])
        except (IOError, OSError, ValueError, IndexError):
            return None

    def _estimate(self, pid):
        try:
            return _ksm.mergeable_rss_pages(_read(os.path.join(self.proc_root, str(pid), 'smaps')), self.page_size)
        except (IOError, OSError):
            return None

    def scan(self):
        """Scan the processes. Returns ``{'processes': {pid: info}, 'pages': N, 'new': [pids]}``."""
        found = {}
        new = []
        seen_stat = False
        exact = True
        pids = self._pids()
        self.seen = set(pids)
        for pid in pids:
            stat = _ksm.read_process_ksm(pid, self.proc_root)
            if stat is None or stat.get('source') != 'ksm_stat':
                continue
            seen_stat = True
            mergeable = stat.get('mergeable')
            if mergeable is None:
                if stat.get('rmap_items') is None:
                    continue  # an empty ksm_stat: the process is exiting
                exact = False
                mergeable = bool(stat.get('rmap_items') or stat.get('merging_pages') or stat.get('merge_any'))
            if not mergeable:
                continue
            resident = self._resident(pid)
            entry = self.known.get(pid)
            if entry is None or resident is None or abs(resident - entry['rss']) > max(256, entry['rss'] // 100):
                pages = self._estimate(pid)
                if pages is None:
                    # smaps needs ptrace read access (CAP_SYS_PTRACE for other users' or more privileged processes);
                    # the resident size is the upper bound that is left.
                    if resident is None:
                        continue
                    pages = resident
                    self.notes.add('cannot read /proc/<pid>/smaps (ptrace access; CAP_SYS_PTRACE missing?): '
                                   'mergeable memory is estimated from the resident size')
                if entry is None:
                    new.append(pid)
                entry = {'rss': resident or 0, 'pages': pages}
            entry = dict(entry)
            entry['stat'] = stat
            found[pid] = entry
        if not seen_stat:
            # No process showed a ksm_stat: either the kernel has none, or /proc is not readable.
            self.available = os.path.exists(os.path.join(self.proc_root, 'self', 'ksm_stat'))
        else:
            self.available = True
        if seen_stat:
            self.exact = exact
        self.known = dict((pid, {'rss': e['rss'], 'pages': e['pages']}) for pid, e in found.items())
        pages = sum(max(e['pages'], e['stat'].get('rmap_items') or 0) for e in found.values())
        return {'processes': found, 'pages': pages, 'new': new}

    def spot(self, threshold_pages):
        """A cheap look between scans: why a step should run now, or None.

        Reads only the resident size of the known mergeable processes and the ksm_stat of pids the last
        scan did not see, so it can run every fraction of a second. Finds a new process with mergeable
        memory (kernels whose ksm_stat says ``ksm_mergeable``), or known ones grown by ``threshold_pages``.
        """
        if not self.available or not self.exact:
            return None
        grown = 0
        for pid in self._pids():
            entry = self.known.get(pid)
            if entry is not None:
                resident = self._resident(pid)
                if resident is not None:
                    grown += max(0, resident - entry['rss'])
            elif pid not in self.seen:
                stat = _ksm.read_process_ksm(pid, self.proc_root)
                if stat is not None and stat.get('mergeable'):
                    return 'new mergeable process %d' % pid
        if grown >= max(threshold_pages, 1):
            return 'mergeable processes grew by %d MiB' % (grown * self.page_size // 1048576)
        return None


# --------------------------------------------------------------------------------------------
# The controller


def rmap_items(counters):
    """Pages ksmd tracks (its rmap items): shared + sharing + unshared + volatile."""
    return sum(counters.get(k, 0) for k in ('pages_shared', 'pages_sharing', 'pages_unshared', 'pages_volatile'))


class Controller(object):
    """The decision logic: one :meth:`step` reads KSM and the processes, picks the phase, writes the knobs.

    ``ksm`` is a :class:`_ksm.KsmSysfs`; ``watcher`` a :class:`ProcessWatcher`; ``clock`` is
    monotonic seconds, ``wall`` epoch seconds, ``log`` a callable taking one message.
    """

    def __init__(self, config, ksm, watcher=None, clock=time.monotonic, wall=time.time, log=None, snapshot_path=None):
        self.config = config
        self.ksm = ksm
        self.watcher = watcher if watcher is not None else ProcessWatcher(ksm.proc_root, ksm.page_size)
        self.clock = clock
        self.wall = wall
        self.log = log or (lambda message: None)
        self.snapshot_path = snapshot_path
        self.snapshot = None
        self.phase = None
        self.since = None
        self.phase_started = None
        self.boost_started = None
        self.fresh_phase = False
        self.boost_scans = None
        self.pass_scans = None
        self.pass_saved = None
        self.quiet_passes = 0
        self.known_pages = 0
        self.last_cpu = None
        self.last_time = None
        self.cpu_percent = None
        self.cpu_per_page = None
        self.scan_rate = None
        self.last_scanned = None
        self.cpu_scale = 1.0
        self.ksmd_pid = None
        self.boosts = 0
        self.wake_reason = None
        self.errors = set()
        self.last_error = None
        self.state = None
        self.started = wall()

    # -- helpers -------------------------------------------------------------------------

    def error_once(self, message):
        """Log an error the first time it occurs (sysfs write errors repeat every step)."""
        self.last_error = message
        if message not in self.errors:
            self.errors.add(message)
            self.log('error: %s (logged once; pagefusiond keeps going)' % message)

    def debug(self, message):
        if self.config.get('log_level') == 'debug':
            self.log('debug: %s' % message)

    def set_phase(self, phase, reason):
        if phase != self.phase:
            self.log('phase %s -> %s: %s' % (self.phase or 'start', phase, reason))
            if phase == 'boost' or (phase == 'settle' and self.phase != 'boost'):
                self.boost_started = self.clock()
            self.phase = phase
            self.since = self.wall()
            self.phase_started = self.clock()
            self.cpu_scale = 1.0
            self.fresh_phase = True

    def wake(self, reason):
        """Something (a libvirt event, a spotted process) says new mergeable memory may be coming: look now."""
        self.wake_reason = reason

    def spot(self):
        """The watcher's cheap look for new mergeable memory (see :meth:`ProcessWatcher.spot`)."""
        spot = getattr(self.watcher, 'spot', None)
        if spot is None:
            return None
        return spot(int(self.config['new_memory_threshold_mib'] * 1024 * 1024 // self.ksm.page_size))

    # -- snapshot / restore ---------------------------------------------------------------

    def take_snapshot(self):
        """Remember the host's KSM knobs (or re-use the snapshot a crashed predecessor left behind)."""
        if self.snapshot_path and os.path.exists(self.snapshot_path):
            try:
                with open(self.snapshot_path, 'r') as handle:
                    self.snapshot = json.load(handle)['knobs']
                self.log('re-using the KSM settings saved by an earlier run in %s' % self.snapshot_path)
                return self.snapshot
            except (IOError, OSError, ValueError, KeyError, TypeError):
                pass
        self.snapshot = self.ksm.snapshot_knobs()
        if self.snapshot_path:
            try:
                ensure_dir(os.path.dirname(self.snapshot_path))
                write_atomic(self.snapshot_path, json.dumps({'knobs': self.snapshot, 'saved': self.wall()}, sort_keys=True) + '\n')
            except (IOError, OSError) as err:
                self.error_once('cannot save the KSM settings to %s: %s' % (self.snapshot_path, err))
        return self.snapshot

    def restore(self):
        """Put the snapshot back (never unmerging: a saved run=2 is restored as run=0)."""
        if not self.snapshot:
            return False
        wanted = dict(self.snapshot)
        if wanted.get('run') == 2:
            wanted['run'] = 0
        try:
            self.ksm.restore_knobs(wanted)
        except _ksm.KsmError as err:
            self.error_once('restoring the KSM settings failed: %s' % err)
            return False
        self.log('restored the KSM settings from before pagefusiond started: %s' % _knob_text(wanted))
        self.forget_snapshot()
        return True

    def forget_snapshot(self):
        if self.snapshot_path:
            try:
                os.unlink(self.snapshot_path)
            except OSError:
                pass

    # -- measuring ------------------------------------------------------------------------

    def measure_cpu(self, now, counters):
        """ksmd CPU percent of one core since the last step, and CPU seconds per scanned page."""
        if self.ksmd_pid is None:
            self.ksmd_pid = self.ksm.ksmd_pid()
        cpu = self.ksm.ksmd_cpu_seconds(self.ksmd_pid) if self.ksmd_pid is not None else None
        if cpu is None and self.ksmd_pid is not None:
            self.ksmd_pid = None
        scanned = counters.get('pages_scanned')
        if cpu is not None and self.last_cpu is not None and now > self.last_time:
            used = max(0.0, cpu - self.last_cpu)
            self.cpu_percent = 100.0 * used / (now - self.last_time)
            self.scan_rate = None
            if scanned is not None and self.last_scanned is not None:
                self.scan_rate = max(0, scanned - self.last_scanned) / (now - self.last_time)
            if scanned is not None and self.last_scanned is not None and scanned - self.last_scanned >= 1000:
                sample = used / (scanned - self.last_scanned)
                self.cpu_per_page = sample if self.cpu_per_page is None else 0.5 * self.cpu_per_page + 0.5 * sample
        self.last_cpu = cpu
        self.last_time = now
        self.last_scanned = scanned
        return cpu

    # -- rates ----------------------------------------------------------------------------

    def pages_for(self, pages, pass_seconds, sleep_ms, cpu_budget, minimum):
        """pages_to_scan so that ``pages`` are scanned in ``pass_seconds`` with ``sleep_ms`` sleeps, within ``cpu_budget`` %.

        The model: ksmd scans ``pages_to_scan`` pages (costing ``cpu_per_page`` each, measured from
        pages_scanned and ksmd's CPU time), then sleeps. The wanted rate is ``pages/pass_seconds``,
        capped at ``cpu_budget / cpu_per_page``; the batch follows from ``rate * sleep / (1 - busy)``.
        Until the cost is measured (kernels before 6.7 have no pages_scanned) a prior of
        ``PRIOR_CPU_PER_PAGE`` stands in.
        A feedback factor then corrects the model with what was measured over the last step: down
        when ksmd's CPU was over the budget, up when the scan rate fell short of the wanted rate
        with CPU to spare (ksmd's sleeps last longer than asked: they are rounded up to jiffies).
        """
        rate = pages / float(pass_seconds)  # pages per second wanted
        sleep_s = max(sleep_ms, 1) / 1000.0
        cost = self.cpu_per_page or PRIOR_CPU_PER_PAGE
        rate = min(rate, cpu_budget / 100.0 / cost)
        busy = min(rate * cost, 0.95)
        value = rate * sleep_s / (1.0 - busy)
        cpu, measured = self.cpu_percent, self.scan_rate
        if self.fresh_phase or cpu is None:
            pass  # what was measured last ran under the previous phase's settings
        elif cpu > cpu_budget * 1.1:
            self.cpu_scale *= max(0.25, cpu_budget / cpu)
        elif measured is not None and measured < 0.9 * rate and cpu < 0.9 * cpu_budget:
            self.cpu_scale *= min(2.0, rate / max(measured, 1.0))
        elif measured is not None and measured > 1.3 * rate:
            self.cpu_scale *= max(0.5, math.sqrt(rate / measured))
        self.cpu_scale = max(0.02, min(8.0, self.cpu_scale))
        value *= self.cpu_scale
        return int(max(minimum, min(self.config['boost_max_pages_to_scan'], math.ceil(value))))

    def wanted_knobs(self, knobs, pages):
        """The knob values for the current phase (only knobs this kernel has)."""
        cfg = self.config
        wanted = {}
        if 'advisor_mode' in knobs:
            wanted['advisor_mode'] = 'none'
        if cfg['use_zero_pages'] != 'keep' and 'use_zero_pages' in knobs:
            wanted['use_zero_pages'] = 1 if cfg['use_zero_pages'] == 'true' else 0
        if self.phase == 'idle':
            if cfg['idle_stop']:
                wanted['run'] = 0
            wanted.pop('advisor_mode', None)
            return wanted
        wanted['run'] = 1
        if self.phase in ('boost', 'settle'):
            wanted['sleep_millisecs'] = cfg['boost_sleep_millisecs']
            wanted['pages_to_scan'] = self.pages_for(pages, cfg['boost_pass_seconds'], cfg['boost_sleep_millisecs'],
                                                     cfg['max_cpu_percent'], 100)
            return wanted
        wanted['sleep_millisecs'] = cfg['steady_sleep_millisecs']
        if cfg['steady_mode'] == 'advisor' and 'advisor_mode' in knobs:
            wanted['advisor_mode'] = 'scan-time'
            wanted['advisor_max_cpu'] = max(1, int(round(cfg['steady_max_cpu_percent'])))
            wanted['advisor_target_scan_time'] = max(1, int(round(cfg['steady_pass_seconds'])))
            return wanted
        wanted['pages_to_scan'] = self.pages_for(pages, cfg['steady_pass_seconds'], cfg['steady_sleep_millisecs'],
                                                 cfg['steady_max_cpu_percent'], cfg['steady_min_pages_to_scan'])
        return wanted

    # -- the step --------------------------------------------------------------------------

    def step(self):
        """One control step. Returns the state dict (also kept in ``self.state``)."""
        now = self.clock()
        cfg = self.config
        try:
            data = self.ksm.read_all()
        except (_ksm.KsmError, IOError, OSError) as err:
            self.error_once('cannot read KSM: %s' % err)
            return self.state
        knobs, counters = data['knobs'], data['counters']
        if self.snapshot is None:
            self.take_snapshot()
        self.measure_cpu(now, counters)
        procs = self.watcher.scan()
        for note in sorted(getattr(self.watcher, 'notes', ())):
            self.error_once(note)
        tracked = rmap_items(counters)
        process_pages = procs['pages']
        estimate = max(process_pages, tracked) if self.watcher.available else tracked
        saved = data['saved_pages']
        scans = counters.get('full_scans', 0)
        threshold = int(cfg['new_memory_threshold_mib'] * 1024 * 1024 // self.ksm.page_size)
        reason = self.wake_reason
        self.wake_reason = None

        nothing = self.watcher.available and self.watcher.exact and not procs['processes']
        # Growth of mergeable memory: the processes' estimate, or (no ksm_stat before Linux 6.1) ksmd's rmap items.
        basis = process_pages if self.watcher.available else tracked
        grown = basis - self.known_pages
        if nothing:
            self.known_pages = 0
            self.set_phase('idle', 'no process has mergeable memory')
        elif self.phase in (None, 'idle') or grown >= max(threshold, 1):
            if self.phase is None:
                why = 'pagefusiond started with mergeable memory present'
            elif self.phase == 'idle':
                why = 'mergeable memory appeared'
            else:
                why = 'mergeable memory grew by %d MiB' % (grown * self.ksm.page_size // 1048576)
            if procs['new']:
                why += ' (new mergeable processes: %s)' % ', '.join(str(p) for p in sorted(procs['new'])[:10])
            if reason:
                why += ' (%s)' % reason
            if self.phase != 'boost':
                self.boosts += 1
            self.set_phase('boost', why)
            self.boost_scans = scans
            self.known_pages = basis
        else:
            if basis < self.known_pages:
                self.known_pages = basis  # memory went away: measure growth from here
            if self.phase == 'boost' and scans - self.boost_scans >= cfg['boost_min_passes']:
                self.set_phase('settle', '%d full scans done' % (scans - self.boost_scans))
                self.pass_scans, self.pass_saved, self.quiet_passes = scans, saved, 0
            elif self.phase == 'settle' and scans > self.pass_scans:
                growth = saved - self.pass_saved
                quiet = growth < max(1.0, estimate * cfg['settle_threshold_percent'] / 100.0)
                self.quiet_passes = self.quiet_passes + 1 if quiet else 0
                self.debug('settle: a full scan added %d saved pages (quiet passes: %d)' % (growth, self.quiet_passes))
                self.pass_scans, self.pass_saved = scans, saved
                if self.quiet_passes >= cfg['settle_passes']:
                    self.set_phase('steady', 'full scans stopped finding new sharing (%d pages saved)' % saved)
            if self.phase in ('boost', 'settle') and now - self.boost_started > cfg['boost_max_seconds']:
                self.set_phase('steady', 'boost_max_seconds (%gs) reached' % cfg['boost_max_seconds'])

        wanted = self.wanted_knobs(knobs, estimate)
        self.fresh_phase = False
        knobs_after = dict(knobs)
        try:
            changes = _ksm.plan_changes(knobs, wanted, self.ksm.root)
            if changes:
                self.ksm.apply(changes)
                self.debug('wrote %s' % _knob_text(dict((k, v[1]) for k, v in changes.items())))
            knobs_after = _ksm.predict_knobs(knobs, changes)
        except _ksm.KsmError as err:
            self.error_once(str(err))
            try:
                knobs_after = self.ksm.read_knobs()
            except (_ksm.KsmError, IOError, OSError):
                pass
        self.state = self.make_state(data, knobs_after, estimate, procs)
        self.debug('step: phase=%s pages_to_scan=%s sleep_millisecs=%s ksmd_cpu=%s%% cost/page=%s saved=%d full_scans=%d estimate=%d' % (
            self.phase, knobs_after.get('pages_to_scan'), knobs_after.get('sleep_millisecs'), self.state['ksmd_cpu_percent'],
            '%.2gs' % self.cpu_per_page if self.cpu_per_page else '?', saved, scans, estimate))
        return self.state

    def make_state(self, data, knobs, estimate, procs):
        size = self.ksm.page_size
        return {
            'phase': self.phase,
            'since': self.since,
            'updated': self.wall(),
            'started': self.started,
            'pid': os.getpid(),
            'version': __version__,
            'knobs': knobs,
            'counters': data['counters'],
            'page_size': size,
            'saved_pages': data['saved_pages'],
            'saved_bytes': data['saved_bytes'],
            'shared_bytes': data['shared_bytes'],
            'ksmd_cpu_percent': None if self.cpu_percent is None else round(self.cpu_percent, 3),
            'ksmd_cpu_seconds': None if self.last_cpu is None else round(self.last_cpu, 3),
            'mergeable_pages_estimate': estimate,
            'mergeable_bytes_estimate': estimate * size,
            'mergeable_processes': len(procs['processes']),
            'boosts': self.boosts,
            'last_error': self.last_error,
            'config': self.config,
        }

    def stopped_state(self):
        state = dict(self.state or {'config': self.config, 'pid': os.getpid(), 'version': __version__})
        state['phase'] = 'stopped'
        state['since'] = state['updated'] = self.wall()
        try:
            state['knobs'] = self.ksm.read_knobs()
        except (_ksm.KsmError, IOError, OSError):
            pass
        return state


def _knob_text(values):
    return ', '.join('%s=%s' % (k, values[k]) for k in _ksm.write_order(dict((k, (None, v)) for k, v in values.items())))


# --------------------------------------------------------------------------------------------
# Output: state file and Prometheus metrics


def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename."""
    directory = os.path.dirname(path) or '.'
    tmp = os.path.join(directory, '.%s.%d.tmp' % (os.path.basename(path), os.getpid()))
    with open(tmp, 'w') as handle:
        handle.write(text)
        handle.flush()
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def state_json(state):
    return json.dumps(state, sort_keys=True, indent=2) + '\n'


def render_metrics(state):
    """Prometheus text exposition format for the node_exporter textfile collector."""
    lines = []

    def metric(name, kind, help_text, samples):
        lines.append('# HELP %s %s' % (name, help_text))
        lines.append('# TYPE %s %s' % (name, kind))
        for labels, value in samples:
            label_text = '{%s}' % ','.join('%s="%s"' % kv for kv in labels) if labels else ''
            lines.append('%s%s %s' % (name, label_text, _num(value)))

    knobs = state.get('knobs') or {}
    counters = state.get('counters') or {}
    metric('pagefusiond_up', 'gauge', 'pagefusiond is running (0 once it stopped).',
           [((), 0 if state.get('phase') == 'stopped' else 1)])
    metric('pagefusiond_phase', 'gauge', 'The current phase of pagefusiond (1 for the current one).',
           [((('phase', p),), 1 if state.get('phase') == p else 0) for p in PHASES])
    metric('pagefusiond_phase_since_seconds', 'gauge', 'Epoch seconds when the current phase began.', [((), state.get('since') or 0)])
    metric('pagefusiond_saved_bytes', 'gauge', 'Memory KSM saves: (pages_sharing + ksm_zero_pages) x page size.', [((), state.get('saved_bytes', 0))])
    metric('pagefusiond_shared_bytes', 'gauge', 'Memory in KSM pages (pages_shared x page size).', [((), state.get('shared_bytes', 0))])
    metric('pagefusiond_mergeable_bytes', 'gauge', 'Estimated mergeable memory of all processes.', [((), state.get('mergeable_bytes_estimate', 0))])
    metric('pagefusiond_mergeable_processes', 'gauge', 'Processes with mergeable memory.', [((), state.get('mergeable_processes', 0))])
    metric('pagefusiond_ksmd_cpu_percent', 'gauge', 'ksmd CPU use over the last control step, percent of one core.',
           [((), state.get('ksmd_cpu_percent') or 0)])
    metric('pagefusiond_ksmd_cpu_seconds_total', 'counter', 'CPU seconds ksmd has used since boot.', [((), state.get('ksmd_cpu_seconds') or 0)])
    metric('pagefusiond_pages_to_scan', 'gauge', 'KSM pages_to_scan.', [((), knobs.get('pages_to_scan', 0))])
    metric('pagefusiond_sleep_millisecs', 'gauge', 'KSM sleep_millisecs.', [((), knobs.get('sleep_millisecs', 0))])
    metric('pagefusiond_ksm_run', 'gauge', 'KSM run (0 stopped, 1 running, 2 unmerging).', [((), knobs.get('run', 0))])
    metric('pagefusiond_full_scans_total', 'counter', 'KSM full_scans.', [((), counters.get('full_scans', 0))])
    metric('pagefusiond_boosts_total', 'counter', 'Boosts since pagefusiond started.', [((), state.get('boosts', 0))])
    metric('pagefusiond_last_update_seconds', 'gauge', 'Epoch seconds of the last control step.', [((), state.get('updated') or 0)])
    return '\n'.join(lines) + '\n'


def _num(value):
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, int):
        return str(value)
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return '0'


def status_text(state, now=None):
    """A human-readable summary of a state dict."""
    now = time.time() if now is None else now
    knobs = state.get('knobs') or {}

    def mib(value):
        return '%.1f MiB' % ((value or 0) / 1048576.0)

    cpu = state.get('ksmd_cpu_percent')
    age = max(0, now - (state.get('since') or now))
    lines = [
        'pagefusiond %s (pid %s): phase %s for %ds' % (state.get('version'), state.get('pid'), state.get('phase'), age),
        '  saved: %s (%s pages), shared: %s' % (mib(state.get('saved_bytes')), state.get('saved_pages'), mib(state.get('shared_bytes'))),
        '  mergeable (estimate): %s in %s processes' % (mib(state.get('mergeable_bytes_estimate')), state.get('mergeable_processes')),
        '  ksmd: run=%s pages_to_scan=%s sleep_millisecs=%s, CPU %s' % (
            knobs.get('run'), knobs.get('pages_to_scan'), knobs.get('sleep_millisecs'),
            'unknown' if cpu is None else '%.1f%% of one core' % cpu),
        '  updated %.1fs ago' % (now - (state.get('updated') or 0)),
    ]
    if state.get('last_error'):
        lines.append('  last error: %s' % state['last_error'])
    return '\n'.join(lines)


def is_stale(state, now=None):
    """True when the state file is older than three control intervals (plus 5 s)."""
    now = time.time() if now is None else now
    cfg = state.get('config') or {}
    interval = max(cfg.get('interval', DEFAULTS['interval']), cfg.get('boost_interval', DEFAULTS['boost_interval']))
    return state.get('phase') == 'stopped' or now - (state.get('updated') or 0) > 3 * interval + 5


# --------------------------------------------------------------------------------------------
# libvirt lifecycle events (optional)


class LibvirtEvents(object):
    """Wakes the daemon on libvirt domain lifecycle events (started/resumed), reconnecting on loss.

    Uses libvirt-python's default event loop: virEventRegisterDefaultImpl() before the connection
    is opened, one thread running virEventRunDefaultImpl(), domainEventRegisterAny(LIFECYCLE).
    """

    def __init__(self, uri, on_event, log, retry_seconds=10.0):
        self.uri = uri
        self.on_event = on_event
        self.log = log
        self.retry_seconds = retry_seconds
        self.libvirt = None
        self.conn = None
        self.stop_event = threading.Event()
        self.lost = threading.Event()

    def start(self):
        """Start the event threads; False when libvirt-python is not importable."""
        try:
            import libvirt  # pylint: disable=import-outside-toplevel
        except ImportError:
            self.log('libvirt-python not importable: watching processes and KSM counters only')
            return False
        self.libvirt = libvirt
        try:
            libvirt.registerErrorHandler(lambda ctx, err: None, None)
            libvirt.virEventRegisterDefaultImpl()
        except libvirt.libvirtError as err:
            self.log('libvirt event loop unavailable (%s): watching processes only' % err)
            return False
        threading.Thread(target=self._run_loop, name='libvirt-events', daemon=True).start()
        threading.Thread(target=self._connect_loop, name='libvirt-connect', daemon=True).start()
        return True

    def _run_loop(self):
        while not self.stop_event.is_set():
            try:
                self.libvirt.virEventRunDefaultImpl()
            except Exception:  # pylint: disable=broad-except
                time.sleep(1.0)

    def _lifecycle(self, conn, dom, event, detail, opaque):
        lv = self.libvirt
        if event in (lv.VIR_DOMAIN_EVENT_STARTED, lv.VIR_DOMAIN_EVENT_RESUMED):
            try:
                name = dom.name()
            except lv.libvirtError:
                name = '?'
            self.on_event('libvirt domain %s %s' % (name, 'started' if event == lv.VIR_DOMAIN_EVENT_STARTED else 'resumed'))

    def _closed(self, conn, reason, opaque):
        self.lost.set()

    def _connect_loop(self):
        lv = self.libvirt
        announced = False
        while not self.stop_event.is_set():
            try:
                conn = lv.openReadOnly(self.uri)
                conn.registerCloseCallback(self._closed, None)
                conn.domainEventRegisterAny(None, lv.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle, None)
                try:
                    conn.setKeepAlive(5, 3)
                except lv.libvirtError:
                    pass
                self.conn = conn
                self.lost.clear()
                self.log('listening to libvirt lifecycle events on %s' % self.uri)
                announced = False
                while not self.stop_event.is_set() and not self.lost.wait(self.retry_seconds):
                    if not conn.isAlive():
                        break
                self.log('libvirt connection %s lost; reconnecting' % self.uri)
                self.conn = None
            except lv.libvirtError as err:
                if not announced:
                    self.log('cannot connect to libvirt %s (%s): retrying every %gs, watching processes meanwhile'
                             % (self.uri, str(err).strip(), self.retry_seconds))
                    announced = True
            self.stop_event.wait(self.retry_seconds)

    def stop(self):
        self.stop_event.set()


# --------------------------------------------------------------------------------------------
# The daemon process


def stderr_log(message):
    sys.stderr.write('pagefusiond: %s\n' % message)
    sys.stderr.flush()


class Daemon(object):
    """The long-running process: signals, the control loop, output files, restore on stop."""

    def __init__(self, config_path, config, ksm=None, log=stderr_log, clock=time.monotonic, wall=time.time, waiter=None):
        self.config_path = config_path
        self.config = config
        self.log = log
        self.ksm = ksm or _ksm.KsmSysfs()
        self.controller = Controller(config, self.ksm, clock=clock, wall=wall, log=log,
                                     snapshot_path=os.path.join(os.path.dirname(config['state_path']), 'snapshot.json'))
        self.wake_event = waiter or threading.Event()
        self.stopping = False
        self.reload_wanted = False
        self.output_errors = set()
        self.events = None

    # signals only set flags; the loop acts on them
    def on_term(self, signum, frame):
        self.stopping = True
        self.wake_event.set()

    def on_hup(self, signum, frame):
        self.reload_wanted = True
        self.wake_event.set()

    def on_event(self, reason):
        self.controller.wake(reason)
        self.wake_event.set()

    def reload(self):
        """Re-read the config file; a bad new config is logged and the old one kept."""
        self.reload_wanted = False
        try:
            new = load_config(self.config_path)
        except ConfigError as err:
            self.log('reload refused, keeping the running config: %s' % err)
            return False
        changed = sorted(k for k in new if new[k] != self.config.get(k))
        self.config = new
        self.controller.config = new
        self.log('config reloaded from %s (%s)' % (self.config_path, ', '.join(changed) if changed else 'no changes'))
        return True

    def output_error(self, message):
        if message not in self.output_errors:
            self.output_errors.add(message)
            self.log('error: %s (logged once)' % message)

    def write_outputs(self, state):
        if state is None:
            return
        path = self.config['state_path']
        try:
            ensure_dir(os.path.dirname(path))
            write_atomic(path, state_json(state))
        except (IOError, OSError) as err:
            self.output_error('cannot write the state file %s: %s' % (path, err))
        metrics = self.config['metrics_path']
        if metrics:
            if not os.path.isdir(os.path.dirname(metrics)):
                self.output_error('metrics directory %s does not exist: no metrics written' % os.path.dirname(metrics))
                return
            try:
                write_atomic(metrics, render_metrics(state))
            except (IOError, OSError) as err:
                self.output_error('cannot write the metrics file %s: %s' % (metrics, err))

    def interval(self):
        if self.controller.phase in ('boost', 'settle'):
            return self.config['boost_interval']
        return self.config['interval']

    def pause(self):
        """Wait for the next step: the interval, cut short by a wake-up (signal, libvirt event) or, in the idle and
        steady phases, by new mergeable memory the watcher spots every ``watch_interval`` seconds."""
        interval = self.interval()
        watch = self.config.get('watch_interval') or 0
        if not watch or self.controller.phase not in ('idle', 'steady'):
            self.wake_event.wait(interval)
            self.wake_event.clear()
            return
        waited = 0.0
        while waited < interval and not self.stopping:
            slice_seconds = min(watch, interval - waited)
            if self.wake_event.wait(slice_seconds):
                break
            waited += slice_seconds
            reason = self.controller.spot()
            if reason:
                self.controller.wake(reason)
                break
        self.wake_event.clear()

    def run_step(self):
        state = self.controller.step()
        self.write_outputs(state)
        return state

    def shutdown(self):
        if self.config['restore_on_exit']:
            self.controller.restore()
        else:
            self.controller.forget_snapshot()
        self.write_outputs(self.controller.stopped_state())
        if self.events:
            self.events.stop()
        self.log('stopped')

    def run(self, install_signals=True):
        if install_signals:
            signal.signal(signal.SIGTERM, self.on_term)
            signal.signal(signal.SIGINT, self.on_term)
            signal.signal(signal.SIGHUP, self.on_hup)
        self.log('pagefusiond %s starting (config %s%s)' % (
            __version__, self.config_path, '' if os.path.exists(self.config_path) else ', not present: built-in defaults'))
        if self.config['libvirt_uri']:
            self.events = LibvirtEvents(self.config['libvirt_uri'], self.on_event, self.log)
            self.events.start()
        try:
            while not self.stopping:
                if self.reload_wanted:
                    self.reload()
                self.run_step()
                if self.stopping:
                    break
                self.pause()
        finally:
            self.shutdown()
        return EXIT_OK


def ensure_dir(path):
    if path and not os.path.isdir(path):
        os.makedirs(path, 0o755)


def main(argv=None, ksm=None):
    """The command line of pagefusiond. Returns the exit code."""
    import argparse  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(prog='pagefusiond', description='pagefusiond: drives Linux KSM so that most of the page-sharing savings '
                                     'arrive within seconds, at a small CPU cost afterwards (pagefusion.core).')
    parser.add_argument('--config', default=DEFAULT_CONFIG_PATH, help='config file (INI, section [pagefusiond]); default %(default)s')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--once', action='store_true', help='run one control step, print the state as JSON and exit')
    group.add_argument('--status', action='store_true', help='print the state file of the running daemon; exit 1 when absent or stale')
    group.add_argument('--check-config', action='store_true', help='validate the config file and exit (0 valid, 2 invalid)')
    group.add_argument('--print-defaults', action='store_true', help='print the built-in defaults as a config file')
    parser.add_argument('--version', action='version', version='pagefusiond %s' % __version__)
    args = parser.parse_args(argv)

    if args.print_defaults:
        sys.stdout.write(render_config(DEFAULTS))
        return EXIT_OK
    try:
        config = load_config(args.config, required=args.check_config and args.config != DEFAULT_CONFIG_PATH)
    except ConfigError as err:
        stderr_log('bad configuration: %s' % err)
        return EXIT_CONFIG
    if args.check_config:
        sys.stdout.write('%s: valid\n' % args.config if os.path.exists(args.config) else '%s: absent, built-in defaults\n' % args.config)
        return EXIT_OK
    if args.status:
        try:
            with open(config['state_path'], 'r') as handle:
                state = json.load(handle)
        except (IOError, OSError, ValueError) as err:
            sys.stdout.write('pagefusiond is not running (no state in %s: %s)\n' % (config['state_path'], getattr(err, 'strerror', None) or err))
            return EXIT_ERROR
        sys.stdout.write(status_text(state) + '\n')
        if is_stale(state):
            sys.stdout.write('  STALE or stopped: the daemon is not updating %s\n' % config['state_path'])
            return EXIT_ERROR
        return EXIT_OK

    ksm = ksm or _ksm.KsmSysfs()
    if not ksm.present():
        stderr_log('KSM is not available: %s does not exist (this kernel has no CONFIG_KSM); nothing to do' % ksm.root)
        return EXIT_NO_KSM
    daemon = Daemon(args.config, config, ksm=ksm)
    if args.once:
        # One step, printed only: the files and the snapshot belong to a daemon that may be running.
        daemon.controller.snapshot_path = None
        sys.stdout.write(state_json(daemon.controller.step()))
        return EXIT_OK
    return daemon.run()
