# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""docs/benchmarks.md from a benchmark result: machine, method, the tables, the checks, the plot."""

from . import report
from .report import fmt_ratio
from .measure import ratio


def _machine(info):
    return ('%s, %s cores, %s GiB, kernel %s, %s%s; load average before the start %s' % (
        info.get('cpu'), info.get('cores'), info.get('memory_gib'), info.get('kernel'), info.get('os'),
        ' (a %s virtual machine)' % info['hypervisor'] if info.get('hypervisor') and info['hypervisor'] != 'none' else '',
        ', '.join('%.2f' % x for x in info.get('load_before', ()))))


def render(result, sizes, png):
    s = result['settings']
    wall = result['wall_seconds']
    lines = ['# pagefusiond benchmark results', '',
             '<!-- written by benchmarks/ksm_bench.py; do not edit by hand: run `./dev bench` -->', '',
             'Run %s to %s, %s profile, on: %s.' % (result['started'], result.get('finished'), result['profile'],
                                                    _machine(result['machine'])), '',
             'Wall time: %s.' % ', '.join('%s %.1f min' % (k, v / 60.0) for k, v in sorted(wall.items())), '']
    if len(result.get('runs', ())) > 1:
        lines += ['Run in %d sessions (`--merge`): %s.' % (len(result['runs']), '; '.join(
            '%s from %s to %s' % (', '.join(run['parts']), run['started'], run.get('finished')) for run in result['runs'])), '']
    lines += ['## Policies', '']
    for name in report.ORDER:
        lines.append('- **%s**: %s' % (name, result['policies'][name]))
    if result.get('daemon_defaults_overridden'):
        lines += ['', '**D ran with overrides of its defaults:** %s' % result['daemon_defaults_overridden']]
    lines += ['', '## Method', '',
              'Synthetic guests (devtools/pagefusion_dev/synthetic_guests.py) follow BENCHMARKS.md: 45% S pages shared by all guests, '
              '25% zero pages, 25% unique, 5% volatile; the achievable saving is exact. Saved = pages_sharing + '
              'ksm_zero_pages; ksmd CPU from /proc/<ksmd>/schedstat. Samples every 50 ms, crossings interpolated. '
              'Every run starts from the reset: guests stopped, run=2, run=0, kernel defaults. '
              'With use_zero_pages=0 the zero pages cannot all collapse into one KSM page as BENCHMARKS.md\'s formula '
              'assumes: max_page_sharing (256) caps the sharers of a KSM page, so N x Z zero pages need N x Z / 256 of them '
              'and the K policies top out about 0.2% below the achievable; D sets use_zero_pages=1.',
              '',
              '%d runs a cell, the median is reported. Slow policies run up to a cap of %gx D\'s median T90 at the same size '
              '(at least %.0f s, at most %.0f s): enough to decide "at least 10x sooner"; a run stopped at the cap counts as '
              'not reached, shown as "> cap", and once more than half of a cell\'s runs are capped the median is settled and '
              'the rest are skipped (the "runs" column). Ratios with a censored side are bounds (< or >).' % (
                  s['repeats'], s['cap_factor'], s['min_cap'], s['max_cap']),
              '',
              'KT is Debian\'s ksmtuned package as its units start it (`ksmctl start`, i.e. run=1 with the kernel defaults, '
              'then `ksmtuned` with the shipped /etc/ksmtuned.conf). Its first adjustment comes after KSM_MONITOR_INTERVAL '
              '(60 s); without memory pressure it then stops ksmd. KT+P adds memory pressure as ksmtuned sees it: a process '
              'holds plain memory until MemFree+Buffers+Cached is below 20% of MemTotal.', '']
    b1_medians = report.b1_medians(result['b1']) if result['b1'] else {}
    if result['b1']:
        lines += ['## B1: cold start', '']
        for guests, mib in sizes:
            lines += ['### N=%d guests, G=%d MiB' % (guests, mib), '', report.b1_table(b1_medians, guests, mib), '']
    if result.get('b1long'):
        size = (result['b1long'][0]['guests'], result['b1long'][0]['mib'])
        runs = list(result['b1long']) + [r for r in result['b1'] if (r['guests'], r['mib']) == size and r['policy'] in ('KX', 'D')]
        medians = report.b1_medians(runs)
        lines += ['### N=%d guests, G=%d MiB: the slow policies run to the end' % size, '',
                  'One run of each slow policy up to %.0f s, next to the D and KX runs of the table above: their real T50 '
                  'and T90 where they get there, not only the bound the capped runs give.' % result['b1long'][0]['cap'], '',
                  report.b1_table(medians, size[0], size[1]), '']
        d = medians.get(size + ('D',))
        if d:
            slow = [name for name in report.ORDER if name not in ('D', 'KX') and size + (name,) in medians]
            pairs = ['%s/D = %s' % (name, fmt_ratio(ratio(medians[size + (name,)]['t90'], d['t90']))) for name in slow]
            lines += ["T90 against D's: %s." % ', '.join(pairs), '']
    if result['b2']:
        b2 = result['b2'][0]
        lines += ['## B2: steady state', '',
                  'N=%d, G=%d MiB. After convergence (saved >= 99%% of achievable): %d s idle, then %d s of churn: each guest '
                  'rewrites %d pages/s (1%% of G), %d%% of the writes land on S pages (same bytes: only the sharing breaks), '
                  'the rest put random data into V pages. K0, KA and KT start from the merged state KX\'s knobs reach '
                  '(their own convergence takes minutes; B1 measures it). "saved" is what ksmd\'s counters say '
                  '(pages_sharing + ksm_zero_pages) and, after the slash, the real saving from the guests\' Rss - Pss: the '
                  'counters only notice a page whose sharing a write broke when ksmd visits it again (and then usually merge '
                  'it at once), so under churn they show sharing that is not there.' % (
                      b2['guests'], b2['mib'], b2['phase_seconds'], b2['phase_seconds'], b2['churn_pages_per_s'],
                      round(100 * b2['s_hits'])), '',
                  report.b2_table(result['b2']), '']
    if result['b3']:
        lines += ['## B3: a newcomer joins', '',
                  'Three guests of %d MiB merged (K0, KA and KT brought there by KX\'s knobs), %.0f s steady, then a fourth '
                  'starts; t0 when it has filled its memory. T90: its own ksm_stat (ksm_merging_pages + ksm_zero_pages) '
                  'reaches 90%% of its S+Z pages.' % (result['b3'][0]['mib'], s['b3_settle']), '',
                  report.b3_table(report.b3_medians(result['b3'])), '']
    if result['realism']:
        run = result['realism'][0]
        lines += ['## Realism: real TCG guests', '',
                  '%d guests of %d MiB under QEMU TCG (libvirt), booted from one Debian kernel and busybox initramfs, each '
                  'with 64 MiB of identical and 32 MiB of unique tmpfs content. The achievable saving of real memory is '
                  'unknown: the reference is the largest plateau KX reached (%d pages, %.0f MiB; the guests had %d pages '
                  'resident).' % (run['guests'], run['memory_mib'], run['reference_pages'],
                                  run['reference_pages'] * 4096 / 1048576.0, run['resident_pages']), '']
        medians = report.b1_medians(result['realism'])
        lines += [report.b1_table(medians, run['guests'], run['mib']), '']
        d_syn, kx_syn = b1_medians.get(tuple(sizes[0]) + ('D',)), b1_medians.get(tuple(sizes[0]) + ('KX',))
        d_real, kx_real = medians.get((run['guests'], run['mib'], 'D')), medians.get((run['guests'], run['mib'], 'KX'))
        if d_syn and kx_syn and d_real and kx_real:
            lines += ['D/KX for T90: synthetic (N=%d, G=%d MiB) %s, real guests %s.' % (
                sizes[0][0], sizes[0][1], fmt_ratio(ratio(d_syn['t90'], kx_syn['t90'])),
                fmt_ratio(ratio(d_real['t90'], kx_real['t90']))), '']
    checks = report.checks(b1_medians, result['b2'], [tuple(x) for x in sizes])
    if checks:
        lines += ['## What good looks like (BENCHMARKS.md)', '']
        for ok, text in checks:
            lines.append('- %s %s' % ({True: 'met:', False: '**missed:**', None: 'unknown:'}[ok], text))
        lines.append('')
    if result.get('skipped'):
        lines += ['## Skipped', ''] + ['- %s' % item for item in result['skipped']] + ['']
    if png:
        lines += ['## Saved fraction over time', '', '![saved fraction over time per policy](%s)' % png, '']
    return '\n'.join(lines)
