# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""pagefusiond hears a plain process start through the kernel process connector (netlink), with no libvirt.

Starts pagefusiond from the checkout with one synthetic guest (a process with 64 MiB of mergeable memory),
libvirt events off and its timed looks slowed to one an hour once the host is at rest
(``still_watch_interval = 3600``, ``interval`` and ``quiet_interval`` 300). After 12 s at rest a second
synthetic guest starts: only the connector's wake-up can make the daemon look, and boost, within seconds.
Prints the figures as JSON; exit 1 when a step did not happen in time.

Holds the KSM lock (or re-enters a parent's) with the KSM knobs saved and put back.
Runs with the Python that has the dev-only package pagefusion_dev (.venv's under ./dev), as root.
"""

from __future__ import annotations

import json
import os
import sys
import time

from pagefusion_dev import ksm_reset, synthetic_guests
from pagefusion_dev.daemon_run import DaemonRun

SETTINGS = [('libvirt_uri', ''), ('still_watch_interval', '3600'), ('interval', '300'), ('quiet_interval', '300'),
            ('log_level', 'info')]
AT_REST = 12.0


class StepFailed(Exception):
    """A step did not happen in time (the message says which)."""


def wait_for(run, predicate, what, timeout):
    """Seconds until ``predicate(state)`` holds for the daemon's state file; StepFailed on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        state = run.state()
        if state and predicate(state):
            return round(time.monotonic() - started, 2)
        if not run.running():
            raise StepFailed('pagefusiond exited (%s) while waiting for %s' % (run.proc.returncode, what))
        time.sleep(0.05)
    raise StepFailed('%s did not happen within %g s' % (what, timeout))


def measure(run):
    figures = {}
    figures['steady_seconds'] = wait_for(run, lambda s: s.get('phase') == 'steady', 'the steady phase', 60)
    figures['watch_sources'] = run.state().get('watch_sources')
    time.sleep(AT_REST)  # the looks slow to one an hour
    boosts = run.state().get('boosts', 0)
    with synthetic_guests.Guests(1, 64, first_guest=1) as newcomer:
        figures['newcomer_pid'] = newcomer.pids[0]
        figures['noticed_seconds'] = wait_for(
            run, lambda s: s.get('boosts', 0) > boosts or s.get('mergeable_processes', 0) >= 2,
            'a look at the newcomer', 10)
    figures['log'] = [line for line in run.log_lines() if 'connector' in line or '-> boost' in line][-4:]
    return figures


def main():
    if os.geteuid() != 0:
        sys.stderr.write('connector_newcomer: run as root (the connector needs CAP_NET_ADMIN; the daemon drives KSM)\n')
        return 2
    figures = None
    with ksm_reset.held(), synthetic_guests.Guests(1, 64):
        with DaemonRun(SETTINGS, metrics=False, prefix='pagefusiond-connector-') as run:
            try:
                figures = measure(run.start())
                figures['daemon_exit'] = run.stop()
            except StepFailed as err:
                sys.stderr.write('connector_newcomer: FAILED: %s\ndaemon log:\n  %s\n' % (err, '\n  '.join(run.log_lines())))
    if figures is None:
        return 1
    print(json.dumps(figures, indent=2, sort_keys=True))
    return 0


if __name__ == '__main__':
    sys.exit(main())
