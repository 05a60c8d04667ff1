# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""KSM around the benchmark: the lock, other KSM tuners, per-process KSM counters (the KSM itself: pagefusion_dev.ksm_reset)."""

import os

from ansible_collections.pagefusion.core.plugins.module_utils import _ksm
from pagefusion_dev import ksm_lock


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
    return ksm_lock.acquire()


def process_ksm(pid):
    """The ``/proc/<pid>/ksm_stat`` counters of one process (parsed by _ksm), or None."""
    return _ksm.read_process_ksm(pid)
