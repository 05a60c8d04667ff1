#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Run pagefusiond against the real kernel's KSM with synthetic guests and measure it (root only).

KSM is global to the machine: this takes ``/tmp/pagefusion-ksm.lock`` (flock; unless a parent process
holds it already, see ksm_lock.py) for the whole run,
saves the KSM knobs first and always restores them at the end (``run=2`` to unmerge, ``run=0``,
then the saved values).

1. starts N synthetic guests of G MiB (synthetic_guests.py, BENCHMARKS.md's content model);
2. starts ``daemon/pagefusiond --config <temp>`` (defaults except the file paths, plus ``--set``);
3. samples every 50 ms: T50/T90/T99 (seconds until saved >= that share of the achievable saving,
   saved = pages_sharing + ksm_zero_pages) and ksmd's CPU seconds at each, and the time until the
   daemon reports ``steady``;
4. measures ksmd's and the daemon's own CPU percent over ``--steady-seconds`` of steady state;
5. stops the daemon (SIGTERM: it must exit 0 and put the knobs back) and the guests.

Prints one JSON object. ``--assert-t90 S`` exits 1 unless T90 <= S; ``--assert-restore`` exits 1
unless the daemon restored the knobs it found.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, 'plugins', 'module_utils'))

import ksm_lock  # noqa: E402  pylint: disable=wrong-import-position,import-error
import synthetic_guests  # noqa: E402  pylint: disable=wrong-import-position,import-error
import _ksm  # noqa: E402  pylint: disable=wrong-import-position,import-error

LOCK_PATH = '/tmp/pagefusion-ksm.lock'
RESET = {'run': 0, 'pages_to_scan': 100, 'sleep_millisecs': 20}


def proc_cpu_seconds(pid):
    try:
        with open('/proc/%d/stat' % pid) as handle:
            fields = handle.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / float(os.sysconf('SC_CLK_TCK'))
    except (IOError, OSError, ValueError, IndexError):
        return None


def reset_ksm(ksm, snapshot):
    """Unmerge everything, stop ksmd, put the saved knobs back."""
    ksm.write('run', 2)
    deadline = time.monotonic() + 120
    while ksm.read('pages_shared') and time.monotonic() < deadline:
        time.sleep(0.1)
    ksm.write('run', 0)
    wanted = dict(snapshot)
    if wanted.get('run') == 2:
        wanted['run'] = 0
    ksm.restore_knobs(wanted)


