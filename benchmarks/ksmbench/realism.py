# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The realism run: B1's figures for 3 real TCG guests booted from one kernel and initramfs.

Real guest memory has no known achievable saving, so KX runs first and each KX run goes on until the saving
stops growing (its plateau); the largest plateau is the reference the other policies' T50/T90 are measured against.
"""

import time

from . import measure, policies, workload
from .scenarios import CostTrace

PLATEAU_SECONDS = 4.0
PLATEAU_GROWTH = 0.002


def run(kern, policy_name, guests, cap, reference=None, daemon_overrides=None, progress=None):
    """One run; returns the figures (against ``reference`` when given) and the raw trace (t, saved pages, cpu)."""
    load = workload.RealGuests(guests.number, guests.memory_mib, guests.fill_mib, guests.unique_mib)
    boot = time.monotonic()
    load.start()
    booted = time.monotonic() - boot
    resident = _resident_pages(load.pids)
    policy = policies.make(policy_name, daemon_overrides)
    trace = CostTrace(kern, lambda zero: reference or 1, policy)
    try:
        policy.start(kern)
        rows = trace.samples
        while trace.elapsed() < cap:
            row = trace.sample()
            if reference and row[1] >= 0.9 * reference and _flat(rows, 1.0, 0.01):
                break
            if reference is None and row[0] > 2 and _flat(rows, PLATEAU_SECONDS, PLATEAU_GROWTH):
                break
            time.sleep(0.1)
    finally:
        policy.stop()
        load.stop()
        kern.reset()
    if progress:
        progress('  %s: booted in %.1fs, saved %d pages after %.1fs' % (policy_name, booted, trace.samples[-1][1], trace.samples[-1][0]))
    return {'bench': 'realism', 'policy': policy_name, 'guests': guests.number, 'memory_mib': guests.memory_mib,
            'boot_seconds': round(booted, 1), 'resident_pages': resident, 'cap': cap,
            'raw': [[r[0], r[1], r[3], r[measure.OWN]] for r in trace.samples], 'plateau_pages': trace.samples[-1][1]}


def figures(result, reference, page_size):
    """T50/T90 etc. of a realism run against the reference saving (pages)."""
    # raw rows: t, saved pages, ksmd CPU, own CPU (older results: no own CPU)
    rows = [[r[0], r[1], r[1] / float(reference), r[2], None, None, None, r[3] if len(r) > 3 else None]
            for r in result['raw']]
    out = measure.convergence_figures(rows, page_size, result['cap'])
    out['trace'] = [[r[0], round(r[2], 4), r[3]] for r in rows[::3]]
    return out


def _flat(rows, seconds, growth):
    """The saved pages grew by less than ``growth`` (share) over the last ``seconds``."""
    if not rows or rows[-1][0] < seconds:
        return False
    now = rows[-1]
    old = [r for r in rows if r[0] <= now[0] - seconds]
    if not old or now[1] == 0:
        return False
    return now[1] - old[-1][1] <= growth * now[1]


def _resident_pages(pids):
    total = 0
    for pid in pids:
        try:
            with open('/proc/%d/statm' % pid) as handle:
                total += int(handle.read().split()[1])
        except (IOError, OSError, ValueError, IndexError):
            pass
    return total
