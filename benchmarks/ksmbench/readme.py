# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The README's benchmark figures, generated from the results (docs/benchmarks.json), never typed by hand.

README.md holds a block between BEGIN and END; :func:`update` rewrites it, and a unit test checks that the block in
the tree matches docs/benchmarks.json.
"""

from . import checks, report
from .measure import ratio
from .report import fmt_ratio, fmt_seconds, phase_cpu, saved

BEGIN = '<!-- ksm-bench figures: begin (written by benchmarks/ksm_bench.py from docs/benchmarks.json; do not edit) -->'
END = '<!-- ksm-bench figures: end -->'


def _pct(value, digits=1):
    return 'n/a' if value is None else '%.*f %%' % (digits, value)


def _b1(result):
    medians = report.b1_medians(result['b1'])
    parts = []
    for guests, mib in checks.sizes_of(result):
        d, kxz, kx = (medians.get((guests, mib, p)) for p in ('D', 'KX+Z', 'KX'))
        if d:
            parts.append('%s for %d x %d MiB (%s KX+Z\'s time, %s KX\'s CPU)' % (
                fmt_seconds(d['t90']), guests, mib, fmt_ratio(ratio(d['t90'], kxz and kxz['t90'])),
                fmt_ratio(ratio(d['total_cpu_t90'], kx and kx['cpu_t90']))))
    return ('Cold start (B1): pagefusiond reaches 90 %% of the achievable saving in %s; its CPU is ksmd\'s plus its own.'
            % '; '.join(parts)) if parts else None


def _b2(result):
    by = dict((r['policy'], r) for r in result['b2'])
    d, kx = by.get('D'), by.get('KX')
    if not d:
        return None
    real = ratio(saved(d, 'churn'), saved(kx, 'churn'))
    return ('Steady state (B2): ksmd + daemon use %s of a core idle (ksmd %s, daemon %s) and %s under churn, where '
            'pagefusiond keeps %s of the real saving (Rss - Pss) that KSM at full effort keeps.' % (
                _pct(phase_cpu(d, 'idle'), 2), _pct(phase_cpu(d, 'idle', 'cpu_percent'), 2),
                _pct(phase_cpu(d, 'idle', 'daemon_cpu_percent'), 2), _pct(phase_cpu(d, 'churn'), 2),
                'n/a' if real is None else '%.1f %%' % (100 * real[1])))


def _newcomer_and_real(result):
    parts = []
    b3 = report.b3_medians(result['b3'])
    if 'D' in b3:
        parts.append("a newcomer's pages are merged in %s (%s KX+Z's time)" % (
            fmt_seconds(b3['D']['t90']), fmt_ratio(ratio(b3['D']['t90'], b3.get('KX+Z') and b3['KX+Z']['t90']))))
    if result.get('realism'):
        real = dict((p, c) for (g, m, p), c in report.b1_medians(result['realism']).items())
        if 'D' in real:
            parts.append('with %d real TCG guests pagefusiond takes %s KX+Z\'s time' % (
                result['realism'][0]['guests'], fmt_ratio(ratio(real['D']['t90'], real.get('KX+Z') and real['KX+Z']['t90']))))
    return (parts[0][0].upper() + '; '.join(parts)[1:] + '.') if parts else None


def _b5(result):
    runs = sorted(result.get('b5') or [], key=lambda r: r['guests'])
    if not runs:
        return None
    return 'Scale (B5): the daemon\'s own idle CPU is %s.' % ', '.join(
        '%s at N=%d' % (_pct((r.get('idle') or {}).get('daemon_cpu_percent'), 3), r['guests']) for r in runs)


def block(result):
    """The Markdown text between the markers (without them): one bullet per part, then the targets."""
    met = checks.checks(result)
    lines = [text for text in (_b1(result), _b2(result), _newcomer_and_real(result), _b5(result)) if text]
    lines.append('Targets of BENCHMARKS.md met: %d of %d (%d not met, %d unknown); run %s, %s profile, %.0f minutes.' % (
        sum(1 for ok, t in met if ok), len(met), sum(1 for ok, t in met if ok is False), sum(1 for ok, t in met if ok is None),
        result['started'][:10], result['profile'], result.get('wall_seconds', {}).get('total', 0) / 60.0))
    return '\n'.join('- ' + line for line in lines)


def current(readme_text):
    """The block now in the README (between the markers), or None when the markers are missing."""
    if BEGIN not in readme_text or END not in readme_text:
        return None
    return readme_text.split(BEGIN, 1)[1].split(END, 1)[0].strip('\n')


def update(readme_text, result):
    """``readme_text`` with the block rewritten from ``result``; raises ValueError when the markers are missing."""
    if current(readme_text) is None:
        raise ValueError('README.md has no %s ... %s block: add the two marker lines where the figures go' % (BEGIN, END))
    head, rest = readme_text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return head + BEGIN + '\n' + block(result) + '\n' + END + tail
