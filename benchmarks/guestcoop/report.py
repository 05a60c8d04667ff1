# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""B4's outputs: the JSON results, the share-over-time plot and the markdown section (docs/benchmarks-b4.*)."""

import json
import os


def write_json(results, path):
    with open(path, 'w') as handle:
        json.dump(results, handle, indent=1, sort_keys=True)
        handle.write('\n')


def plot(results, path):
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot
    figure, axes = pyplot.subplots(figsize=(8, 4.5))
    for run in results['configs']:
        times = [p['t'] for p in run['trace']]
        axes.plot(times, [100 * p['share'] for p in run['trace']], label=run['label'], marker='.')
    axes.axhline(90, color='grey', linestyle=':', label='target (d): 90 %')
    axes.set_xlabel('seconds after the guests freed %d MiB each' % results['params']['alloc_mib'])
    axes.set_ylabel('given back + merged, % of freed')
    axes.set_ylim(-2, 105)
    axes.set_title('B4: %d real Debian 12 guests (TCG), freed memory back to the host' % results['params']['guests'])
    axes.legend(loc='center right', fontsize='small')
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def _pct(share):
    return '%.1f %%' % (100 * share)


def _at(trace, seconds):
    """The last point of the trace at or before ``seconds``."""
    points = [p for p in trace if p['t'] <= seconds + 0.5]
    return points[-1] if points else trace[0]


def table(results):
    lines = ['| configuration | given back (RSS drop) | merged (ksm_merging_pages) | of which zero pages | '
             'share at 10 s | share at 30 s | share at %d s | 90 %% reached | the delete took |' % results['params']['seconds'],
             '|---|---|---|---|---|---|---|---|---|']
    for run in results['configs']:
        final = run['final']
        t90 = '%.0f s' % run['t90'] if run['t90'] is not None else 'no'
        lines.append('| %s | %.0f MiB | %.0f MiB | %.0f MiB | %s | %s | %s | %s | %s |' % (
            run['label'], final['given_back_mib'], final['merged_mib'], final['zero_page_mib'],
            _pct(_at(run['trace'], 10)['share']), _pct(_at(run['trace'], 30)['share']), _pct(final['share']), t90,
            '%.0f s' % run['free_seconds'] if 'free_seconds' in run else '?'))
    return lines


def idle_table(results):
    lines = ['| configuration | RSS per guest | merged + zero per guest | share of guest RSS | host saved per guest |',
             '|---|---|---|---|---|']
    for run in results['configs']:
        idle = run['idle']
        count = len(idle['guests'])
        rss = sum(g['rss_mib'] for g in idle['guests']) / count
        shared = sum(g['merged_mib'] + g['zero_page_mib'] for g in idle['guests']) / count
        share = sum(g['share_of_rss'] for g in idle['guests']) / count
        lines.append('| %s | %.0f MiB | %.0f MiB | %s | %.0f MiB (%s) |' % (
            run['label'], rss, shared, _pct(share), idle['host_saved_per_guest_mib'],
            _pct(idle['host_saved_share_of_rss'])))
    return lines


def markdown(results, png_name):
    params = results['params']
    text = ['## B4: guest cooperation (real Debian 12 guests)', '',
            '%d Debian 12 guests (the guest_agent scenario\'s image, systemd + sshd) under QEMU TCG through the real '
            'libvirtd, %d MiB each, pagefusiond from the checkout with its shipped defaults. Each guest boots, '
            'settles (%d s), fills a tmpfs with %d MiB of random data and deletes it; the host is sampled every %g s for '
            '%d s from the moment the delete starts (the delete itself takes seconds under TCG). '
            'Share = (RSS drop of the QEMU processes + new ksm_merging_pages) / (%d x %d MiB); '
            'pages KSM maps to the zero page leave RSS, so they are inside "given back" and shown apart, not added '
            'twice. Measured %s, wall time %.0f s, load average %s (2 cores, shared machine).'
            % (params['guests'], params['guest_mib'], params['settle'], params['alloc_mib'], params['interval'],
               params['seconds'], params['guests'], params['alloc_mib'], results['started'],
               results['wall_seconds'], ' / '.join('%.1f' % x for x in results['load_average'])), '']
    text += table(results)
    text += ['', '![B4 share over time](%s)' % png_name, '',
             '**Idle real-guest saving** (after boot and settle, before the allocation; KSM under pagefusiond):', '']
    text += idle_table(results)
    text += ['', 'Per guest: its own pages backed by a KSM page or the zero page (`/proc/<pid>/ksm_stat`); host saved: '
             '(pages_sharing + ksm_zero_pages) / guests, as a share of the guests\' RSS plus zero pages.']
    notes = results.get('notes') or []
    if notes:
        text += [''] + ['- %s' % note for note in notes]
    return '\n'.join(text) + '\n'


def write_all(results, out_dir, stem):
    paths = dict((kind, os.path.join(out_dir, '%s.%s' % (stem, kind))) for kind in ('json', 'png', 'md'))
    write_json(results, paths['json'])
    plot(results, paths['png'])
    with open(paths['md'], 'w') as handle:
        handle.write(markdown(results, os.path.basename(paths['png'])))
    return paths
