# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Tables (Markdown) and the plot (PNG) of a benchmark result, and the checks of "What good looks like"."""

from . import measure
from .measure import Censored, median, ratio

ORDER = ('K0', 'KA', 'KT', 'KT+P', 'KX', 'D')


def fmt_seconds(value):
    if value is None:
        return 'n/a'
    if isinstance(value, Censored):
        return '> %.0f s' % float(value)
    return '%.2f s' % value if value < 10 else '%.1f s' % value


def fmt_number(value, digits=2):
    if value is None:
        return 'n/a'
    if isinstance(value, Censored):
        return '> %.*f' % (digits, float(value))
    return '%.*f' % (digits, value)


def fmt_ratio(pair):
    if pair is None:
        return 'n/a'
    sign, value = pair
    text = ('%.2fx' % value) if value < 10 else ('%.0fx' % value)
    return text if sign == '=' else '%s %s' % (sign, text)


def _ordered(names):
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def b1_medians(runs):
    """Per (guests, mib, policy): medians of T50, T90, CPU to T90, CPU per GiB; censored where the median run was."""
    cells = {}
    for run in runs:
        cells.setdefault((run['guests'], run['mib'], run['policy']), []).append(run)
    out = {}
    for key, group in cells.items():
        caps = [r['cap'] for r in group]
        t90 = median([r['t90'] for r in group], caps)
        censored = isinstance(t90, Censored)
        out[key] = {
            'runs': len(group),
            't50': median([r['t50'] for r in group], caps),
            't90': t90,
            # CPU to T90 of a censored run is at least what it used until the cap
            'cpu_t90': median([r['cpu_t90'] for r in group], [r.get('cpu_at_cap') or 0.0 for r in group]),
            'cpu_per_gib': None if censored else median([r['cpu_per_gib'] for r in group]),
            # finished runs have no fraction_at_cap: the median of the runs stopped at the cap
            'fraction_at_cap': median([r['fraction_at_cap'] for r in group if r['t90'] is None]) if censored else None,
            'median_run': _median_run(group),
        }
    return out


