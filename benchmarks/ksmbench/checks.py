# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""BENCHMARKS.md "What good looks like" (raised list), exactly as written: no slack on the limits.

Each check is ``(ok, text)``: ok True (met), False (not met) or None (unknown: not measured, or a censored figure
leaves it open). D's CPU is always ksmd's plus the daemon's own.
"""

from .measure import Censored, ratio
from .report import b1_medians, b3_medians, fmt_number, fmt_ratio, phase_cpu, saved

RUN_LIMIT_SECONDS = 30 * 60


def le(value, limit):
    """value <= limit, exactly; only floating-point noise (0.2 + 0.1 > 0.3) is rounded away, at 1e-9."""
    return round(value - limit, 9) <= 0


def at_most(r, limit):
    """Whether the ratio pair ``r`` is <= ``limit``: True/False when decided, None when a bound leaves it open."""
    if r is None:
        return None
    sign, value = r
    if sign == '<':
        return True if le(value, limit) else None
    if sign == '>':
        return False if round(value - limit, 9) >= 0 else None  # more than a bound at or over the limit
    return le(value, limit)


def _b1(b1, sizes):
    out = []
    for guests, mib in sizes:
        d, kx, kxz = (b1.get((guests, mib, p)) for p in ('D', 'KX', 'KX+Z'))
        where = 'B1 N=%d G=%d MiB' % (guests, mib)
        if not d:
            continue
        r = ratio(d['t90'], kxz and kxz['t90'])
        out.append((at_most(r, 1.0), "%s: D's T90 no more than KX+Z's: %s vs %s (D/KX+Z = %s)" % (
            where, _s(d['t90']), _s(kxz and kxz['t90']), fmt_ratio(r))))
        r = ratio(d['total_cpu_t90'], kx and kx['cpu_t90'])
        text = "%s: CPU-seconds to T90 no more than 1.1x KX's: D %s (ksmd %s + daemon %s) vs KX %s (D/KX = %s)" % (
            where, fmt_number(d['total_cpu_t90']), fmt_number(d['cpu_t90']), fmt_number(d['daemon_cpu_t90']),
            fmt_number(kx and kx['cpu_t90']), fmt_ratio(r))
        out.append((unmeasured(at_most(r, 1.1), d['daemon_cpu_t90']), text))
    return out


def unmeasured(ok, daemon):
    """A CPU verdict when the daemon's own CPU was not measured: "not met" stands (ksmd alone is over), "met" is unknown."""
    return ok if daemon is not None or ok is False else None


def _s(value):
    return 'n/a' if value is None else ('> %.2f s' % float(value) if isinstance(value, Censored) else '%.2f s' % value)


def _b2(runs):
    by = dict((r['policy'], r) for r in runs)
    d, kx = by.get('D'), by.get('KX')
    out = []
    idle, daemon = phase_cpu(d, 'idle'), phase_cpu(d, 'idle', 'daemon_cpu_percent')
    text = 'B2 idle: ksmd + daemon at most 0.3%% of one core: %s%% (ksmd %s%% + daemon %s%%)' % (
        fmt_number(idle, 3), fmt_number(phase_cpu(d, 'idle', 'cpu_percent'), 3), fmt_number(daemon, 3))
    out.append((None if idle is None else unmeasured(le(idle, 0.3), daemon), text))
    real = ratio(_real(d), _real(kx))
    churn = phase_cpu(d, 'churn')
    ok = None
    if real is not None and churn is not None:
        ok = le(0.99, real[1]) and unmeasured(le(churn, 2.0), phase_cpu(d, 'churn', 'daemon_cpu_percent'))
    text = ("B2 churn: real saving (Rss - Pss) at least 99%% of KX's with ksmd + daemon at most 2%% of one core: "
            "%s of KX's (D %s, KX %s), ksmd + daemon %s%% (ksmd %s%% + daemon %s%%)" % (
                'n/a' if real is None else '%.1f%%' % (100 * real[1]), _p(_real(d)), _p(_real(kx)), fmt_number(churn, 3),
                fmt_number(phase_cpu(d, 'churn', 'cpu_percent'), 3), fmt_number(phase_cpu(d, 'churn', 'daemon_cpu_percent'), 3)))
    out.append((ok, text))
    return out


def _real(run):
    """The measured real saving of the churn phase; None when only ksmd's counters are there."""
    if not run or not run.get('churn') or 'actual_saved_fraction' not in run['churn']:
        return None
    return saved(run, 'churn')


def _p(value):
    return 'n/a' if value is None else '%.1f%%' % (100 * value)


def _within_kxz(label, d, kxz):
    r = ratio(d and d['t90'], kxz and kxz['t90'])
    return (at_most(r, 1.15), "%s: D's T90 within 1.15x of KX+Z's: %s vs %s (D/KX+Z = %s)" % (
        label, _s(d and d['t90']), _s(kxz and kxz['t90']), fmt_ratio(r)))


def _b4(summary):
    """B4 runs in its own harness (benchmarks/guest_coop.py); its (d) figure is copied in when its results are there."""
    text = 'B4 (real Debian guests, (d) gives back or merges at least 90% of the freed memory within 60 s)'
    if not summary or summary.get('share') is None:
        return None, text + ': not measured here (benchmarks/guest_coop.py, docs/benchmarks-b4.md)'
    ok = le(0.9, summary['share']) and le(summary['seconds'], 60)
    return ok, '%s: %.1f%% after %d s (%s)' % (text, 100 * summary['share'], summary['seconds'], summary['source'])


def _b5(runs):
    big = [r for r in runs if r['guests'] == 128]
    idle = (big[0].get('idle') or {}).get('daemon_cpu_percent') if big else None
    return (None if idle is None else not le(0.1, idle),
            "B5: the daemon's own idle CPU under 0.1%% of a core at N=128: %s" % ('not measured' if idle is None else '%.3f%%' % idle))


def checks(result):
    """Every target of the raised list, in BENCHMARKS.md's order."""
    sizes = sizes_of(result)
    out = _b1(b1_medians(result['b1']), sizes) if result['b1'] else [(None, 'B1: not run')]
    out += _b2(result['b2']) if result['b2'] else [(None, 'B2: not run')]
    b3 = b3_medians(result['b3'])
    out.append(_within_kxz('B3 newcomer', b3.get('D'), b3.get('KX+Z')) if result['b3'] else (None, 'B3: not run'))
    if result.get('realism'):
        real = dict((p, c) for (g, m, p), c in b1_medians(result['realism']).items())
        out.append(_within_kxz('Realism (real TCG guests)', real.get('D'), real.get('KX+Z')))
    else:
        out.append((None, 'Realism: not run'))
    out.append(_b4(result.get('b4')))
    out.append(_b5(result['b5']) if result.get('b5') else (None, 'B5: not run'))
    out.append(_wall(result))
    return out


def _wall(result):
    total = result.get('wall_seconds', {}).get('total')
    text = 'The whole run fits in 30 minutes at its default settings'
    if total is None or result.get('profile') != 'default':
        return None, '%s: not measured (%s profile)' % (text, result.get('profile'))
    sessions = len(result.get('runs') or ()) > 1
    return total <= RUN_LIMIT_SECONDS, '%s: %.1f min%s' % (text, total / 60.0, ' (sum over the merged sessions)' if sessions else '')


def sizes_of(result):
    """B1's sizes in the order they ran (from the runs, so merged sessions cannot disagree with the settings)."""
    sizes = []
    for run in result['b1']:
        size = (run['guests'], run['mib'])
        if size not in sizes:
            sizes.append(size)
    return sizes
