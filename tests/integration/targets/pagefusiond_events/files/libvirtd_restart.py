# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""pagefusiond keeps hearing libvirt events across a restart of the real libvirtd.

Starts pagefusiond from the checkout with libvirt events on and its own looks for processes off
(``watch_interval = 0``, a long ``interval``), so that only the event path can wake it quickly. Then
restarts the machine's libvirtd (SIGTERM, then tests/setup/start-libvirt.sh), waits for the daemon to
reconnect, starts a real TCG test guest (pf-testguest), waits for the daemon's ``woken: libvirt
domain NAME started`` line and then for its state file to list the guest (the event made it look).
Prints the figures as JSON; exit 1 when a step did not happen in time.

Holds the KSM lock (or re-enters a parent's) with the KSM knobs saved and put back: the daemon drives the
real KSM, and the libvirtd restart disturbs other libvirt tests only while they wait for that lock.
Runs with the Python that has libvirt-python and the dev-only package pagefusion_dev (.venv's under ./dev).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from pagefusion_dev import ksm_reset
from pagefusion_dev.daemon_run import DaemonRun

GUEST = 'pf-events-guest'
LIBVIRTD_PIDFILE = '/run/libvirtd.pid'
SETTINGS = [('libvirt_uri', 'qemu:///system'), ('watch_interval', '0'), ('interval', '60'), ('log_level', 'info')]


class StepFailed(Exception):
    """A step did not happen in time (the message says which)."""


def tool(name, setup_dir):
    """A test tool from tests/setup: on PATH (./dev puts it there) or in ``setup_dir``."""
    found = shutil.which(name) or os.path.join(setup_dir, name)
    if not os.access(found, os.X_OK):
        raise StepFailed('%s not found on PATH nor in %s' % (name, setup_dir))
    return found


def wait_for_line(run, text, after, timeout):
    """Seconds until a daemon log line after line number ``after`` contains ``text``; StepFailed on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if any(text in line for line in run.log_lines()[after:]):
            return round(time.monotonic() - started, 2)
        if not run.running():
            raise StepFailed('pagefusiond exited (%s) while waiting for %r' % (run.proc.returncode, text))
        time.sleep(0.1)
    raise StepFailed('no daemon log line with %r within %g s' % (text, timeout))


def wait_for_state(run, predicate, timeout):
    """Seconds until the daemon's state file satisfies ``predicate``; StepFailed on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate(run.state() or {}):
            return round(time.monotonic() - started, 2)
        if not run.running():
            raise StepFailed('pagefusiond exited (%s) while waiting for its state' % run.proc.returncode)
        time.sleep(0.1)
    raise StepFailed('the state file did not show the expected change within %g s: %s' % (timeout, run.state()))


def guest_listed(state):
    """Whether the daemon's state lists the test guest among the VMs with mergeable memory."""
    return any(vm.get('vm') == GUEST for vm in state.get('vms') or [])


def restart_libvirtd(start_libvirt, timeout=30.0):
    """SIGTERM the running libvirtd, wait until it is gone, start it again; seconds it was away."""
    with open(LIBVIRTD_PIDFILE) as handle:
        pid = int(handle.read().strip())
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    while os.path.exists('/proc/%d' % pid):
        if time.monotonic() - started > timeout:
            raise StepFailed('libvirtd (pid %d) did not exit within %g s of SIGTERM' % (pid, timeout))
        time.sleep(0.05)
    subprocess.run([start_libvirt], check=True, stdout=subprocess.DEVNULL)
    return round(time.monotonic() - started, 2)


def measure(args, run):
    """The steps; returns the figures."""
    figures = {}
    figures['first_connect_seconds'] = wait_for_line(run, 'listening to libvirt lifecycle events', 0, 30)
    figures['watch_sources'] = (run.state() or {}).get('watch_sources')
    mark = len(run.log_lines())
    figures['libvirtd_away_seconds'] = restart_libvirtd(tool('start-libvirt.sh', args.setup_dir))
    figures['lost_seconds'] = wait_for_line(run, 'connection qemu:///system lost', mark, 30)
    figures['reconnect_seconds'] = wait_for_line(run, 'listening to libvirt lifecycle events', mark, 30)
    mark = len(run.log_lines())
    guest_started = time.monotonic()
    subprocess.run([tool('pf-testguest', args.setup_dir), 'define', GUEST, '--memory-mib', '160', '--fill-mib', '32', '--start'],
                   check=True, stdout=subprocess.DEVNULL)
    figures['guest_start_seconds'] = round(time.monotonic() - guest_started, 2)
    figures['event_seconds'] = wait_for_line(run, 'woken: libvirt domain %s started' % GUEST, mark, 15)
    # noticed: the wake-up made the daemon look at the processes, and its state lists the guest's QEMU process
    # (with interval = 60 and the cheap looks off, nothing but the event can make that happen this soon)
    figures['noticed_seconds'] = round(figures['event_seconds'] + wait_for_state(run, guest_listed, 15), 2)
    figures['log_after_restart'] = run.log_lines()[mark:][:10]
    figures['daemon_running'] = run.running()
    return figures


def run_test(args):
    """The daemon around :func:`measure`, the guest removed whatever happens."""
    testguest = tool('pf-testguest', args.setup_dir)
    subprocess.run([testguest, 'cleanup', '--prefix', GUEST], check=True)
    with DaemonRun(SETTINGS, metrics=False, prefix='pagefusiond-events-') as run:
        try:
            figures = measure(args, run.start())
            figures['daemon_exit'] = run.stop()
            return figures
        except StepFailed as err:
            sys.stderr.write('libvirtd_restart: FAILED: %s\ndaemon log:\n  %s\n' % (err, '\n  '.join(run.log_lines())))
            return None
        finally:
            subprocess.run([testguest, 'cleanup', '--prefix', GUEST], check=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--setup-dir', required=True, help='tests/setup (pf-testguest, start-libvirt.sh) when not on PATH')
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.stderr.write('libvirtd_restart: run as root (it restarts libvirtd and drives the real KSM)\n')
        return 2
    with ksm_reset.held():
        figures = run_test(args)
    if figures is None:
        return 1
    print(json.dumps(figures, indent=2, sort_keys=True))
    return 0


if __name__ == '__main__':
    sys.exit(main())
