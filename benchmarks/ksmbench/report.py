# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Tables (Markdown) and the plot (PNG) of a benchmark result, and the checks of "What good looks like"."""

from . import measure
from .measure import Censored, median, ratio

ORDER = ('K0', 'KA', 'KT', 'KT+P', 'KX', 'KX+Z', 'D')


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


OWN_PROCESS = ('D',)  # policies whose own process CPU is measured (and added to ksmd's)


def _total_t90(run):
    """ksmd + own-process CPU seconds to T90 (results from before the own CPU was measured: ksmd's)."""
    return run.get('total_cpu_t90', run.get('cpu_t90'))


def _total_at_cap(run):
    return run.get('total_cpu_at_cap', run.get('cpu_at_cap')) or 0.0


def b1_medians(runs):
    """Per (guests, mib, policy): medians of T50, T90, CPU to T90 (ksmd, daemon, both), CPU per GiB; censored where the
    median run was."""
    cells = {}
    for run in runs:
        cells.setdefault((run['guests'], run['mib'], run['policy']), []).append(run)
    out = {}
    for key, group in cells.items():
        caps = [r['cap'] for r in group]
        t90 = median([r['t90'] for r in group], caps)
        censored = isinstance(t90, Censored)
        own = key[2] in OWN_PROCESS
        out[key] = {
            'runs': len(group),
            't50': median([r['t50'] for r in group], caps),
            't90': t90,
            # CPU to T90 of a censored run is at least what it used until the cap
            'cpu_t90': median([r['cpu_t90'] for r in group], [r.get('cpu_at_cap') or 0.0 for r in group]),
            'daemon_cpu_t90': _own_median(group, 'daemon_cpu_at_cap') if own else None,
            'total_cpu_t90': median([_total_t90(r) for r in group], [_total_at_cap(r) for r in group]),
            'cpu_per_gib': None if censored else median([r['cpu_per_gib'] for r in group]),
            # finished runs have no fraction_at_cap: the median of the runs stopped at the cap
            'fraction_at_cap': median([r['fraction_at_cap'] for r in group if r['t90'] is None]) if censored else None,
            'median_run': _median_run(group),
        }
    return out


def _own_median(group, at_cap):
    """Median own-process CPU to T90; None when the runs did not measure it (results from before it was)."""
    if not all('daemon_cpu_t90' in r for r in group):
        return None
    return median([r['daemon_cpu_t90'] for r in group], [r.get(at_cap) or 0.0 for r in group])


