# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the policies merge: synthetic guests (BENCHMARKS.md's content model), real TCG guests, memory pressure."""

import mmap
import os
import signal
import subprocess
import sys
import time

from ansible_collections.pagefusion.core.plugins.module_utils._ksm import mergeable_smaps_kb
from pagefusion_dev import synthetic_guests
from pagefusion_dev.collection import PF_TESTGUEST

from . import kernel

MIB = 1024 * 1024
MADV_POPULATE_WRITE = getattr(mmap, 'MADV_POPULATE_WRITE', 23)  # Linux 5.14; Python 3.11's mmap lacks the name


class Synthetic(object):
    """N synthetic guests of G MiB. ``achievable(use_zero_pages)`` is exact (BENCHMARKS.md)."""

    kind = 'synthetic'

    def __init__(self, guests, mib, churn_per_s=0.0, s_hits=0.0, first_guest=0):
        self.guests = synthetic_guests.Guests(guests, mib, churn=churn_per_s, s_hits=s_hits, churn_paused=True,
                                              first_guest=first_guest)
        self.counts = self.guests.counts
        self.number = guests
        self.mib = mib

    def start(self):
        self.guests.start()
        return self

    def stop(self):
        self.guests.stop()

    @property
    def pids(self):
        return list(self.guests.pids)

    def achievable(self, use_zero_pages):
        return self.guests.achievable(use_zero_pages)

    def set_churn(self, on):
        self.guests.set_churn(on)

    def actual_saved(self):
        """Pages the guests really save right now (:func:`actual_saved_pages`), not what ksmd's counters say."""
        return actual_saved_pages(self.pids)

    def own_mergeable(self):
        """One guest's own S + Z pages (what B3 measures a newcomer against)."""
        return self.counts['S'] + self.counts['Z']


def actual_saved_pages(pids, page_size=mmap.PAGESIZE):
    """The memory a group of processes really saves: sum(Rss) - sum(Pss) of their mergeable VMAs plus their KSM zero pages.

    A KSM page mapped by k of them counts k times in Rss and once in Pss, so this is exactly what merging saves
    at this moment. ksmd's own counters (pages_sharing) only learn that a write broke a page's sharing (copy on
    write) when ksmd visits the page again, and then it usually merges the page again at once: under churn they
    show sharing that is not there. Walks the page tables: fine once a second, too heavy for 50 ms sampling.
    """
    rss = pss = zero = 0
    for pid in pids:
        try:
            with open('/proc/%d/smaps' % pid) as handle:
                got = mergeable_smaps_kb(handle.read(), ('Rss', 'Pss'))
        except (IOError, OSError):
            continue
        rss, pss = rss + got['Rss'], pss + got['Pss']
        stat = kernel.process_ksm(pid) or {}
        zero += stat.get('zero_pages') or 0
    return (rss - pss) * 1024 // page_size + zero


def meminfo():
    """/proc/meminfo in kB."""
    values = {}
    with open('/proc/meminfo') as handle:
        for line in handle:
            name, rest = line.split(':', 1)
            values[name] = int(rest.split()[0])
    return values


