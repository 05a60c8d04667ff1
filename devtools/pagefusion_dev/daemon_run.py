# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""pagefusiond from the checkout with a temporary config: start it, read its state file, stop it.

Launched as ``[sys.executable, <checkout>/daemon/pagefusiond, '--config', TMP]`` (the daemon's launch contract;
the path may be a file or a package directory with ``__main__.py``). Its state, metrics and log stay in a
temporary directory that :meth:`DaemonRun.close` removes.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from .collection import DAEMON

STOP_TIMEOUT = 30


def process_cpu_seconds(pid):
    """User + system CPU seconds of a process (``/proc/<pid>/stat``), or None when it is gone."""
    try:
        with open('/proc/%d/stat' % pid) as handle:
            fields = handle.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / float(os.sysconf('SC_CLK_TCK'))
    except (IOError, OSError, ValueError, IndexError):
        return None


class DaemonRun(object):
    """One pagefusiond run. ``settings``: ``[(key, value)]`` config lines after the file paths.

    The config holds ``state_path`` in the temporary directory, ``metrics_path`` there too (or empty when
    ``metrics`` is false), then ``settings``. A context manager: leaving it stops the daemon (SIGTERM, so it
    puts back the knobs it changed) and removes the directory.
    """

    def __init__(self, settings=(), metrics=True, prefix='pagefusiond-run-'):
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        self.state_path = os.path.join(self.tmp, 'state.json')
        self.metrics_path = os.path.join(self.tmp, 'pagefusiond.prom') if metrics else ''
        self.config_path = os.path.join(self.tmp, 'pagefusiond.conf')
        lines = ['[pagefusiond]', 'state_path = %s' % self.state_path, 'metrics_path = %s' % self.metrics_path]
        lines += ['%s = %s' % (key, value) for key, value in settings]
        with open(self.config_path, 'w') as handle:
            handle.write('\n'.join(lines) + '\n')
        self.log = open(os.path.join(self.tmp, 'daemon.log'), 'w+')
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([sys.executable, DAEMON, '--config', self.config_path], stderr=self.log)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self):
        return process_cpu_seconds(self.proc.pid)

    def state(self):
        """The daemon's state file as a dict, or None before it wrote one."""
        try:
            with open(self.state_path) as handle:
                return json.load(handle)
        except (IOError, OSError, ValueError):
            return None

    def phase(self):
        return (self.state() or {}).get('phase')

    def metrics_lines(self):
        """Lines in the Prometheus metrics file (0 when there is none)."""
        try:
            with open(self.metrics_path) as handle:
                return len(handle.read().splitlines())
        except (IOError, OSError):
            return 0

    def log_lines(self):
        self.log.seek(0)
        return self.log.read().splitlines()

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM (if still running) and wait: its exit status, or 'killed' when it did not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return 'killed'

    def close(self):
        if self.running():  # interrupted: the daemon must not outlive us (SIGTERM restores its knobs)
            self.stop()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
