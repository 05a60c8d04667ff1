# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""B1 (cold start), B2 (steady state), B3 (newcomer) and the realism run: one policy, one run each.

Every run starts and ends with the reset of BENCHMARKS.md (guests stopped, run=2, run=0, kernel defaults).
"""

import time

from pagefusion_dev.convergence import Trace

from . import kernel, measure, policies, workload

SAMPLE_SECONDS = 0.05
CONVERGED = 0.99


class CostTrace(Trace):
    """A Trace whose rows also carry the policy's own process CPU seconds (column measure.OWN; None for kernel-only
    policies): pagefusiond's CPU is counted next to ksmd's."""

    def __init__(self, kern, achievable, policy):
        Trace.__init__(self, kern, achievable)
        self.policy = policy

    def sample(self):
        row = Trace.sample(self)
        cpu = self.policy.own_cpu()
        row.append(None if cpu is None else round(cpu, 4))
        return row


def _trace_until(trace, seconds, stop_when=None, every=SAMPLE_SECONDS, progress=None, actual=None):
    """Sample every ``every`` seconds for up to ``seconds`` (since the trace's t0), or until ``stop_when(row)``.

    ``actual``: ``(list, pages_function)``: appends ``[t, pages_function()]`` at each sample (the real saving).
    """
    next_report = 5.0
    while True:
        row = trace.sample()
        if actual is not None:
            actual[0].append([row[0], actual[1]()])
        if stop_when is not None and stop_when(row):
            return True
        if row[0] >= seconds:
            return False
        if progress and row[0] >= next_report:
            progress('  %5.1fs saved %5.1f%% ksmd %.2f CPU-s' % (row[0], 100 * row[2], row[3]))
            next_report += 5.0
        time.sleep(every)


def _fast_forward(kern, load, seconds):
    """Bring a workload to the merged state with KX's knobs (for policies too slow to get there in the time budget)."""
    trace = Trace(kern, load.achievable)
    policies.MaxEffort().start(kern)
    done = _trace_until(trace, seconds, lambda row: row[2] >= CONVERGED, every=0.1)
    kern.reset_knobs_keep_merged()
    return done, trace.elapsed()


def b1(kern, policy_name, guests, mib, cap, daemon_overrides=None, progress=None, pressure=None):
    """Cold start: N guests ready, the policy starts (t0); sample until T90 (plus a tail for the plot) or ``cap``."""
    load = workload.Synthetic(guests, mib).start()
    policy = policies.make(policy_name, daemon_overrides)
    session = policies.Session(policy, kern, pressure)
    result = {'bench': 'B1', 'policy': policy_name, 'guests': guests, 'mib': mib}
    try:
        session.prepare()
        if session.pressure:
            result['pressure'] = session.pressure.describe()
        trace = CostTrace(kern, load.achievable, policy)
        session.start()
        tail = []

        def stop_when(row):
            if row[2] >= 0.9 and not tail:
                tail.append(row[0] + max(1.0, 0.25 * row[0]))
            return bool(tail) and row[0] >= tail[0]
        _trace_until(trace, cap, stop_when, progress=progress)
    finally:
        session.close()
        load.stop()
        kern.reset()
    result.update(measure.convergence_figures(trace.samples, kern.page_size, cap))
    result['achievable_pages'] = load.achievable(False)
    result['trace'] = _thin(trace.samples)
    return result


def b2(kern, policy_name, guests, mib, phase_seconds, churn_share, s_hits, converge_cap, fast_forward,
       daemon_overrides=None, progress=None):
    """Steady state: converge (the policy itself, or KX's knobs first when ``fast_forward``), then idle for
    ``phase_seconds``, then churn (each guest rewrites ``churn_share`` of its pages per second) for ``phase_seconds``."""
    churn = churn_share * mib * 1024 * 1024 / kern.page_size
    load = workload.Synthetic(guests, mib, churn_per_s=churn, s_hits=s_hits).start()
    policy = policies.make(policy_name, daemon_overrides)
    session = policies.Session(policy, kern)
    result = {'bench': 'B2', 'policy': policy_name, 'guests': guests, 'mib': mib, 'phase_seconds': phase_seconds,
              'churn_pages_per_s': round(churn), 's_hits': s_hits, 'fast_forward': fast_forward}
    try:
        if fast_forward:
            done, took = _fast_forward(kern, load, converge_cap)
            result['fast_forward_seconds'] = round(took, 2)
            result['fast_forward_converged'] = done
        session.prepare()
        trace = CostTrace(kern, load.achievable, policy)
        session.start()
        converged = _trace_until(trace, converge_cap, lambda row: row[2] >= CONVERGED, every=0.1)
        result['converged'] = converged
        result['converge_seconds'] = round(trace.elapsed(), 2)
        start = trace.elapsed()
        if progress:
            progress('  converged=%s after %.1fs; idle phase %ds' % (converged, start, phase_seconds))
        actual = []
        _trace_until(trace, start + phase_seconds, every=1.0, actual=(actual, load.actual_saved))
        middle = trace.elapsed()
        load.set_churn(True)
        if progress:
            progress('  churn phase %ds (%d pages/s per guest)' % (phase_seconds, churn))
        _trace_until(trace, middle + phase_seconds, every=1.0, actual=(actual, load.actual_saved))
        end = trace.elapsed()
        load.set_churn(False)
    finally:
        session.close()
        load.stop()
        kern.reset()
    result['idle'] = measure.window(trace.samples, start, middle)
    result['churn'] = measure.window(trace.samples, middle, end)
    result['sample_interval'] = {'converge': measure.sample_interval([r for r in trace.samples if r[0] <= start]),
                                 'phases': measure.sample_interval([r for r in trace.samples if r[0] >= start])}
    # the saving that is really there (Rss - Pss), next to what ksmd's counters say
    achievable = float(load.achievable(True))
    rows = [[t, pages, pages / achievable, 0.0] for t, pages in actual]
    for phase, (a, b) in (('idle', (start, middle)), ('churn', (middle, end))):
        got = measure.window(rows, a, b)
        if result[phase] is not None and got is not None:
            result[phase]['actual_saved_fraction'] = got['saved_fraction']
    result['actual'] = [[t, round(pages / achievable, 4)] for t, pages in actual]
    result['achievable_pages'] = load.achievable(False)
    result['trace'] = _thin(trace.samples, 2.0, log_spaced=False)
    return result


def b3(kern, policy_name, mib, cap, settle_seconds, converge_cap, fast_forward, daemon_overrides=None, progress=None):
    """A newcomer joins: three guests merged and steady, a fourth starts (t0 when it has filled its memory);
    seconds until the newcomer's own S+Z pages are 90% merged (its ksm_stat) and ksmd CPU seconds until then."""
    load = workload.Synthetic(3, mib).start()
    newcomer = workload.Synthetic(1, mib, first_guest=3)
    policy = policies.make(policy_name, daemon_overrides)
    session = policies.Session(policy, kern)
    result = {'bench': 'B3', 'policy': policy_name, 'guests': 3, 'mib': mib, 'fast_forward': fast_forward, 'cap': cap}
    try:
        if fast_forward:
            _fast_forward(kern, load, converge_cap)
        session.prepare()
        trace = CostTrace(kern, load.achievable, policy)
        session.start()
        result['converged'] = _trace_until(trace, converge_cap, lambda row: row[2] >= CONVERGED, every=0.1)
        workload.wait(settle_seconds)
        newcomer.start()
        own = float(newcomer.own_mergeable())
        pid = newcomer.pids[0]
        cpu0, own0 = kern.cpu(), policy.own_cpu() or 0.0
        t0 = time.monotonic()
        samples = []
        while True:
            stat = kernel.process_ksm(pid) or {}
            merged = (stat.get('merging_pages') or 0) + (stat.get('zero_pages') or 0)
            now = time.monotonic() - t0
            daemon = (policy.own_cpu() or 0.0) - own0
            samples.append([round(now, 3), merged, merged / own, round(kern.cpu() - cpu0, 4), None, None, None, round(daemon, 4)])
            if merged >= 0.9 * own or now >= cap:
                break
            time.sleep(SAMPLE_SECONDS)
    finally:
        newcomer.stop()
        session.close()
        load.stop()
        kern.reset()
    result.update(newcomer_figures(samples))
    result['newcomer_pages'] = int(own)
    return result


def newcomer_figures(samples):
    """B3's figures from the newcomer's samples (t, merged, fraction, ksmd CPU, ..., own CPU): T90 and the CPU until then."""
    hit = measure.crossing(samples, 0.9)
    last = samples[-1]
    out = {'t90': None, 'cpu_t90': None, 'daemon_cpu_t90': None, 'total_cpu_t90': None,
           'fraction_at_end': last[2], 'cpu_at_end': last[3], 'daemon_cpu_at_end': measure.own(last),
           'total_cpu_at_end': last[3] + measure.own(last), 'sample_interval': measure.sample_interval(samples)}
    if hit is not None:
        daemon = measure.own_at(samples, hit[0])
        out.update(t90=hit[0], cpu_t90=hit[1], daemon_cpu_t90=daemon, total_cpu_t90=hit[1] + daemon)
    return out


def _thin(samples, every=0.05, log_spaced=True):
    """Samples for the JSON and the plot (t, fraction, cpu): one every ``every`` s (or 5 % of t when ``log_spaced``), plus the last."""
    kept = []
    next_t = 0.0
    for row in samples:
        if row[0] >= next_t:
            kept.append([row[0], round(row[2], 4), row[3]])
            next_t = row[0] + (max(every, 0.05 * row[0]) if log_spaced else every)
    if samples and (not kept or kept[-1][0] != samples[-1][0]):
        kept.append([samples[-1][0], round(samples[-1][2], 4), samples[-1][3]])
    return kept
