# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Does khugepaged undo KSM zero pages on this kernel? The measurement behind docs/thp-and-ksm-zero-pages.md.

One process maps two 2 MiB-aligned private anonymous regions with MADV_MERGEABLE + MADV_HUGEPAGE:

* ``mixed``: every 2 MiB range holds one page of unique data (touched every second, so it stays young)
  and 511 zero pages (the shape of a guest whose freed memory is zeroed: init_on_free);
* ``allzero``: every 2 MiB range holds only zero pages.

Per ``max_ptes_none`` value: KSM (use_zero_pages=1, fast) merges the zero pages with khugepaged paused
(scan_sleep_millisecs=600000), then khugepaged is sped up, and for ``--seconds`` the
process's AnonHugePages per region, its ksm_zero_pages and RSS are sampled once a second. Prints JSON lines.

Run it under the KSM lock (the KSM knobs are restored by the wrapper; the THP knobs by this script)::

    .venv/bin/python -m pagefusion_dev.ksm_reset run -- .venv/bin/python -m pagefusion_dev.thp_zero_probe
"""

import argparse
import json
import mmap
import os
import signal
import sys
import time

PAGE = mmap.PAGESIZE
HUGE = 2 * 1024 * 1024
KSM = '/sys/kernel/mm/ksm/'
KHUGEPAGED = '/sys/kernel/mm/transparent_hugepage/khugepaged/'
THP_KNOBS = ('max_ptes_none', 'scan_sleep_millisecs', 'pages_to_scan', 'alloc_sleep_millisecs')


def _read(path):
    with open(path) as handle:
        return handle.read().strip()


def _write(path, value):
    with open(path, 'w') as handle:
        handle.write(str(value))


def _aligned_region(size):
    """A 2 MiB-aligned private anonymous mapping of ``size`` bytes (over-map, then view from the boundary)."""
    raw = mmap.mmap(-1, size + HUGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    base = _address(raw)
    skip = (-base) % HUGE
    return raw, skip, base + skip


def _address(buf):
    import ctypes
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


class Region(object):
    """``small``: faulted in as small pages (MADV_NOHUGEPAGE), so KSM itself maps the zero pages (KSM zero pages);
    :meth:`allow_huge` then marks it MADV_HUGEPAGE for khugepaged. Otherwise faulted in as huge pages at once."""

    def __init__(self, name, chunks, data_pages, small=True):
        self.name = name
        self.size = chunks * HUGE
        self.raw, self.skip, self.start = _aligned_region(self.size)
        self.raw.madvise(mmap.MADV_NOHUGEPAGE if small else mmap.MADV_HUGEPAGE, self.skip, self.size)
        self.raw.madvise(mmap.MADV_MERGEABLE, self.skip, self.size)
        self.data_offsets = [self.skip + c * HUGE for c in range(chunks)] if data_pages else []
        zero = bytes(PAGE)
        for offset in range(self.skip, self.skip + self.size, PAGE):
            self.raw[offset:offset + PAGE] = zero
        for index, offset in enumerate(self.data_offsets):
            self.raw[offset:offset + PAGE] = os.urandom(PAGE - 8) + index.to_bytes(8, 'little')

    def allow_huge(self):
        self.raw.madvise(mmap.MADV_HUGEPAGE, self.skip, self.size)

    def touch(self):
        # Reads keep the data pages young, so khugepaged counts them as referenced.
        return sum(self.raw[offset] for offset in self.data_offsets)


def smaps_by_start():
    """AnonHugePages and Rss in kB of every mapping, by its start address."""
    result, current = {}, None
    with open('/proc/self/smaps') as handle:
        for line in handle:
            head = line.split(None, 1)[0]
            if '-' in head and not head.endswith(':'):
                current = int(head.split('-')[0], 16)
                result[current] = {}
            elif head in ('AnonHugePages:', 'Rss:'):
                result[current][head[:-1]] = int(line.split()[1])
    return result


def region_stats(regions):
    smaps = smaps_by_start()
    out = {}
    for region in regions:
        # The region's VMA starts at or before the aligned start (the over-mapped head is part of it).
        start = max(s for s in smaps if s <= region.start)
        out[region.name] = smaps[start]
    return out


def ksm_stat():
    stat = {}
    for line in _read('/proc/self/ksm_stat').splitlines():
        key, value = line.split(None, 1)
        stat[key] = value
    return int(stat.get('ksm_zero_pages', 0))


def sample(regions, started):
    return {'t': round(time.monotonic() - started, 1), 'ksm_zero_pages': ksm_stat(),
            'global_ksm_zero_pages': int(_read(KSM + 'ksm_zero_pages')),
            'regions': region_stats(regions),
            'pages_collapsed': int(_read(KHUGEPAGED + 'pages_collapsed'))}


def ksm_on():
    for knob, value in (('run', 0), ('use_zero_pages', 1), ('pages_to_scan', 5000), ('sleep_millisecs', 20), ('run', 1)):
        _write(KSM + knob, value)


def thp_vmstat():
    with open('/proc/vmstat') as handle:
        pairs = [line.split() for line in handle]
    return dict((k, int(v)) for k, v in pairs if k.startswith('thp_'))


def vmstat_delta(before):
    now = thp_vmstat()
    return dict((k, now[k] - before.get(k, 0)) for k in now if now[k] != before.get(k, 0))


def merged_kb(regions):
    """Resident kB of the regions' zero pages: 0 once KSM mapped them all to the zero page."""
    stats = region_stats(regions)
    return sum(stats[r.name]['Rss'] for r in regions) - sum(len(r.data_offsets) for r in regions) * PAGE // 1024


