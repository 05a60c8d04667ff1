# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Whether taking shared memory back (unmerging) fits in what the host has available.

This is a private module_utils of pagefusion.core: its API may change at any time.

Unmerging gives every merged page its own copy again: a host that saves 20 GiB through KSM needs
20 GiB free to unmerge. Everything of ours that unmerges (the ``ksm`` module with ``run=2`` or
``allow_unmerge``, ``pagefusiond`` on restore, the ``vm`` module restarting a VM without fusion)
asks :func:`assess` first and refuses, with the figures, when the memory taken back is more than
``MemAvailable`` minus the operator's margin.

Standard library only (``pagefusiond`` imports it beside ``_ksm``); the readers take a ``/proc``
root so that tests can point them at a temporary tree.
"""

from __future__ import annotations

import os

MIB = 1024 * 1024
# MemAvailable is an estimate, and the host needs room beyond the copies: keep 1 GiB free by default.
DEFAULT_MARGIN_MIB = 1024


class UnmergeShortError(Exception):
    """Unmerging would take back more memory than the host can spare; ``fit`` holds the figures."""

    def __init__(self, fit, what, override):
        self.fit = fit
        Exception.__init__(self, '%s: %s. Nothing was changed. Free memory first, lower unmerge_margin_mib, or set %s '
                                 'to unmerge anyway.' % (what, describe(fit), override))


def parse_meminfo(text):
    """``/proc/meminfo`` text as ``{field: bytes}`` (the kernel writes kB)."""
    values = {}
    for line in text.splitlines():
        name, _sep, rest = line.partition(':')
        words = rest.split()
        if not words or not words[0].isdigit():
            continue
        values[name.strip()] = int(words[0]) * (1024 if words[1:2] == ['kB'] else 1)
    return values


def read_mem_available(proc_root='/proc'):
    """MemAvailable in bytes, or None when the kernel does not report it (before Linux 3.14) or /proc is unreadable."""
    try:
        with open(os.path.join(proc_root, 'meminfo'), 'r') as handle:
            return parse_meminfo(handle.read()).get('MemAvailable')
    except (IOError, OSError):
        return None


def host_take_back_bytes(counters, page_size):
    """What ``run=2`` takes back host-wide: every sharing mapping and every KSM zero page gets its own page again.

    pages_sharing counts the mappings beyond the one KSM page kept per shared page (that page is freed as its
    last user gets a copy); ksm_zero_pages are pages merged with the kernel zero page (use_zero_pages), which
    unmerging also breaks.
    """
    pages = max(counters.get('pages_sharing') or 0, 0) + max(counters.get('ksm_zero_pages') or 0, 0)
    return pages * page_size


def process_take_back_bytes(stat, page_size):
    """What one process (a VM's QEMU) takes back when its memory is no longer merged, from its ``ksm_stat``; None if unknown."""
    if stat is None or stat.get('merging_pages') is None:
        return None
    return (stat['merging_pages'] + max(stat.get('zero_pages') or 0, 0)) * page_size


def assess(take_back_bytes, mem_available_bytes, margin_mib):
    """The figures and the verdict: ``fits`` is True when the take-back fits in MemAvailable minus the margin.

    Nothing to take back always fits; an unknown MemAvailable (None) never fits a real take-back.
    """
    margin_bytes = int(margin_mib * MIB)
    room = None if mem_available_bytes is None else mem_available_bytes - margin_bytes
    fits = take_back_bytes <= 0 or (room is not None and take_back_bytes <= room)
    return {
        'take_back_bytes': take_back_bytes,
        'mem_available_bytes': mem_available_bytes,
        'margin_bytes': margin_bytes,
        'room_bytes': room,
        'fits': fits,
        'take_back_mib': mib(take_back_bytes),
        'mem_available_mib': mib(mem_available_bytes),
        'margin_mib': mib(margin_bytes),
    }


def mib(value):
    """Bytes as MiB with one decimal (None stays None)."""
    return None if value is None else round(value / float(MIB), 1)


def describe(fit):
    """One sentence with both figures and the margin."""
    if fit['mem_available_bytes'] is None:
        return ('it would take back %.1f MiB, but MemAvailable cannot be read from /proc/meminfo, so the '
                'fit cannot be checked' % fit['take_back_mib'])
    return ('it would take back %.1f MiB, but MemAvailable is %.1f MiB and the margin is %.1f MiB '
            '(%.1f MiB may be taken back)' % (fit['take_back_mib'], fit['mem_available_mib'], fit['margin_mib'],
                                              max(mib(fit['room_bytes']), 0.0)))


def host_fit(sysfs, margin_mib, proc_root='/proc'):
    """:func:`assess` for unmerging every KSM page of the host (``run=2``); ``sysfs`` is a ``_ksm.KsmSysfs``."""
    take_back = host_take_back_bytes(sysfs.read_counters(), sysfs.page_size)
    return assess(take_back, read_mem_available(proc_root), margin_mib)


def require_fit(fit, what, override, when_short=False):
    """Raise :class:`UnmergeShortError` unless the fit holds or ``when_short`` (the operator's override) is set."""
    if not fit['fits'] and not when_short:
        raise UnmergeShortError(fit, what, override)
    return fit