def measure(args, ksm):
    daemon_path = os.path.join(REPO, 'daemon', 'pagefusiond')
    result = {'guests': args.guests, 'mib': args.mib}
    with tempfile.TemporaryDirectory(prefix='pagefusiond-realrun-') as tmp:
        conf = os.path.join(tmp, 'pagefusiond.conf')
        lines = ['[pagefusiond]', 'state_path = %s/state.json' % tmp, 'metrics_path = %s/pagefusiond.prom' % tmp]
        lines += [item.replace('=', ' = ', 1) for item in args.set]
        with open(conf, 'w') as handle:
            handle.write('\n'.join(lines) + '\n')
        before = ksm.snapshot_knobs()
        with synthetic_guests.Guests(args.guests, args.mib, churn=args.churn) as guests:
            log = open(os.path.join(tmp, 'daemon.log'), 'w+')
            cpu0 = ksm.ksmd_cpu_seconds()
            t0 = time.monotonic()
            daemon = subprocess.Popen([sys.executable, daemon_path, '--config', conf], stderr=log)
            try:
                marks = {}
                steady_at = None
                state_path = os.path.join(tmp, 'state.json')
                achievable = None
                while time.monotonic() - t0 < args.timeout:
                    now = time.monotonic() - t0
                    data = ksm.read_all()
                    uzp = bool(data['knobs'].get('use_zero_pages'))
                    achievable = guests.achievable(uzp)
                    for share in (0.5, 0.9, 0.99):
                        key = 'T%d' % int(share * 100)
                        if key not in marks and data['saved_pages'] >= share * achievable:
                            marks[key] = {'seconds': round(now, 2), 'ksmd_cpu_seconds': round(ksm.ksmd_cpu_seconds() - cpu0, 2)}
                    if steady_at is None:
                        try:
                            with open(state_path) as handle:
                                if json.load(handle).get('phase') == 'steady':
                                    steady_at = {'seconds': round(now, 2), 'ksmd_cpu_seconds': round(ksm.ksmd_cpu_seconds() - cpu0, 2)}
                        except (IOError, OSError, ValueError):
                            pass
                    if steady_at is not None and 'T99' in marks:
                        break
                    if daemon.poll() is not None:
                        break
                    time.sleep(0.05)
                result.update(marks)
                result['steady'] = steady_at
                result['achievable_pages'] = achievable
                result['saved_pages_at_steady'] = ksm.read_all()['saved_pages']
                # steady state
                if daemon.poll() is None and args.steady_seconds > 0:
                    c0, d0, s0 = ksm.ksmd_cpu_seconds(), proc_cpu_seconds(daemon.pid), time.monotonic()
                    time.sleep(args.steady_seconds)
                    elapsed = time.monotonic() - s0
                    result['steady_window'] = {
                        'seconds': round(elapsed, 1),
                        'ksmd_cpu_percent': round(100 * (ksm.ksmd_cpu_seconds() - c0) / elapsed, 3),
                        'daemon_cpu_percent': round(100 * (proc_cpu_seconds(daemon.pid) - d0) / elapsed, 3),
                        'saved_fraction': round(ksm.read_all()['saved_pages'] / float(achievable), 4),
                        'knobs': dict((k, v) for k, v in ksm.read_knobs().items() if k in ('run', 'pages_to_scan', 'sleep_millisecs')),
                    }
                running = daemon.poll() is None
                if running:
                    daemon.send_signal(signal.SIGTERM)
                try:
                    result['daemon_exit'] = daemon.wait(30)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    result['daemon_exit'] = 'killed'
                after = ksm.snapshot_knobs()
                result['restored'] = dict((k, after[k]) for k in after if after[k] != before.get(k)) or True
                log.seek(0)
                result['daemon_log'] = log.read().splitlines()[-args.log_lines:]
                try:
                    with open(os.path.join(tmp, 'pagefusiond.prom')) as handle:
                        result['metrics_lines'] = len(handle.read().splitlines())
                except (IOError, OSError):
                    result['metrics_lines'] = 0

            finally:
                if daemon.poll() is None:  # interrupted: the daemon must not outlive us (SIGTERM restores its knobs)
                    daemon.send_signal(signal.SIGTERM)
                    try:
                        daemon.wait(30)
                    except subprocess.TimeoutExpired:
                        daemon.kill()
                log.close()
    return result


def _interrupt(signum, frame):
    raise KeyboardInterrupt('signal %d' % signum)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--guests', type=int, default=4)
    parser.add_argument('--mib', type=int, default=256)
    parser.add_argument('--churn', type=float, default=0.0)
    parser.add_argument('--timeout', type=float, default=60.0, help='seconds to wait for T99 and steady')
    parser.add_argument('--steady-seconds', type=float, default=60.0)
    parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', help='extra daemon config')
    parser.add_argument('--assert-t90', type=float, default=None)
    parser.add_argument('--assert-restore', action='store_true')
    parser.add_argument('--log-lines', type=int, default=12, help='daemon log lines to include in the report')
    parser.add_argument('--no-lock', action='store_true', help='the caller already holds %s' % LOCK_PATH)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.stderr.write('pagefusiond_realrun: run as root (it drives the real KSM)\n')
        return 2
    ksm = _ksm.KsmSysfs()
    ksm.require()
    signal.signal(signal.SIGTERM, _interrupt)  # a test runner's timeout unwinds like Ctrl-C: guests, daemon and KSM get cleaned up
    lock = None if args.no_lock else ksm_lock.acquire(LOCK_PATH)
    snapshot = ksm.snapshot_knobs()
    try:
        reset_ksm(ksm, dict(snapshot, **RESET))
        result = measure(args, ksm)
    finally:
        reset_ksm(ksm, snapshot)
        if lock:
            lock.close()
    print(json.dumps(result, indent=2, sort_keys=True))
    failed = []
    if args.assert_t90 is not None and (result.get('T90') is None or result['T90']['seconds'] > args.assert_t90):
        failed.append('T90 not reached within %ss' % args.assert_t90)
    if args.assert_restore and result.get('restored') is not True:
        failed.append('the daemon did not restore the KSM knobs: %s' % result.get('restored'))
    if result.get('daemon_exit') != 0:
        failed.append('the daemon exited with %s' % result.get('daemon_exit'))
    for message in failed:
        sys.stderr.write('pagefusiond_realrun: FAILED: %s\n' % message)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
