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


def _stat_fields(pid):
    with open('/proc/%d/stat' % pid) as handle:
        return handle.read().rsplit(')', 1)[1].split()


def _children(pid):
    """Live child pids of ``pid`` (every thread's ``children`` list)."""
    kids = []
    try:
        for tid in os.listdir('/proc/%d/task' % pid):
            with open('/proc/%d/task/%s/children' % (pid, tid)) as handle:
                kids.extend(int(x) for x in handle.read().split())
    except (IOError, OSError, ValueError):
        pass
    return kids


def _threads_runtime(pid):
    """Nanosecond CPU time of a process's live threads (``/proc/<pid>/task/*/schedstat``), in seconds, or None."""
    try:
        total = 0
        for tid in os.listdir('/proc/%d/task' % pid):
            with open('/proc/%d/task/%s/schedstat' % (pid, tid)) as handle:
                total += int(handle.read().split()[0])
        return total / 1e9
    except (IOError, OSError, ValueError, IndexError):
        return None


def process_tree_cpu(pid):
    """CPU seconds of a process and its children, plus the same of its live descendants; None when ``pid`` is gone.

    The process's own time is its threads' run time from schedstat (nanoseconds) where the kernel has it: utime
    and stime come in clock ticks (10 ms), too coarse for a daemon that uses 0.1 % of a core (6 ticks a minute).
    Threads that already exited are then not counted (pagefusiond's threads live as long as it does). Without
    schedstat: utime+stime. Children it waited for: cutime+cstime (ticks).
    """
    try:
        fields = _stat_fields(pid)
    except (IOError, OSError, IndexError):
        return None
    # after the ')': state is fields[0], so utime, stime, cutime, cstime are fields[11:15]
    tick = float(os.sysconf('SC_CLK_TCK'))
    own = _threads_runtime(pid)
    if own is None:
        own = sum(int(x) for x in fields[11:13]) / tick
    total = own + sum(int(x) for x in fields[13:15]) / tick
    for child in _children(pid):
        total += process_tree_cpu(child) or 0.0
    return total
