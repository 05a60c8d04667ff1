# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The figures BENCHMARKS.md asks for from the traces of the runs (pure functions, unit-tested).

Traces and their interpolated T50/T90 crossings come from pagefusion_dev.convergence (shared with the tests).
"""

import math

from pagefusion_dev.convergence import crossing

GIB = 1024.0 ** 3
OWN = 7  # column of a Trace row with the policy's own process CPU seconds (pagefusiond's; absent or None: none)


def own(row):
    """The policy's own process CPU seconds of a sample row (0 for policies without a process of their own)."""
    return (row[OWN] or 0.0) if len(row) > OWN else 0.0


def own_at(samples, t):
    """The policy's own CPU seconds at time ``t``, interpolated between the samples around it."""
    before = None
    for row in samples:
        if row[0] >= t:
            if before is None or row[0] <= before[0]:
                return own(row)
            part = (t - before[0]) / (row[0] - before[0])
            return own(before) + part * (own(row) - own(before))
        before = row
    return own(before) if before else 0.0


def sample_interval(samples):
    """The median time between consecutive samples (what the run really sampled at), None with fewer than two."""
    steps = sorted(b[0] - a[0] for a, b in zip(samples, samples[1:]))
    return round(steps[(len(steps) - 1) // 2], 3) if steps else None


def window(samples, start, end):
    """Mean ksmd CPU percent of one core and mean saved fraction for ``start <= t <= end``; None without samples."""
    rows = [r for r in samples if start <= r[0] <= end]
    if len(rows) < 2 or rows[-1][0] <= rows[0][0]:
        return None
    seconds = rows[-1][0] - rows[0][0]
    cpu_percent = 100.0 * (rows[-1][3] - rows[0][3]) / seconds
    daemon = own(rows[-1]) - own(rows[0])
    # time-weighted mean of the saved fraction (samples are not always evenly spaced)
    area = 0.0
    for a, b in zip(rows, rows[1:]):
        area += (b[0] - a[0]) * (a[2] + b[2]) / 2.0
    return {'cpu_percent': cpu_percent, 'saved_fraction': area / seconds, 'seconds': seconds,
            'cpu_seconds': rows[-1][3] - rows[0][3], 'daemon_cpu_seconds': daemon,
            'daemon_cpu_percent': 100.0 * daemon / seconds, 'total_cpu_percent': cpu_percent + 100.0 * daemon / seconds}


def convergence_figures(samples, page_size, cap):
    """B1's figures of one run: T50, T90 (None when censored at ``cap``), CPU seconds to T90 (ksmd, the policy's own
    process, their sum) and CPU seconds (the sum) per GiB saved."""
    t50 = crossing(samples, 0.5)
    t90 = crossing(samples, 0.9)
    figures = {'t50': None if t50 is None else t50[0], 't90': None if t90 is None else t90[0],
               'cpu_t90': None if t90 is None else t90[1], 'cap': cap, 'sample_interval': sample_interval(samples)}
    if t90 is not None:
        daemon = own_at(samples, t90[0])
        figures.update(daemon_cpu_t90=daemon, total_cpu_t90=t90[1] + daemon)
        at = [r for r in samples if r[0] >= t90[0]]
        saved = at[0][1] if at else samples[-1][1]
        figures['cpu_per_gib'] = (t90[1] + daemon) / (saved * page_size / GIB) if saved else None
    else:
        last = samples[-1] if samples else None
        total = last[3] + own(last) if last else 0.0
        figures['cpu_per_gib'] = total / (last[1] * page_size / GIB) if last and last[1] else None
        figures['fraction_at_cap'] = last[2] if last else 0.0
        figures['cpu_at_cap'] = last[3] if last else 0.0
        figures['daemon_cpu_at_cap'] = own(last) if last else 0.0
        figures['total_cpu_at_cap'] = total
    return figures


class Censored(float):
    """A median known only as a lower bound: ``> value`` (the run was stopped at its cap first)."""

    def __repr__(self):
        return '>%g' % float(self)


def median(values, caps=None):
    """The median of run results where None means "not reached before the cap".

    Censored runs sort above every finished one. When the median falls on a censored run the result is
    :class:`Censored` with the smallest cap of the censored runs (the median is at least that); with an even
    count whose middle pair is one finished and one censored run, the bound is halfway from the finished value
    to that cap. Returns None for no values.
    """
    if not values:
        return None
    caps = list(caps) if caps is not None else [math.inf] * len(values)
    order = sorted(range(len(values)), key=lambda i: (values[i] is None, values[i] if values[i] is not None else caps[i]))
    n = len(order)
    middle = [order[(n - 1) // 2], order[n // 2]]
    picked = [values[i] for i in middle]
    if any(v is None for v in picked):
        bound = min(caps[i] for i in range(n) if values[i] is None)
        if picked[0] is not None:
            # even count, only the upper middle censored: the median is (finished + more than the cap) / 2
            bound = (picked[0] + bound) / 2.0
        return Censored(bound)
    return (picked[0] + picked[1]) / 2.0


def median_settled(values, repeats):
    """True when the remaining runs of a cell can no longer change whether its median is censored.

    With ``repeats`` runs planned, once more than half are censored the median is censored whatever the rest do.
    """
    censored = sum(1 for v in values if v is None)
    return censored * 2 > repeats


def ratio(value, base):
    """value/base for the tables; Censored values give Censored-aware bounds, None when unknown."""
    if value is None or base is None:
        return None
    if isinstance(base, Censored) and isinstance(value, Censored):
        return None
    if isinstance(base, Censored):
        return ('<', float(value) / float(base)) if base else None
    if isinstance(value, Censored):
        return ('>', float(value) / float(base)) if base else None
    return ('=', float(value) / float(base)) if base else None