def wait_merged(regions, timeout):
    """Wait until the zero pages left RSS (KSM zero pages are not counted in it); (merged, seconds, trace every 2 s).

    RSS, not ksm_zero_pages: the global counter includes other processes, and /proc/<pid>/ksm_stat's
    ksm_zero_pages stayed 0 here while the pages were merged (docs/thp-and-ksm-zero-pages.md).
    """
    started = time.monotonic()
    trace = []
    while time.monotonic() - started < timeout:
        for region in regions:
            region.touch()
        if len(trace) < 60:
            trace.append(sample(regions, started))
        if merged_kb(regions) <= 64:
            return True, round(time.monotonic() - started, 1), trace[::4]
        time.sleep(0.5)
    return False, timeout, trace[::4]


def run_case(max_ptes_none, chunks, seconds, ksm_during, small=True):
    # khugepaged paused while KSM merges; max_ptes_none is the value under test from the start, because the
    # kernel's THP shrinker (shrink_underused) reads it too.
    _write(KHUGEPAGED + 'scan_sleep_millisecs', 600000)
    _write(KHUGEPAGED + 'max_ptes_none', max_ptes_none)
    regions = [Region('mixed', chunks, True, small), Region('allzero', chunks, False, small)]
    zero_pages = chunks * 511 + chunks * 512
    fresh = sample(regions, time.monotonic())
    vmstat = thp_vmstat()
    ksm_on()
    merged, merge_seconds, merge_trace = wait_merged(regions, 120)
    merge_vmstat = vmstat_delta(vmstat)
    vmstat = thp_vmstat()
    started = time.monotonic()
    for region in regions:
        region.allow_huge()
    before = sample(regions, started)
    if not ksm_during:
        _write(KSM + 'run', 0)
    for knob, value in (('max_ptes_none', max_ptes_none), ('scan_sleep_millisecs', 100), ('pages_to_scan', 65536),
                        ('alloc_sleep_millisecs', 100)):
        _write(KHUGEPAGED + knob, value)
    series = []
    while time.monotonic() - started < seconds:
        for region in regions:
            region.touch()
        time.sleep(1)
        series.append(sample(regions, started))
    _write(KSM + 'run', 0)
    for region in regions:
        region.raw.close()
    return {'max_ptes_none': max_ptes_none, 'ksm_running': ksm_during, 'small_pages_first': small, 'chunks': chunks, 'zero_pages': zero_pages,
            'fresh': fresh, 'merged_before': merged, 'merge_seconds': merge_seconds, 'merge_trace': merge_trace,
            'merge_vmstat': merge_vmstat, 'before': before, 'after': series[-1], 'vmstat': vmstat_delta(vmstat),
            'series': series[::10]}


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument('--values', default='511,0,64', help="max_ptes_none values; a trailing 's' stops ksmd meanwhile")
    parser.add_argument('--chunks', type=int, default=32)
    parser.add_argument('--seconds', type=int, default=60)
    parser.add_argument('--ksm-stopped', action='store_true', help='stop ksmd while khugepaged runs')
    parser.add_argument('--huge-first', action='store_true',
                        help='fault the regions in as huge pages (KSM then splits them; the split maps zero subpages)')
    args = parser.parse_args(argv)
    saved = dict((knob, _read(KHUGEPAGED + knob)) for knob in THP_KNOBS)
    signal.signal(signal.SIGTERM, lambda *unused: sys.exit(143))
    try:
        for value in args.values.split(','):
            stopped = args.ksm_stopped or value.endswith('s')
            case = run_case(int(value.rstrip('s')), args.chunks, args.seconds, not stopped, not args.huge_first)
            print(json.dumps(case), flush=True)
    finally:
        for knob, value in saved.items():
            _write(KHUGEPAGED + knob, value)
    return 0


if __name__ == '__main__':
    sys.exit(main())
