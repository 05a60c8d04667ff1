# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""B5: the daemon's own cost against the number of guests it watches (N synthetic guests of 32 MiB).

Per N: D converges, its steady phase is reached, then a window with the guests idle gives the daemon's own CPU
(utime+stime of its process and children) and ksmd's; then one more guest starts and the time until the daemon
reacts (KSM knobs leave their steady values, or its state says boost) is its newcomer detection time.
"""

import time

from . import measure, policies, workload
from .scenarios import CONVERGED, CostTrace, _trace_until

STEADY_PHASES = ('steady', 'idle')
POLL = 0.02


def run(kern, guests, mib, window_seconds, converge_cap, steady_cap=60.0, detect_cap=30.0, daemon_overrides=None,
        progress=None):
    """One B5 cell; returns the figures (see the module docstring)."""
    load = workload.Synthetic(guests, mib).start()
    newcomer = workload.Synthetic(1, mib, first_guest=guests)
    policy = policies.make('D', daemon_overrides)
    session = policies.Session(policy, kern)
    result = {'bench': 'B5', 'policy': 'D', 'guests': guests, 'mib': mib, 'window_seconds': window_seconds}
    try:
        session.prepare()
        trace = CostTrace(kern, load.achievable, policy)
        session.start()
        result['converged'] = _trace_until(trace, converge_cap, lambda row: row[2] >= CONVERGED, every=0.1)
        result['converge_seconds'] = round(trace.elapsed(), 2)
        result['converge_daemon_cpu_seconds'] = round(measure.own(trace.samples[-1]), 3)
        result['steady_reached'] = _trace_until(trace, trace.elapsed() + steady_cap,
                                                lambda row: policy.run.phase() in STEADY_PHASES, every=0.2)
        start = trace.elapsed()
        _trace_until(trace, start + window_seconds, every=1.0)
        result['idle'] = measure.window(trace.samples, start, trace.elapsed())
        result['sample_interval'] = measure.sample_interval([r for r in trace.samples if r[0] >= start])
        if progress:
            progress('  N=%d: converged in %.1fs, steady=%s, daemon %.3f%%, ksmd %.3f%% of a core over %ds' % (
                guests, result['converge_seconds'], result['steady_reached'], (result['idle'] or {}).get('daemon_cpu_percent', -1),
                (result['idle'] or {}).get('cpu_percent', -1), window_seconds))
        result.update(_detect(kern, policy, newcomer, detect_cap))
    finally:
        newcomer.stop()
        session.close()
        load.stop()
        kern.reset()
    return result


def _knobs(kern):
    knobs = kern.read()[2]
    return tuple(knobs.get(k) for k in ('run', 'pages_to_scan', 'sleep_millisecs'))


def _detect(kern, policy, newcomer, cap):
    """Seconds from the newcomer being ready until the daemon reacts to it (None when it did not within ``cap``)."""
    before = _knobs(kern)
    reacted = []

    def changed():
        return _knobs(kern) != before or policy.run.phase() == 'boost'
    newcomer.start()  # returns when the newcomer has filled its memory: t0, as in B3
    t0 = time.monotonic()
    early = changed()
    while not early and time.monotonic() - t0 < cap:
        if changed():
            reacted.append(time.monotonic() - t0)
            break
        time.sleep(POLL)
    detect = 0.0 if early else (reacted[0] if reacted else None)
    return {'detect_seconds': None if detect is None else round(detect, 3), 'detected_while_filling': early,
            'detect_cap': cap, 'detect_poll': POLL}


def growth(results, key):
    """How a B5 figure grows with N: ``[(N, value, value / value at the smallest N)]`` (ratio None when unknown)."""
    rows = sorted((r['guests'], _value(r, key)) for r in results)
    base = rows[0][1] if rows else None
    return [(n, v, (v / base) if v is not None and base else None) for n, v in rows]


def _value(result, key):
    if key in ('daemon_cpu_percent', 'cpu_percent'):
        return (result.get('idle') or {}).get(key)
    return result.get(key)
