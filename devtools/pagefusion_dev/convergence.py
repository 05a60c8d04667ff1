# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""How fast KSM converges: sampled traces of the saved fraction and their T50/T90 crossings (interpolated).

One implementation for the benchmark (benchmarks/ksmbench) and the real-kernel test (tests/setup/pagefusiond_realrun.py).
"""

import time


class Trace(object):
    """Samples of one run: seconds since t0, saved pages, saved fraction of the achievable, ksmd CPU seconds since t0.

    ``kernel`` is a :class:`pagefusion_dev.ksm_reset.Kernel` (``read()`` and ``cpu()``). ``achievable(use_zero_pages)``
    gives the exact achievable saving for the knob as it is at each sample (pagefusiond switches use_zero_pages on,
    which adds one page).
    """

    def __init__(self, kernel, achievable, clock=time.monotonic):
        self.kernel = kernel
        self.achievable = achievable
        self.clock = clock
        self.t0 = clock()
        self.cpu0 = kernel.cpu()
        self.samples = []  # [t, saved_pages, fraction, cpu_s, pages_to_scan, sleep_millisecs, run]

    def sample(self):
        saved, zero_pages, knobs, dummy = self.kernel.read()
        now = self.clock() - self.t0
        cpu = self.kernel.cpu() - self.cpu0
        achievable = float(self.achievable(zero_pages))
        row = [round(now, 3), saved, saved / achievable if achievable else 0.0, round(cpu, 4),
               knobs.get('pages_to_scan'), knobs.get('sleep_millisecs'), knobs.get('run')]
        self.samples.append(row)
        return row

    @property
    def last(self):
        return self.samples[-1] if self.samples else None

    def elapsed(self):
        return self.clock() - self.t0


def crossing(samples, share):
    """``(seconds, ksmd_cpu_seconds)`` when the saved fraction first reaches ``share``, interpolated between samples.

    ``samples`` are Trace rows (t, saved, fraction, cpu, ...). None when it never does.
    """
    before = None
    for row in samples:
        if row[2] >= share:
            if before is None or row[2] <= before[2]:
                return row[0], row[3]
            part = (share - before[2]) / (row[2] - before[2])
            return before[0] + part * (row[0] - before[0]), before[3] + part * (row[3] - before[3])
        before = row
    return None