def _median_run(group):
    key = [(r['t90'] is None, r['t90'] if r['t90'] is not None else r['cap']) for r in group]
    order = sorted(range(len(group)), key=lambda i: key[i])
    return group[order[(len(group) - 1) // 2]]


def _own(value, digits=2, policy=None):
    """The own-process column: '-' for policies without one, 'n/a' where D's was not measured."""
    if value is None:
        return 'n/a' if policy in OWN_PROCESS else '-'
    return fmt_number(value, digits)


def b1_table(medians, guests, mib):
    names = _ordered(p for (g, m, p) in medians if (g, m) == (guests, mib))
    row = medians.get
    kx, kxz = row((guests, mib, 'KX')), row((guests, mib, 'KX+Z'))
    lines = ['| policy | T50 | T90 | ksmd CPU-s to T90 | daemon CPU-s to T90 | ksmd+daemon CPU-s to T90 | CPU-s per GiB saved | '
             'T90 vs KX | T90 vs KX+Z | CPU to T90 vs KX | runs |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for name in names:
        cell = row((guests, mib, name))
        extra = ''
        if cell['fraction_at_cap'] is not None:
            extra = ' (%.0f%% saved at the cap)' % (100 * cell['fraction_at_cap'])
        lines.append('| %s | %s | %s%s | %s | %s | %s | %s | %s | %s | %s | %d |' % (
            name, fmt_seconds(cell['t50']), fmt_seconds(cell['t90']), extra, fmt_number(cell['cpu_t90']),
            _own(cell['daemon_cpu_t90'], 2, name), fmt_number(cell['total_cpu_t90']), fmt_number(cell['cpu_per_gib']),
            fmt_ratio(ratio(cell['t90'], kx and kx['t90'])), fmt_ratio(ratio(cell['t90'], kxz and kxz['t90'])),
            fmt_ratio(ratio(cell['total_cpu_t90'], kx and kx['total_cpu_t90'])), cell['runs']))
    return '\n'.join(lines)


def phase_cpu(run, phase, key='total_cpu_percent'):
    """A B2 phase's CPU percent of one core: ksmd + own process (``total_cpu_percent``), ksmd's, or the daemon's."""
    if not run or not run.get(phase):
        return None
    window = run[phase]
    if key == 'total_cpu_percent':
        return window.get(key, window['cpu_percent'])
    return window.get(key)


def b2_table(runs):
    by = dict((r['policy'], r) for r in runs)
    kx = by.get('KX')
    lines = ['| policy | idle: ksmd CPU % | idle: daemon CPU % | idle: saved (counters / real) | churn: ksmd CPU % | '
             'churn: daemon CPU % | churn: saved (counters / real) | idle CPU vs KX | churn CPU vs KX | '
             'saved vs KX (churn, real) |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for name in _ordered(by):
        run = by[name]
        own = name in OWN_PROCESS
        lines.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
            name, fmt_number(phase_cpu(run, 'idle', 'cpu_percent'), 3),
            _own(phase_cpu(run, 'idle', 'daemon_cpu_percent') if own else None, 3, name), _pct(run, 'idle'),
            fmt_number(phase_cpu(run, 'churn', 'cpu_percent'), 3),
            _own(phase_cpu(run, 'churn', 'daemon_cpu_percent') if own else None, 3, name), _pct(run, 'churn'),
            fmt_ratio(ratio(phase_cpu(run, 'idle'), phase_cpu(kx, 'idle'))),
            fmt_ratio(ratio(phase_cpu(run, 'churn'), phase_cpu(kx, 'churn'))),
            fmt_ratio(ratio(saved(run, 'churn'), saved(kx, 'churn')))))
    return '\n'.join(lines)


def saved(run, phase):
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
                     'daemon_cpu_t90': _own_median(group, 'daemon_cpu_at_end') if name in OWN_PROCESS else None,
                     'total_cpu_t90': median([_total_t90(r) for r in group],
                                             [r.get('total_cpu_at_end', r['cpu_at_end']) for r in group]),
                     'fraction_at_end': median([r['fraction_at_end'] for r in group])}
    return out


def b3_table(medians):
    kx, kxz = medians.get('KX'), medians.get('KX+Z')
    lines = ["| policy | newcomer's T90 | ksmd CPU-s until then | daemon CPU-s until then | T90 vs KX | T90 vs KX+Z | "
             "CPU (ksmd+daemon) vs KX | runs |", '|---|---:|---:|---:|---:|---:|---:|---:|']
    for name in _ordered(medians):
        cell = medians[name]
        extra = ''
        if isinstance(cell['t90'], Censored):
            extra = ' (%.0f%% merged at the cap)' % (100 * cell['fraction_at_end'])
        lines.append('| %s | %s%s | %s | %s | %s | %s | %s | %d |' % (
            name, fmt_seconds(cell['t90']), extra, fmt_number(cell['cpu_t90']), _own(cell['daemon_cpu_t90'], 2, name),
            fmt_ratio(ratio(cell['t90'], kx and kx['t90'])), fmt_ratio(ratio(cell['t90'], kxz and kxz['t90'])),
            fmt_ratio(ratio(cell['total_cpu_t90'], kx and kx['total_cpu_t90'])), cell['runs']))
    return '\n'.join(lines)


def b5_table(runs):
    """One row per N: the daemon's own CPU (converging, idle), ksmd's in the same idle window, newcomer detection."""
    lines = ['| N guests | converged in | daemon CPU-s to converge | idle: daemon CPU % | idle: ksmd CPU % | '
             'newcomer detected after | daemon idle CPU vs smallest N |', '|---|---:|---:|---:|---:|---:|---:|']
    base = None
    for run in sorted(runs, key=lambda r: r['guests']):
        idle = run.get('idle') or {}
        daemon = idle.get('daemon_cpu_percent')
        base = daemon if base is None else base
        detect = run.get('detect_seconds')
        lines.append('| %d | %s | %s | %s | %s | %s | %s |' % (
            run['guests'], fmt_seconds(run['converge_seconds']) + ('' if run.get('converged') else ' (not converged)'),
            fmt_number(run.get('converge_daemon_cpu_seconds')), fmt_number(daemon, 3), fmt_number(idle.get('cpu_percent'), 3),
            'not within %.0f s' % run['detect_cap'] if detect is None else fmt_seconds(detect),
            fmt_ratio(ratio(daemon, base))))
    return '\n'.join(lines)


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
        median_runs = dict((p, c['median_run']['trace']) for (g, m, p), c in b1_medians(realism_runs).items())
        panels.append(('realism: %d real TCG guests of %d MiB, saved %% of the largest plateau KX/KX+Z reached (median run)' % (
            realism_runs[0]['guests'], realism_runs[0]['mib']), median_runs))
    if b2_runs:
        panels.append(('B2 steady: idle, then churn (N=%d, G=%d MiB); real saving (Rss - Pss)' % (b2_runs[0]['guests'], b2_runs[0]['mib']),
                       dict((r['policy'], r.get('actual') or r['trace']) for r in b2_runs)))
    colours = {'K0': '#7f7f7f', 'KA': '#9467bd', 'KT': '#8c564b', 'KT+P': '#e377c2', 'KX': '#d62728', 'KX+Z': '#ff7f0e',
               'D': '#1f77b4'}
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
    fig.suptitle('pagefusiond (D) against the kernel policies: saved fraction over time (median run per policy)')
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


__all__ = ['b1_medians', 'b1_table', 'b2_table', 'b3_medians', 'b3_table', 'b5_table', 'plot', 'measure']
