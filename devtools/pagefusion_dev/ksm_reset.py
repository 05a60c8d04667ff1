# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Save, reset and restore the machine's KSM: the one implementation the tests, the benchmark and the
molecule runner share, on top of the collection's KSM model (module_utils/_ksm.py).

Every reset unmerges first (run=2 until no KSM page and no KSM zero page is left), stops ksmd (run=0) and then
writes the wanted knobs: the kernel defaults (BENCHMARKS.md's reset) or a saved snapshot (a saved run=2 comes
back as run=0). Run with .venv's Python (root):

    python -m pagefusion_dev.ksm_reset save FILE        # the current knobs as JSON into FILE
    python -m pagefusion_dev.ksm_reset restore FILE     # unmerge, run=0, the knobs saved in FILE; prints them
    python -m pagefusion_dev.ksm_reset run -- CMD...    # under the KSM lock: save, run CMD, restore; CMD's status
"""

import contextlib
import json
import signal
import subprocess
import sys
import time

from ansible_collections.pagefusion.core.plugins.module_utils import _ksm

from . import ksm_lock

UNMERGE_TIMEOUT = 180.0
KsmError = _ksm.KsmError


def _advisor_off(ksm):
    # Under the scan-time advisor the kernel owns pages_to_scan: switch it off before writing knobs.
    if ksm.read_knobs().get('advisor_mode') == 'scan-time':
        ksm.write('advisor_mode', 'none')


def unmerge(ksm, timeout=UNMERGE_TIMEOUT, poll=0.05):
    """run=2 until no KSM page and no KSM zero page is left, then run=0. False when ``timeout`` passed first."""
    _advisor_off(ksm)
    ksm.write('run', 2)
    deadline = time.monotonic() + timeout
    while True:
        counters = ksm.read_counters()
        done = not counters.get('pages_shared') and not counters.get('ksm_zero_pages')
        if done or time.monotonic() > deadline:
            break
        time.sleep(poll)
    ksm.write('run', 0)
    return done


def _unmerge_timeout(ksm, timeout):
    return KsmError('KSM did not unmerge within %ds (pages_shared %s)' % (timeout, ksm.read_counters().get('pages_shared')))


def reset_to_defaults(ksm, timeout=UNMERGE_TIMEOUT):
    """BENCHMARKS.md's reset: unmerge, stop, every knob back to the kernel default."""
    if not unmerge(ksm, timeout):
        raise _unmerge_timeout(ksm, timeout)
    ksm.restore_defaults()


def defaults_keep_merged(ksm):
    """Kernel defaults with run=0 but no unmerge: the merged pages stay merged."""
    _advisor_off(ksm)
    ksm.restore_defaults()


def restore(ksm, knobs, timeout=UNMERGE_TIMEOUT):
    """Unmerge, then put ``knobs`` (a :meth:`KsmSysfs.snapshot_knobs` result) back, run=2 as run=0.

    The knobs are written even when the unmerge timed out; then KsmError says so.
    """
    unmerged = unmerge(ksm, timeout)
    wanted = dict(knobs)
    if wanted.get('run') == 2:
        wanted['run'] = 0
    ksm.restore_knobs(wanted)
    if not unmerged:
        raise _unmerge_timeout(ksm, timeout)


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

    def reset(self, timeout=UNMERGE_TIMEOUT):
        reset_to_defaults(self.ksm, timeout)

    def reset_knobs_keep_merged(self):
        defaults_keep_merged(self.ksm)

    def restore(self, knobs, timeout=UNMERGE_TIMEOUT):
        restore(self.ksm, knobs, timeout)


@contextlib.contextmanager
def held(kernel=None, lock=True):
    """The KSM lock (unless ``lock`` is false or an ancestor holds it) and the knobs saved; on leaving, the knobs
    restored and the lock let go. Yields the :class:`Kernel`."""
    kernel = kernel or Kernel()
    handle = ksm_lock.acquire() if lock else None
    saved = kernel.snapshot()
    try:
        yield kernel
    finally:
        kernel.restore(saved)
        if handle:
            handle.close()


def _describe(ksm):
    return ', '.join('%s=%s' % item for item in sorted(ksm.snapshot_knobs().items()))


def _interrupt(signum, frame):
    raise KeyboardInterrupt('signal %d' % signum)


def run_saved(command):
    """Run ``command`` under the KSM lock between a save and a restore of the knobs; its exit status."""
    ksm = _ksm.KsmSysfs()
    ksm.require()
    lock = ksm_lock.acquire()
    saved = ksm.snapshot_knobs()
    signal.signal(signal.SIGTERM, _interrupt)  # a runner's timeout unwinds like Ctrl-C: the knobs still come back
    proc = None
    try:
        proc = subprocess.Popen(command)
        return proc.wait()
    finally:
        if proc is not None and proc.poll() is None:  # interrupted: the command must not outlive the restore
            proc.terminate()
            proc.wait()
        restore(ksm, saved)
        print('ksm_reset: KSM restored: %s' % _describe(ksm))
        if lock:
            lock.close()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == 'save':
        with open(argv[1], 'w') as handle:
            json.dump(_ksm.KsmSysfs().snapshot_knobs(), handle, sort_keys=True)
        return 0
    if len(argv) == 2 and argv[0] == 'restore':
        ksm = _ksm.KsmSysfs()
        with open(argv[1]) as handle:
            restore(ksm, json.load(handle))
        print('ksm_reset: KSM restored: %s' % _describe(ksm))
        return 0
    if len(argv) >= 3 and argv[:2] == ['run', '--']:
        return run_saved(argv[2:])
    sys.stderr.write('usage: python -m pagefusion_dev.ksm_reset save FILE | restore FILE | run -- CMD [ARGS...]\n')
    return 2


if __name__ == '__main__':
    sys.exit(main())
