# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""docs/benchmarks.md from a benchmark result: machine, method, the tables, the checks, the plot."""

from . import checks, report
from .measure import ratio
from .report import fmt_ratio

KEEP_MARKER = '<!-- hand-written below: ksm_bench.py keeps everything after this line -->'


def _machine(info):
    return ('%s, %s cores, %s GiB, kernel %s, %s%s; load average before the start %s' % (
        info.get('cpu'), info.get('cores'), info.get('memory_gib'), info.get('kernel'), info.get('os'),
        ' (a %s virtual machine)' % info['hypervisor'] if info.get('hypervisor') and info['hypervisor'] != 'none' else '',
        ', '.join('%.2f' % x for x in info.get('load_before', ()))))


def _interval(value):
    return 'n/a' if value is None else '%.0f ms' % (1000 * value) if value < 1 else '%.2f s' % value


def _median_interval(runs, key='sample_interval'):
    values = sorted(r[key] for r in runs if isinstance(r.get(key), (int, float)))
    return values[(len(values) - 1) // 2] if values else None


def _sessions(result):
    runs = result.get('runs') or ()
    if len(runs) < 2:
        return []
    lines = ['Run in %d sessions (`--merge`); the machine and settings above are the first session\'s:' % len(runs), '']
    for run in runs:
        settings = run.get('settings') or {}
        lines.append('- %s from %s to %s%s%s' % (
            ', '.join(run['parts']), run['started'], run.get('finished'),
            '; on: %s' % _machine(run['machine']) if run.get('machine') else '',
            '; settings: %s' % ', '.join('%s=%s' % (k, settings[k]) for k in sorted(settings)) if settings else ''))
    return lines + ['']


def _head(result):
    s = result['settings']
    wall = result['wall_seconds']
    lines = ['# pagefusiond benchmark results', '',
             '<!-- written by benchmarks/ksm_bench.py; do not edit by hand: run `./dev bench` -->', '',
             'Run %s to %s, %s profile, on: %s.' % (result['started'], result.get('finished'), result['profile'],
                                                    _machine(result['machine'])), '',
             'Wall time: %s.' % ', '.join('%s %.1f min' % (k, v / 60.0) for k, v in sorted(wall.items())), '']
    lines += _sessions(result)
    lines += ['## Policies', '']
    for name in report.ORDER:
        if name in result['policies']:
            lines.append('- **%s**: %s' % (name, result['policies'][name]))
    if result.get('daemon_defaults_overridden'):
        lines += ['', '**D ran with overrides of its defaults:** %s' % result['daemon_defaults_overridden']]
    lines += ['', '## Method', '',
              'Synthetic guests (devtools/pagefusion_dev/synthetic_guests.py) follow BENCHMARKS.md: 45% S pages shared by all guests, '
              '25% zero pages, 25% unique, 5% volatile; the achievable saving is exact. Saved = pages_sharing + '
              'ksm_zero_pages; ksmd CPU from /proc/<ksmd>/schedstat. **D\'s CPU is ksmd\'s plus the daemon\'s own** '
              '(utime+stime of its process and its children, /proc/<pid>/stat, clock ticks of 10 ms): both are shown, and '
              'their sum is what every comparison and check of D uses. Crossings are interpolated between samples; each '
              'section gives the sampling interval the runs really had (the median time between samples). Every run starts '
              'from the reset: guests stopped, run=2, run=0, kernel defaults. KX+Z is KX with use_zero_pages=1, as D sets '
              'it: it shows how much of D\'s lead over KX is the zero-page knob alone. With use_zero_pages=0 the zero pages '
              'cannot all collapse into one KSM page as BENCHMARKS.md\'s formula assumes: max_page_sharing (256) caps the '
              'sharers of a KSM page, so KX and the other K policies top out about 0.2% below the achievable.',
              '',
              '%d runs a cell for D, KX and KX+Z (the median is reported); %d for the slow policies (K0, KA, KT, KT+P), at '
              '%s. Slow policies run up to a cap of %gx D\'s median T90 at the same size (at least %.0f s, at most %.0f s); '
              'a run stopped at the cap counts as not reached, shown as "> cap", and once more than half of a cell\'s runs '
              'are capped the rest are skipped (the "runs" column). Ratios with a censored side are bounds (< or >).' % (
                  s['repeats'], s.get('slow_repeats', s['repeats']), _slow_sizes(s), s['cap_factor'], s['min_cap'], s['max_cap']),
              '',
              'KT is Debian\'s ksmtuned package as its units start it (`ksmctl start`, i.e. run=1 with the kernel defaults, '
              'then `ksmtuned` with the shipped /etc/ksmtuned.conf); its own shell process\'s CPU is not counted. KT+P adds '
              'memory pressure as ksmtuned sees it.', '']
    return lines


def _slow_sizes(settings):
    """Where the slow policies ran: ``slow_sizes`` 'first' (the first B1 size) or 'all' (older results: all)."""
    if settings.get('slow_sizes') == 'first' and settings.get('sizes'):
        return 'N=%d G=%d MiB only' % tuple(settings['sizes'][0])
    return 'every size'


def _b1(result, sizes, medians):
    lines = ['## B1: cold start', '',
             'Sampled every %s (median interval; target 50 ms).' % _interval(_median_interval(result['b1'])), '']
    for guests, mib in sizes:
        lines += ['### N=%d guests, G=%d MiB' % (guests, mib), '', report.b1_table(medians, guests, mib), '']
    if result.get('b1long'):
        size = (result['b1long'][0]['guests'], result['b1long'][0]['mib'])
        runs = list(result['b1long']) + [r for r in result['b1'] if (r['guests'], r['mib']) == size and r['policy'] in ('KX', 'D')]
        long_medians = report.b1_medians(runs)
        lines += ['### N=%d guests, G=%d MiB: the slow policies run to the end' % size, '',
                  'One run of each slow policy up to %.0f s, next to the D and KX runs of the table above.'
                  % result['b1long'][0]['cap'], '', report.b1_table(long_medians, size[0], size[1]), '']
        d = long_medians.get(size + ('D',))
        if d:
            slow = [n for n in report.ORDER if n not in ('D', 'KX') and size + (n,) in long_medians]
            pairs = ['%s/D = %s' % (n, fmt_ratio(ratio(long_medians[size + (n,)]['t90'], d['t90']))) for n in slow]
            lines += ["T90 against D's: %s." % ', '.join(pairs), '']
    return lines


def _b2(result):
    b2 = result['b2'][0]
    intervals = [r.get('sample_interval') or {} for r in result['b2']]
    phases = _median_interval(intervals, 'phases')
    return ['## B2: steady state', '',
            'N=%d, G=%d MiB. After convergence (saved >= 99%% of achievable): %d s idle, then %d s of churn: each guest '
            'rewrites %d pages/s (1%% of G), %d%% of the writes land on S pages (only the sharing breaks), the rest put random '
            'data into V pages. Policies slower than KX start from the merged state KX\'s knobs reach. "saved" is what ksmd\'s '
            'counters say (pages_sharing + ksm_zero_pages) and, after the slash, the real saving from the guests\' Rss - Pss '
            '(smaps, read once per sample). Sampled every %s during the phases (median interval; target 1 s, the smaps '
            'walk adds to it) and every %s while converging. CPU ratios compare ksmd + daemon.' % (
                b2['guests'], b2['mib'], b2['phase_seconds'], b2['phase_seconds'], b2['churn_pages_per_s'],
                round(100 * b2['s_hits']), _interval(phases), _interval(_median_interval(intervals, 'converge'))), '',
            report.b2_table(result['b2']), '']


def _b3(result):
    s = result['settings']
    return ['## B3: a newcomer joins', '',
            'Three guests of %d MiB merged (policies slower than KX brought there by KX\'s knobs), %.0f s steady, then a '
            'fourth starts; t0 when it has filled its memory. T90: its own ksm_stat (ksm_merging_pages + ksm_zero_pages) '
            'reaches 90%% of its S+Z pages. Sampled every %s (median interval; target 50 ms).' % (
                result['b3'][0]['mib'], s['b3_settle'], _interval(_median_interval(result['b3']))), '',
            report.b3_table(report.b3_medians(result['b3'])), '']


def _realism(result, sizes, b1_medians):
    run = result['realism'][0]
    medians = report.b1_medians(result['realism'])
    lines = ['## Realism: real TCG guests', '',
             '%d guests of %d MiB under QEMU TCG (libvirt), booted from one Debian kernel and busybox initramfs, each with '
             '64 MiB of identical and 32 MiB of unique tmpfs content. The achievable saving of real memory is unknown: the '
             'reference is the largest plateau KX or KX+Z reached (%d pages, %.0f MiB; the guests had %d pages resident). '
             'Sampled every %s (median interval; target 100 ms).' % (
                 run['guests'], run['memory_mib'], run['reference_pages'], run['reference_pages'] * 4096 / 1048576.0,
                 run['resident_pages'], _interval(_median_interval(result['realism']))), '',
             report.b1_table(medians, run['guests'], run['mib']), '']
    if sizes:
        d_syn, kx_syn = b1_medians.get(tuple(sizes[0]) + ('D',)), b1_medians.get(tuple(sizes[0]) + ('KX+Z',))
        d_real, kx_real = medians.get((run['guests'], run['mib'], 'D')), medians.get((run['guests'], run['mib'], 'KX+Z'))
        if d_syn and kx_syn and d_real and kx_real:
            lines += ['D/KX+Z for T90: synthetic (N=%d, G=%d MiB) %s, real guests %s.' % (
                sizes[0][0], sizes[0][1], fmt_ratio(ratio(d_syn['t90'], kx_syn['t90'])),
                fmt_ratio(ratio(d_real['t90'], kx_real['t90']))), '']
    return lines


def _b5(result):
    runs = result['b5']
    return ['## B5: the daemon\'s own cost against N', '',
            'N synthetic guests of %d MiB under D. Per N: D converges and reaches its steady phase, then a %d s window with '
            'the guests idle gives the daemon\'s own CPU and ksmd\'s (sampled every %s); then one more guest starts and '
            '"detected" is the time from its memory being filled until D reacts (KSM knobs leave their steady values or '
            'its state says boost; polled every %.0f ms, 0 when it reacted while the guest was still filling). The last '
            'column is how the daemon\'s idle CPU grows with N.' % (
                runs[0]['mib'], runs[0]['window_seconds'], _interval(_median_interval(runs)), 1000 * runs[0]['detect_poll']),
            '', report.b5_table(runs), '']


def render(result, sizes=None, png=None):
    """The whole docs/benchmarks.md text. ``sizes`` is ignored for B1 (taken from the runs); kept for old callers."""
    sizes = checks.sizes_of(result) or [tuple(s) for s in (sizes or ())]
    b1_medians = report.b1_medians(result['b1']) if result['b1'] else {}
    lines = _head(result)
    if result['b1']:
        lines += _b1(result, sizes, b1_medians)
    if result['b2']:
        lines += _b2(result)
    if result['b3']:
        lines += _b3(result)
    if result['realism']:
        lines += _realism(result, sizes, b1_medians)
    if result.get('b5'):
        lines += _b5(result)
    lines += ['## What good looks like (BENCHMARKS.md, raised list)', '']
    for ok, text in checks.checks(result):
        lines.append('- %s %s' % ({True: 'met:', False: '**not met:**', None: 'unknown:'}[ok], text))
    lines.append('')
    if result.get('skipped'):
        lines += ['## Skipped', ''] + ['- %s' % item for item in result['skipped']] + ['']
    if png:
        lines += ['## Saved fraction over time', '', '![saved fraction over time per policy](%s)' % png, '']
    return '\n'.join(lines)


def keep_hand_written(old_text, new_text):
    """``new_text`` plus the hand-written tail of ``old_text`` (after KEEP_MARKER, or from an old "## Fleet scale")."""
    if not old_text:
        return new_text
    if KEEP_MARKER in old_text:
        tail = old_text.split(KEEP_MARKER, 1)[1]
    elif '\n## Fleet scale\n' in old_text:
        tail = '\n\n## Fleet scale\n' + old_text.split('\n## Fleet scale\n', 1)[1]
    else:
        return new_text
    return new_text.rstrip('\n') + '\n\n' + KEEP_MARKER + tail
