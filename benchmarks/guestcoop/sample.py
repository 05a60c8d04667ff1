# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the host sees of the B4 guests: each QEMU process's RSS and its /proc/<pid>/ksm_stat, and the host's KSM.

Counting without double counting: a page KSM maps to the kernel zero page leaves the process's RSS (the kernel
drops it from the anon counter), so "given back" (the RSS drop) already holds the zero-page merges;
ksm_merging_pages are pages still counted in RSS but shared. The B4 share is therefore
(RSS drop + new ksm_merging_pages) / freed; the zero-page part is reported beside it, not added twice.
"""

import os
import time

PAGE = os.sysconf('SC_PAGE_SIZE')
MIB = 1024 * 1024
KSM_DIR = '/sys/kernel/mm/ksm'


def process(pid):
    """``{rss, merging, zero}`` in bytes for one QEMU process."""
    figures = {'rss': 0, 'merging': 0, 'zero': 0}
    with open('/proc/%d/status' % pid) as handle:
        for line in handle:
            if line.startswith('VmRSS:'):
                figures['rss'] = int(line.split()[1]) * 1024
    with open('/proc/%d/ksm_stat' % pid) as handle:
        for line in handle:
            key, value = (line.split(' ', 1) + [''])[:2]
            if key in ('ksm_merging_pages', 'ksm_zero_pages'):
                figures['merging' if key == 'ksm_merging_pages' else 'zero'] = int(value) * PAGE
    return figures


def host_ksm():
    """The host's KSM saving in bytes: pages_sharing and ksm_zero_pages."""
    def read(name):
        with open(os.path.join(KSM_DIR, name)) as handle:
            return int(handle.read())
    return {'sharing': read('pages_sharing') * PAGE, 'zero': read('ksm_zero_pages') * PAGE}


def snapshot(pids):
    return [process(pid) for pid in pids]


def cooperation(base, now, freed):
    """One point of the B4 curve: the figures since ``base`` (the snapshot at the free) summed over guests."""
    given = sum(max(b['rss'] - n['rss'], 0) for b, n in zip(base, now))
    merged = sum(max(n['merging'] - b['merging'], 0) for b, n in zip(base, now))
    zero = sum(max(n['zero'] - b['zero'], 0) for b, n in zip(base, now))
    return {'given_back_mib': round(given / MIB, 1), 'merged_mib': round(merged / MIB, 1),
            'zero_page_mib': round(zero / MIB, 1), 'share': round((given + merged) / float(freed), 4)}


def trace(pids, base, freed, seconds, interval):
    """Sample every ``interval`` seconds for ``seconds`` after the free: ``[{t, given_back_mib, ...}]``."""
    start = time.monotonic()
    points = []
    while True:
        elapsed = time.monotonic() - start
        point = cooperation(base, snapshot(pids), freed)
        point['t'] = round(elapsed, 1)
        points.append(point)
        if elapsed >= seconds:
            return points
        time.sleep(max(0.0, min(interval, seconds - elapsed)))


def idle_saving(pids):
    """The idle-boot saving per guest: its merged + zero pages, as MiB and as a share of its RSS, plus the host's."""
    per_guest = []
    for figures in snapshot(pids):
        shared = figures['merging'] + figures['zero']
        per_guest.append({'rss_mib': round(figures['rss'] / MIB, 1), 'merged_mib': round(figures['merging'] / MIB, 1),
                          'zero_page_mib': round(figures['zero'] / MIB, 1),
                          'share_of_rss': round(shared / float(figures['rss'] + figures['zero']), 4)})
    host = host_ksm()
    saved = host['sharing'] + host['zero']
    footprint = sum(g['rss_mib'] + g['zero_page_mib'] for g in per_guest)
    return {'guests': per_guest, 'host_saved_mib': round(saved / MIB, 1),
            'host_saved_per_guest_mib': round(saved / MIB / len(pids), 1),
            'host_saved_share_of_rss': round(saved / MIB / footprint, 4)}