def ksmtuned_view(info=None):
    """What Debian's ksmtuned compares (kB): ``free`` = MemFree+Buffers+Cached against ``thres`` = max(20% of MemTotal, 2048)."""
    info = info or meminfo()
    free = info.get('MemFree', 0) + info.get('Buffers', 0) + info.get('Cached', 0)
    thres = max(info['MemTotal'] * 20 // 100, 2048)
    return free, thres


class Pressure(object):
    """Memory pressure as ksmtuned sees it: a child process holds enough plain (unmergeable) memory that
    ksmtuned's ``free`` falls ``margin_mib`` below its threshold. Refuses when that would leave less than
    ``reserve_mib`` MemAvailable (no swap here: the OOM killer would pick something)."""

    def __init__(self, margin_mib=512, reserve_mib=1536):
        self.margin_mib = margin_mib
        self.reserve_mib = reserve_mib
        self.pid = None
        self.mib = 0

    def plan(self, info=None):
        """MiB to hold, or raise RuntimeError saying why pressure cannot be made safely."""
        info = info or meminfo()
        free, thres = ksmtuned_view(info)
        need = (free - thres) // 1024 + self.margin_mib
        left = info.get('MemAvailable', free) // 1024 - need
        if left < self.reserve_mib:
            raise RuntimeError('memory pressure for ksmtuned needs %d MiB held, which would leave %d MiB available '
                               '(less than %d MiB)' % (need, left, self.reserve_mib))
        return max(0, need)

    def start(self):
        self.mib = self.plan()
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: hold the memory until SIGTERM
            try:
                os.close(read_fd)
                held = []
                chunk = 256 * MIB
                left = self.mib * MIB
                while left > 0:
                    size = min(chunk, left)
                    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
                    try:
                        buf.madvise(MADV_POPULATE_WRITE)
                    except OSError:
                        for offset in range(0, size, mmap.PAGESIZE):
                            buf[offset] = 1
                    held.append(buf)
                    left -= size
                signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
                os.write(write_fd, b'ready\n')
                while True:
                    signal.pause()
            finally:
                os._exit(1)
        os.close(write_fd)
        self.pid = pid
        with os.fdopen(read_fd, 'rb') as pipe:
            if not pipe.read(6):
                self.stop()
                raise RuntimeError('the memory pressure process died while allocating %d MiB' % self.mib)
        return self

    def describe(self):
        free, thres = ksmtuned_view()
        return {'held_mib': self.mib, 'ksmtuned_free_mib': free // 1024, 'ksmtuned_thres_mib': thres // 1024}

    def stop(self):
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGTERM)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
            self.pid = None


class RealGuests(object):
    """N small real guests under QEMU TCG, booted through libvirt from one kernel and initramfs (tests/setup/pf-testguest).

    Their achievable saving is not known in advance: the benchmark measures it as the plateau KX reaches.
    """

    kind = 'real'

    def __init__(self, guests=3, memory_mib=256, fill_mib=64, unique_mib=32, prefix='pf-bench-', uri='qemu:///system',
                 timeout=240.0):
        self.number = guests
        self.memory_mib = memory_mib
        self.fill_mib = fill_mib
        self.unique_mib = unique_mib
        self.names = ['%s%d' % (prefix, i + 1) for i in range(guests)]
        self.prefix = prefix
        self.uri = uri
        self.timeout = timeout
        self.tool = PF_TESTGUEST
        self.reference = None  # achievable pages, from KX's plateau

    def _run(self, *args):
        subprocess.run([sys.executable, self.tool] + list(args) + ['--uri', self.uri], check=True,
                       stdout=subprocess.DEVNULL)

    def start(self):
        self.stop()
        for name in self.names:
            self._run('define', name, '--memory-mib', str(self.memory_mib), '--fill-mib', str(self.fill_mib),
                      '--unique-mib', str(self.unique_mib))
        for name in self.names:
            self._run('start', name)
        for name in self.names:
            self._run('wait-ready', name, '--timeout', str(self.timeout))
        return self

    @property
    def pids(self):
        pids = []
        for name in self.names:
            out = subprocess.run([sys.executable, self.tool, 'pid', name, '--uri', self.uri], check=True,
                                 capture_output=True, text=True).stdout
            pids.append(int(out.strip()))
        return pids

    def achievable(self, use_zero_pages):
        return self.reference or 1

    def set_churn(self, on):
        pass

    def stop(self):
        subprocess.run([sys.executable, self.tool, 'cleanup', '--prefix', self.prefix, '--uri', self.uri], check=False,
                       stdout=subprocess.DEVNULL)


def wait(seconds, stop_when=None, step=0.05):
    """Sleep up to ``seconds``, returning early when ``stop_when()`` is true."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if stop_when is not None and stop_when():
            return True
        time.sleep(step)
    return False
