#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Run pagefusiond against the real kernel's KSM with synthetic guests and measure it (root only).

KSM is global to the machine: this takes the KSM lock (pagefusion_dev.ksm_lock; unless a parent process
holds it already) for the whole run, saves the KSM knobs first and always restores them at the end
(pagefusion_dev.ksm_reset: ``run=2`` to unmerge, ``run=0``, then the saved values).

1. starts N synthetic guests of G MiB (pagefusion_dev.synthetic_guests, BENCHMARKS.md's content model);
2. starts the checkout's ``daemon/pagefusiond --config <temp>`` (pagefusion_dev.daemon_run: defaults except
   the file paths, plus ``--set``);
3. samples every 50 ms: T50/T90/T99 (seconds until saved >= that share of the achievable saving,
   saved = pages_sharing + ksm_zero_pages, interpolated between samples as the benchmark does) and
   ksmd's CPU seconds at each, and the time until the daemon reports ``steady``;
4. measures ksmd's and the daemon's own CPU percent over ``--steady-seconds`` of steady state;
5. stops the daemon (SIGTERM: it must exit 0 and put the knobs back) and the guests.

Prints one JSON object. ``--assert-t90 S`` exits 1 unless T90 <= S; ``--assert-restore`` exits 1
unless the daemon restored the knobs it found. Needs .venv's Python (./dev setup installs pagefusion_dev there).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

from pagefusion_dev import ksm_lock, ksm_reset, synthetic_guests
from pagefusion_dev.convergence import Trace, crossing
from pagefusion_dev.daemon_run import DaemonRun

RESET = {'run': 0, 'pages_to_scan': 100, 'sleep_millisecs': 20}
MARKS = (('T50', 0.5), ('T90', 0.9), ('T99', 0.99))


def mark(seconds, cpu):
    return {'seconds': round(seconds, 2), 'ksmd_cpu_seconds': round(cpu, 2)}


def converge(args, kern, guests, daemon):
    """Sample until T99 and the steady phase are both reached (or the timeout, or the daemon exits)."""
    trace = Trace(kern, guests.achievable)
    daemon.start()
    steady_at = None
    reached = False
    while trace.elapsed() < args.timeout:
        row = trace.sample()
        reached = reached or row[2] >= MARKS[-1][1]
        if steady_at is None and daemon.phase() == 'steady':
            steady_at = mark(row[0], row[3])
        if (steady_at is not None and reached) or not daemon.running():
            break
        time.sleep(0.05)
    result = {'steady': steady_at}
    for key, share in MARKS:
        hit = crossing(trace.samples, share)
        if hit is not None:
            result[key] = mark(*hit)
    return result


def steady_window(kern, daemon, seconds, achievable):
    """ksmd's and the daemon's CPU percent, the saved fraction and the scan knobs over ``seconds`` of steady state."""
    c0, d0, s0 = kern.cpu(), daemon.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - s0
    saved, dummy, knobs, dummy = kern.read()
    return {
        'seconds': round(elapsed, 1),
        'ksmd_cpu_percent': round(100 * (kern.cpu() - c0) / elapsed, 3),
        'daemon_cpu_percent': round(100 * (daemon.cpu_seconds() - d0) / elapsed, 3),
        'saved_fraction': round(saved / float(achievable), 4),
        'knobs': dict((k, v) for k, v in knobs.items() if k in ('run', 'pages_to_scan', 'sleep_millisecs')),
    }


def measure(args, kern):
    result = {'guests': args.guests, 'mib': args.mib}
    settings = [item.split('=', 1) for item in args.set]
    before = kern.snapshot()
    with synthetic_guests.Guests(args.guests, args.mib, churn=args.churn) as guests, \
            DaemonRun(settings, prefix='pagefusiond-realrun-') as daemon:
        result.update(converge(args, kern, guests, daemon))
        saved, use_zero_pages, dummy, dummy = kern.read()
        result['achievable_pages'] = achievable = guests.achievable(use_zero_pages)
        result['saved_pages_at_steady'] = saved
        if daemon.running() and args.steady_seconds > 0:
            result['steady_window'] = steady_window(kern, daemon, args.steady_seconds, achievable)
        result['daemon_exit'] = daemon.stop()
        after = kern.snapshot()
        result['restored'] = dict((k, after[k]) for k in after if after[k] != before.get(k)) or True
        result['daemon_log'] = daemon.log_lines()[-args.log_lines:]
        result['metrics_lines'] = daemon.metrics_lines()
    return result


def _interrupt(signum, frame):
    raise KeyboardInterrupt('signal %d' % signum)


def parse_args(argv):
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
    parser.add_argument('--no-lock', action='store_true', help='the caller already holds %s' % ksm_lock.LOCK_PATH)
    return parser.parse_args(argv)


def failures(args, result):
    failed = []
    if args.assert_t90 is not None and (result.get('T90') is None or result['T90']['seconds'] > args.assert_t90):
        failed.append('T90 not reached within %ss' % args.assert_t90)
    if args.assert_restore and result.get('restored') is not True:
        failed.append('the daemon did not restore the KSM knobs: %s' % result.get('restored'))
    if result.get('daemon_exit') != 0:
        failed.append('the daemon exited with %s' % result.get('daemon_exit'))
    return failed


def main(argv=None):
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.stderr.write('pagefusiond_realrun: run as root (it drives the real KSM)\n')
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # a test runner's timeout unwinds like Ctrl-C: guests, daemon and KSM get cleaned up
    with ksm_reset.held(lock=not args.no_lock) as kern:
        kern.restore(dict(kern.snapshot(), **RESET))
        result = measure(args, kern)
    print(json.dumps(result, indent=2, sort_keys=True))
    failed = failures(args, result)
    for message in failed:
        sys.stderr.write('pagefusiond_realrun: FAILED: %s\n' % message)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