def _median_run(group):
    key = [(r['t90'] is None, r['t90'] if r['t90'] is not None else r['cap']) for r in group]
    order = sorted(range(len(group)), key=lambda i: key[i])
    return group[order[(len(group) - 1) // 2]]


def b1_table(medians, guests, mib):
    names = _ordered(p for (g, m, p) in medians if (g, m) == (guests, mib))
    row = medians.get
    kx, k0 = row((guests, mib, 'KX')), row((guests, mib, 'K0'))
    lines = ['| policy | T50 | T90 | ksmd CPU-s to T90 | CPU-s per GiB saved | T90 vs KX | T90 vs K0 | CPU to T90 vs KX | '
             'CPU to T90 vs K0 | runs |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for name in names:
        cell = row((guests, mib, name))
        extra = ''
        if cell['fraction_at_cap'] is not None:
            extra = ' (%.0f%% saved at the cap)' % (100 * cell['fraction_at_cap'])
        lines.append('| %s | %s | %s%s | %s | %s | %s | %s | %s | %s | %d |' % (
            name, fmt_seconds(cell['t50']), fmt_seconds(cell['t90']), extra, fmt_number(cell['cpu_t90']),
            fmt_number(cell['cpu_per_gib']),
            fmt_ratio(ratio(cell['t90'], kx and kx['t90'])), fmt_ratio(ratio(cell['t90'], k0 and k0['t90'])),
            fmt_ratio(ratio(cell['cpu_t90'], kx and kx['cpu_t90'])), fmt_ratio(ratio(cell['cpu_t90'], k0 and k0['cpu_t90'])),
            cell['runs']))
    return '\n'.join(lines)


def b2_table(runs):
    by = dict((r['policy'], r) for r in runs)
    kx, k0 = by.get('KX'), by.get('K0')

    def cpu(run, phase):
        return run[phase]['cpu_percent'] if run and run.get(phase) else None

    lines = ['| policy | idle: ksmd CPU % | idle: saved (counters / real) | churn: ksmd CPU % | churn: saved (counters / real) | '
             'idle CPU vs KX | idle CPU vs K0 | churn CPU vs KX | churn CPU vs K0 | saved vs KX (churn, real) |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for name in _ordered(by):
        run = by[name]
        lines.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
            name, fmt_number(cpu(run, 'idle'), 3), _pct(run, 'idle'), fmt_number(cpu(run, 'churn'), 3), _pct(run, 'churn'),
            fmt_ratio(ratio(cpu(run, 'idle'), cpu(kx, 'idle'))), fmt_ratio(ratio(cpu(run, 'idle'), cpu(k0, 'idle'))),
            fmt_ratio(ratio(cpu(run, 'churn'), cpu(kx, 'churn'))), fmt_ratio(ratio(cpu(run, 'churn'), cpu(k0, 'churn'))),
            fmt_ratio(ratio(_saved(run, 'churn'), _saved(kx, 'churn')))))
    return '\n'.join(lines)


def _saved(run, phase):
    """The real saving (Rss - Pss) of a B2 phase when it was measured, else what ksmd's counters said."""
    if not run or not run.get(phase):
        return None
    return run[phase].get('actual_saved_fraction', run[phase]['saved_fraction'])


def _pct(run, phase):
    if not run or not run.get(phase):
        return 'n/a'
    text = '%.1f%%' % (100 * run[phase]['saved_fraction'])
    if 'actual_saved_fraction' in run[phase]:
        text += ' / %.1f%%' % (100 * run[phase]['actual_saved_fraction'])
    return text


def b3_medians(runs):
    cells = {}
    for run in runs:
        cells.setdefault(run['policy'], []).append(run)
    out = {}
    for name, group in cells.items():
        caps = [r['cap'] for r in group]
        out[name] = {'runs': len(group), 't90': median([r['t90'] for r in group], caps),
                     'cpu_t90': median([r['cpu_t90'] for r in group], [r['cpu_at_end'] for r in group]),
                     'fraction_at_end': median([r['fraction_at_end'] for r in group])}
    return out


def b3_table(medians):
    kx, k0 = medians.get('KX'), medians.get('K0')
    lines = ["| policy | newcomer's T90 | ksmd CPU-s until then | T90 vs KX | T90 vs K0 | CPU vs KX | CPU vs K0 | runs |",
             '|---|---:|---:|---:|---:|---:|---:|---:|']
    for name in _ordered(medians):
        cell = medians[name]
        extra = ''
        if isinstance(cell['t90'], Censored):
            extra = ' (%.0f%% merged at the cap)' % (100 * cell['fraction_at_end'])
        lines.append('| %s | %s%s | %s | %s | %s | %s | %s | %d |' % (
            name, fmt_seconds(cell['t90']), extra, fmt_number(cell['cpu_t90']),
            fmt_ratio(ratio(cell['t90'], kx and kx['t90'])), fmt_ratio(ratio(cell['t90'], k0 and k0['t90'])),
            fmt_ratio(ratio(cell['cpu_t90'], kx and kx['cpu_t90'])), fmt_ratio(ratio(cell['cpu_t90'], k0 and k0['cpu_t90'])),
            cell['runs']))
    return '\n'.join(lines)


def _at_most(r, limit):
    """True/False when the ratio ``r`` (a measure.ratio pair) is decided to be <= ``limit``, None when a bound leaves it open."""
    if r is None:
        return None
    sign, value = r
    if sign == '<':
        return True if value <= limit else None
    if sign == '>':
        return False if value >= limit else None
    return value <= limit


def _at_least(r, limit):
    """True/False when ``r`` is decided to be >= ``limit``, None when open. A '>' bound within 0.5% of the limit
    counts (slow policies are capped at cap_factor times D's median T90, so a capped median gives that bound)."""
    if r is None:
        return None
    sign, value = r
    if sign == '>':
        return True if value >= limit * 0.995 else None
    if sign == '<':
        return False if value <= limit else None
    return value >= limit


def checks(b1, b2_runs, b1_sizes):
    """BENCHMARKS.md "What good looks like", one line each: (ok or None when unknown, text)."""
    out = []
    for guests, mib in b1_sizes:
        d, kx = b1.get((guests, mib, 'D')), b1.get((guests, mib, 'KX'))
        if d and kx:
            r = ratio(d['t90'], kx['t90'])
            ok = _at_most(r, 1.5)
            out.append((ok, 'N=%d G=%d MiB: D reaches T90 within 1.5x of KX: D/KX = %s' % (guests, mib, fmt_ratio(r))))
        for slow in ('K0', 'KA', 'KT', 'KT+P'):
            cell = b1.get((guests, mib, slow))
            if d and cell:
                r = ratio(cell['t90'], d['t90'])
                ok = _at_least(r, 10)
                out.append((ok, 'N=%d G=%d MiB: D reaches T90 at least 10x sooner than %s: %s/D = %s' % (
                    guests, mib, slow, slow, fmt_ratio(r))))
    by = dict((r['policy'], r) for r in b2_runs)
    if 'D' in by and 'KA' in by:
        for phase in ('idle', 'churn'):
            d, ka = by['D'].get(phase), by['KA'].get(phase)
            if d and ka:
                out.append((d['cpu_percent'] <= ka['cpu_percent'] * 1.05 + 0.01,
                            'B2 %s: D uses no more ksmd CPU than KA: %.3f%% vs %.3f%%' % (phase, d['cpu_percent'], ka['cpu_percent'])))
    if 'D' in by and 'KX' in by and b1_sizes:
        size = b1_sizes[0]
        d1, kx1 = b1.get(size + ('D',)), b1.get(size + ('KX',))
        if d1 and kx1 and all(by[p].get('idle') and by[p].get('churn') for p in ('D', 'KX')):
            total = dict((p, float(c['cpu_t90']) + by[p]['idle']['cpu_seconds'] + by[p]['churn']['cpu_seconds'])
                         for p, c in (('D', d1), ('KX', kx1)))
            share = total['D'] / total['KX'] if total['KX'] else None
            ok = share is not None and share <= 0.1
            # a censored CPU to T90 is a lower bound: D's can undo "met", KX's can undo "missed"
            if (ok and isinstance(d1['cpu_t90'], Censored)) or (not ok and share is not None and isinstance(kx1['cpu_t90'], Censored)):
                ok = None
            out.append((ok,
                        'B1+B2 (N=%d G=%d MiB): D spends a small fraction of KX\'s ksmd CPU: %.1f vs %.1f CPU-s (%.1f%%)' % (
                            size[0], size[1], total['D'], total['KX'], 100 * (share or 0))))
    return out


def plot(path, b1_runs, b1_sizes, realism_runs=None, b2_runs=None, long_runs=None):
    """A PNG: saved fraction of the achievable over time, one line per policy (the median run), one panel per size."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    medians = b1_medians(b1_runs)
    panels = [('B1 cold start, N=%d, G=%d MiB' % size, dict((p, medians[size + (p,)]['median_run']['trace'])
                                                            for (g, m, p) in medians if (g, m) == size)) for size in b1_sizes]
    if long_runs:
        size = (long_runs[0]['guests'], long_runs[0]['mib'])
        series = dict((r['policy'], r['trace']) for r in long_runs)
        series.update((p, medians[size + (p,)]['median_run']['trace']) for p in ('KX', 'D') if size + (p,) in medians)
        panels.append(('B1, N=%d, G=%d MiB: slow policies run to the end (one run each)' % size, series))
    if realism_runs:
        panels.append(('realism: %d TCG guests' % realism_runs[0]['guests'], dict((r['policy'], r['trace']) for r in realism_runs)))
    if b2_runs:
        panels.append(('B2 steady: idle, then churn (N=%d, G=%d MiB); real saving (Rss - Pss)' % (b2_runs[0]['guests'], b2_runs[0]['mib']),
                       dict((r['policy'], r.get('actual') or r['trace']) for r in b2_runs)))
    colours = {'K0': '#7f7f7f', 'KA': '#9467bd', 'KT': '#8c564b', 'KT+P': '#e377c2', 'KX': '#d62728', 'D': '#1f77b4'}
    columns = 1 if len(panels) == 1 else 2
    rows = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns + (1 if columns == 1 else 0), 4.2 * rows), squeeze=False)
    for index, (title, series) in enumerate(panels):
        axis = axes[index // columns][index % columns]
        steady = title.startswith('B2')
        for name in _ordered(series):
            points = [p for p in series[name] if steady or p[0] > 0]
            if not points:
                continue
            axis.plot([p[0] for p in points], [100 * p[1] for p in points], label=name, color=colours.get(name),
                      linewidth=2.2 if name == 'D' else 1.4)
        if not steady:
            axis.set_xscale('log')
            axis.set_xlim(left=0.1)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel('seconds since t0' + ('' if steady else ' (log scale)'))
        axis.set_ylabel('saved, % of achievable')
        axis.set_ylim(0, 105)
        axis.grid(True, which='both', alpha=0.3)
        axis.legend(fontsize=8, loc='upper left')
    for index in range(len(panels), rows * columns):
        axes[index // columns][index % columns].axis('off')
    fig.suptitle('pagefusiond (D) against K0, KA, KT and KX: saved fraction over time (median run per policy)')
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


__all__ = ['b1_medians', 'b1_table', 'b2_table', 'b3_medians', 'b3_table', 'checks', 'plot', 'measure']
