# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The demo's live progress line: seconds, MiB saved and ksmd CPU, read from pagefusiond's state file.

The saving grows while the guests boot and fill their memory and pagefusiond boosts ksmd; it has settled when
every guest is ready and the daemon has dropped to its slow steady rate with a saving.
"""

import sys
import time

MIB = 1024.0 * 1024.0
SETTLED_PHASES = ('steady', 'idle')
SETTLE_HOLD = 3.0        # seconds the daemon must stay settled before the demo moves on
TIMEOUT = 150.0


class Progress(object):
    """Samples pagefusiond's state once a second until the saving settles; the last figures."""

    def __init__(self, daemon, waiters, out=sys.stdout):
        self.daemon = daemon
        self.waiters = waiters        # {name: pf-testguest wait-ready process}
        self.out = out
        self.tty = out.isatty()
        self.started = time.monotonic()
        self.cpu_start = None
        self.saved_bytes = 0
        self.cpu_seconds = 0.0
        self.settled_at = None

    def _ready(self):
        failed = [name for name, proc in self.waiters.items() if proc.poll() not in (None, 0)]
        if failed:
            detail = self.waiters[failed[0]].stderr.read().strip()
            raise RuntimeError('guest %s did not boot: %s' % (failed[0], detail))
        return [name for name, proc in self.waiters.items() if proc.poll() == 0]

    def _line(self, elapsed, state, ready):
        percent = state.get('ksmd_cpu_percent')
        return '  %5.1f s   %7.1f MiB saved   ksmd CPU %s   pagefusiond %-7s  guests ready %d/%d' % (
            elapsed, self.saved_bytes / MIB, '  n/a' if percent is None else '%5.1f %% of a core' % percent,
            state.get('phase', 'starting'), len(ready), len(self.waiters))

    def _settled(self, now, state, ready):
        if len(ready) < len(self.waiters) or state.get('phase') not in SETTLED_PHASES or not self.saved_bytes:
            self.settled_at = None
            return False
        self.settled_at = self.settled_at or now
        return now - self.settled_at >= SETTLE_HOLD

    def sample(self):
        """One line; True once the saving has settled."""
        now = time.monotonic()
        if not self.daemon.running():
            raise RuntimeError('pagefusiond exited: %s' % ' | '.join(self.daemon.log_lines()[-3:]))
        state = self.daemon.state() or {}
        ready = self._ready()
        self.saved_bytes = state.get('saved_bytes') or 0
        if state.get('ksmd_cpu_seconds') is not None:
            self.cpu_start = state['ksmd_cpu_seconds'] if self.cpu_start is None else self.cpu_start
            self.cpu_seconds = state['ksmd_cpu_seconds'] - self.cpu_start
        self.out.write(('\r' if self.tty else '') + self._line(now - self.started, state, ready) + ('' if self.tty else '\n'))
        self.out.flush()
        return self._settled(now, state, ready)

    def run(self, timeout=TIMEOUT):
        """Sample until settled or ``timeout``; True when it settled."""
        settled = False
        while not settled and time.monotonic() - self.started < timeout:
            settled = self.sample()
            if not settled:
                time.sleep(1.0)
        if self.tty:
            self.out.write('\n')
        return settled

    def elapsed(self):
        return time.monotonic() - self.started
