# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The long-running pagefusiond: signals, the control loop, reload, output files, restore on stop."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from . import EXIT_OK, __version__
from .collection import _ksm
from .config import ConfigError, load_config
from .controller import Controller
from .events import LibvirtEvents
from .outputs import ensure_dir, render_metrics, state_json, write_atomic
from .procevents import ProcConnector


# Keys a running daemon cannot switch: the snapshot lives next to the state file, the event thread holds its URI.
RESTART_KEYS = ('state_path', 'libvirt_uri')

# Seconds without a new pid or moved anonymous memory after which the cheap looks slow to still_watch_interval.
# Each look is a wake-up of the process, which costs more than the two reads it makes (about 0.15 ms of CPU here),
# so a host at rest is looked at about once a second and a host where processes start or grow four times a second.
STILL_AFTER = 10.0


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
        self.clock = clock
        self.last_motion = None  # when a look last saw the counters move, or the phase last changed
        self.paused_phase = None
        self.controller = Controller(config, self.ksm, clock=clock, wall=wall, log=log,
                                     snapshot_path=os.path.join(os.path.dirname(config['state_path']), 'snapshot.json'))
        self.wake_event = waiter or threading.Event()
        self.stopping = False
        self.reload_wanted = False
        self.output_errors = set()
        self.events = None
        self.connector = None
        self.nudged = False
        self.watching = False

    # signals only set flags; the loop acts on them
    def on_term(self, signum, frame):
        self.stopping = True
        self.wake_event.set()

    def on_hup(self, signum, frame):
        self.reload_wanted = True
        self.wake_event.set()

    def on_new_process(self):
        """The process connector saw a process start (called from its thread): a cheap look now."""
        self.nudged = True
        self.wake_event.set()

    def on_event(self, reason):
        """A libvirt event (called from the event thread): look at the processes now."""
        self.log('woken: %s' % reason)
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
        for key in (k for k in changed if k in RESTART_KEYS):
            self.log('reload: %s changed from %r to %r, which takes effect when pagefusiond restarts' % (
                key, self.config[key], new[key]))
            new[key] = self.config[key]
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
        """Seconds to the next step: ``boost_interval`` while boosting or settling; in the idle and steady phases
        ``quiet_interval`` while no write breaks sharing, else ``interval``."""
        if self.controller.phase in ('boost', 'settle'):
            return self.config['boost_interval']
        if self.controller.sharing.quiet():
            return max(self.config['interval'], self.config['quiet_interval'])
        return self.config['interval']

    def still_interval(self):
        """Seconds between cheap looks on a host at rest: ``still_watch_interval``, never below ``watch_interval``;
        polling (no kernel counters) counts every look as movement, so it keeps ``watch_interval``."""
        watch = self.config['watch_interval']
        if getattr(self.controller.watcher, 'counters', None) is None:
            return watch
        return max(watch, self.config.get('still_watch_interval') or 0)

    def watch_slice(self, now):
        """Seconds to the next cheap look: ``watch_interval`` while processes start or memory moves, and
        :meth:`still_interval` once the kernel's counters have been still for ``STILL_AFTER`` seconds."""
        if self.last_motion is None or now - self.last_motion < STILL_AFTER:
            return self.config['watch_interval']
        return self.still_interval()

    def pause(self):
        """Wait for the next step: the interval, cut short by a wake-up (signal, libvirt event) or, in the idle and
        steady phases, by new mergeable memory the watcher spots every ``watch_interval`` seconds (every
        ``still_watch_interval`` on a host at rest), and (on a quiet host) by writes starting to break sharing, looked
        at every ``interval`` seconds."""
        interval = self.interval()
        watch = self.config.get('watch_interval') or 0
        phase = self.controller.phase
        if phase != self.paused_phase or phase not in ('idle', 'steady'):
            self.last_motion = self.clock()  # a boost or settle just ended: processes may still be growing
        self.paused_phase = phase
        if not watch or self.controller.phase not in ('idle', 'steady'):
            self.wake_event.wait(interval)
            self.wake_event.clear()
            return
        busy_interval = self.config['interval']
        next_break_look = busy_interval if interval > busy_interval else None
        waited = 0.0
        while waited < interval and not self.stopping:
            started = self.clock()
            slice_seconds = min(self.watch_slice(started), interval - waited)
            if self.wake_event.wait(slice_seconds):
                if not self.nudged or self.stopping or self.reload_wanted or self.controller.wake_reason:
                    break  # a signal or a libvirt event: the step now
                self.wake_event.clear()  # a process started (process connector): a look now, then wait on
                waited += min(slice_seconds, max(0.0, self.clock() - started))
            else:
                waited += slice_seconds
            self.nudged = False
            reason = self.controller.spot()
            if getattr(self.controller.watcher, 'moved', True):
                self.last_motion = self.clock()
            if reason:
                self.controller.wake(reason)
                break
            if next_break_look is not None and waited >= next_break_look:
                if self.controller.sharing.broken_since_step():
                    break  # a step now (no wake reason: the rate follows the breaks, no sweep of /proc is needed)
                next_break_look += busy_interval
        self.wake_event.clear()

    def start_watching(self):
        """Start libvirt events and log what wakes the daemon. Called after the first step: a daemon started with
        guests running boosts at once, without waiting for libvirt-python's import and connection."""
        self.watching = True
        sources = []
        uri = self.config['libvirt_uri']
        if uri:
            self.events = LibvirtEvents(uri, self.on_event, self.log)
            if self.events.start():
                sources.append('libvirt lifecycle events (%s)' % uri)
            else:
                self.events = None
        watch = self.config['watch_interval']
        if watch and self.config.get('process_connector'):
            self.connector = ProcConnector(self.on_new_process, self.log, gap=watch)
            if self.connector.start():
                sources.append(self.connector.name)
            else:
                self.log('%s unavailable: %s' % (self.connector.name, self.connector.error))
                self.connector = None
        if watch:
            still = self.still_interval()
            sources.append('%s every %gs (every %gs after %gs at rest)' % (
                self.controller.watcher.signal_name(), watch, still, STILL_AFTER) if still > watch else
                '%s every %gs' % (self.controller.watcher.signal_name(), watch))
        sources.append('every process every %gs in the idle and steady phases' % self.config['sweep_interval'])
        self.controller.watch_sources = sources
        self.log('watching for new mergeable memory: %s' % '; '.join(sources))
        if self.controller.state is not None:  # the state file says it now, not only from the next step on
            self.controller.state['watch_sources'] = list(sources)
            self.write_outputs(self.controller.state)

    def run_step(self):
        state = self.controller.step()
        self.write_outputs(state)
        return state

    def shutdown(self):
        if self.config['restore_on_exit']:
            self.controller.snapshot.restore()
        else:
            self.controller.snapshot.forget()
        self.write_outputs(self.controller.stopped_state())
        if self.events:
            self.events.stop()
        if self.connector:
            self.connector.close()
        self.log('stopped')

    def run(self, install_signals=True):
        if install_signals:
            signal.signal(signal.SIGTERM, self.on_term)
            signal.signal(signal.SIGINT, self.on_term)
            signal.signal(signal.SIGHUP, self.on_hup)
        self.log('pagefusiond %s starting (config %s%s)' % (
            __version__, self.config_path, '' if os.path.exists(self.config_path) else ', not present: built-in defaults'))
        try:
            while not self.stopping:
                if self.reload_wanted:
                    self.reload()
                self.run_step()
                if not self.watching:
                    self.start_watching()
                if self.stopping:
                    break
                self.pause()
        finally:
            self.shutdown()
        return EXIT_OK
