# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""KSM access for the benchmark: the collection's one KSM model (module_utils/_ksm.py), the lock, the reset."""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SETUP_DIR = os.path.join(REPO, 'tests', 'setup')
for _path in (os.path.join(REPO, 'plugins', 'module_utils'), SETUP_DIR):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import _ksm  # noqa: E402  pylint: disable=wrong-import-position,import-error
import ksm_lock  # noqa: E402  pylint: disable=wrong-import-position,import-error

LOCK_PATH = '/tmp/pagefusion-ksm.lock'
KsmError = _ksm.KsmError


class Kernel(object):
    """The real KSM of this machine plus ksmd's CPU clock (``/proc/<ksmd>/schedstat``, ns)."""

    def __init__(self):
        self.ksm = _ksm.KsmSysfs()
        self.ksm.require()
        self.ksmd_pid = self.ksm.ksmd_pid()
        if self.ksmd_pid is None:
            raise KsmError('no ksmd kernel thread found in /proc')
        self.page_size = self.ksm.page_size

    def cpu(self):
        """ksmd's CPU seconds so far."""
        return self.ksm.ksmd_cpu_seconds(self.ksmd_pid)

    def read(self):
        """``(saved_pages, use_zero_pages, knobs, counters)`` in one pass over the KSM directory."""
        data = self.ksm.read_all()
        return data['saved_pages'], bool(data['knobs'].get('use_zero_pages')), data['knobs'], data['counters']

    def write(self, knob, value):
        self.ksm.write(knob, value)

    def snapshot(self):
        return self.ksm.snapshot_knobs()

    def reset(self, timeout=180.0):
        """BENCHMARKS.md's reset: unmerge (run=2), stop (run=0), every knob back to the kernel default."""
        knobs = self.ksm.read_knobs()
        if knobs.get('advisor_mode') == 'scan-time':
            self.ksm.write('advisor_mode', 'none')
        self.ksm.write('run', 2)
        deadline = time.monotonic() + timeout
        while True:
            counters = self.ksm.read_counters()
            if not counters.get('pages_shared') and not counters.get('ksm_zero_pages'):
                break
            if time.monotonic() > deadline:
                raise KsmError('KSM did not unmerge within %ds (pages_shared %s)' % (timeout, counters.get('pages_shared')))
            time.sleep(0.05)
        self.ksm.write('run', 0)
        self.ksm.restore_defaults()

    def reset_knobs_keep_merged(self):
        """Kernel defaults with run=0 but no unmerge: the merged pages stay merged for the next policy."""
        if self.ksm.read_knobs().get('advisor_mode') == 'scan-time':
            self.ksm.write('advisor_mode', 'none')
        self.ksm.restore_defaults()

    def restore(self, snapshot):
        """Put the knobs found before the benchmark back (after an unmerge, so every knob can be written)."""
        self.reset()
        wanted = dict(snapshot)
        if wanted.get('run') == 2:
            wanted['run'] = 0
        self.ksm.restore_knobs(wanted)


def other_tuners(names=('ksmtuned', 'pagefusiond', 'momd')):
    """``[(pid, name)]`` of running KSM tuners (other than this process's children): they would change the knobs mid-run."""
    found = []
    me = os.getpid()
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open('/proc/%s/cmdline' % entry, 'rb') as handle:
                argv = [a.decode('utf-8', 'replace') for a in handle.read().split(b'\0') if a]
        except (IOError, OSError):
            continue
        for arg in argv[:2]:
            base = os.path.basename(arg)
            if base in names:
                found.append((int(entry), base))
                break
    return found


def lock():
    """Hold the machine-wide KSM lock of the project's tests (None when a parent process holds it)."""
    return ksm_lock.acquire(LOCK_PATH)


def process_ksm(pid):
    """The ``/proc/<pid>/ksm_stat`` counters of one process (parsed by _ksm), or None."""
    return _ksm.read_process_ksm(pid)
