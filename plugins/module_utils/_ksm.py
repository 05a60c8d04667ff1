# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one model of Linux KSM (Kernel Samepage Merging) in pagefusion.core.

This is a private module_utils of pagefusion.core: its API may change at any time.

It uses the Python standard library only, because the host daemon ``pagefusiond`` imports this
very file outside Ansible. Every reader takes a root path (``/sys/kernel/mm/ksm`` and ``/proc``
by default) so tests can point it at a temporary tree.

Writing is split in two pure steps and one impure step, so that an Ansible module's check mode
and its real run use the very same comparison:

1. :func:`plan_changes` compares the current knobs with the wanted ones and returns
   ``{knob: (before, after)}`` (validation, feature detection and the advisor rule included);
2. :func:`check_plan` decides whether an unmerge (``run=2``) is needed and refuses it unless
   allowed;
3. :meth:`KsmSysfs.apply` writes the plan in a safe order (:func:`write_order`).

:meth:`KsmSysfs.set_knobs` runs all three.
"""

from __future__ import annotations

import errno
import os
import re
import struct
import time

DEFAULT_ROOT = '/sys/kernel/mm/ksm'
DEFAULT_PROC_ROOT = '/proc'

UINT_MAX = 2 ** 32 - 1
INT_MAX = 2 ** 31 - 1
ULONG_MAX = 2 ** (8 * struct.calcsize('L')) - 1

# Size of one struct ksm_rmap_item (ksm.rst): 64 bytes on 64-bit, 32 bytes on 32-bit kernels.
RMAP_ITEM_SIZE = 64 if struct.calcsize('P') == 8 else 32

# PF_KTHREAD in include/linux/sched.h: the task is a kernel thread.
PF_KTHREAD = 0x00200000

ADVISOR_MODES = ('none', 'scan-time')


class Knob(object):
    """One writable file under /sys/kernel/mm/ksm.

    ``kind`` is ``int``, ``bool`` (written as 0/1) or ``choice``. ``minimum``/``maximum`` bound
    ints (``maximum`` may be stricter than the kernel where a larger value makes no sense);
    ``default`` is the kernel's default from mm/ksm.c; ``feature`` names the kernel feature that
    brings the file, for the error when a kernel lacks it.
    """

    __slots__ = ('name', 'kind', 'minimum', 'maximum', 'choices', 'default', 'feature', 'needs_unmerge', 'description')

    def __init__(self, name, kind, default, feature, description, minimum=None, maximum=None, choices=None, needs_unmerge=False):
        self.name = name
        self.kind = kind
        self.default = default
        self.feature = feature
        self.description = description
        self.minimum = minimum
        self.maximum = maximum
        self.choices = choices
        self.needs_unmerge = needs_unmerge

    def allowed(self):
        """Human-readable description of the allowed values."""
        if self.kind == 'bool':
            return '0 or 1 (false or true)'
        if self.kind == 'choice':
            return ' or '.join("'%s'" % c for c in self.choices)
        return '%d..%d' % (self.minimum, self.maximum)

    def validate(self, value):
        """Return ``value`` normalised to what reading the file gives back, or raise KsmValueError."""
        if self.kind == 'choice':
            if isinstance(value, str) and value.strip() in self.choices:
                return value.strip()
            raise KsmValueError(self.name, value, self.allowed())
        if self.kind == 'bool':
            if isinstance(value, bool):
                return int(value)
            if isinstance(value, int) and value in (0, 1):
                return value
            if isinstance(value, str):
                word = value.strip().lower()
                if word in ('1', 'y', 'yes', 'on', 'true'):
                    return 1
                if word in ('0', 'n', 'no', 'off', 'false'):
                    return 0
            raise KsmValueError(self.name, value, self.allowed())
        # int
        if isinstance(value, bool):
            raise KsmValueError(self.name, value, self.allowed())
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and re.match(r'^\s*[+-]?\d+\s*$', value):
            number = int(value)
        else:
            raise KsmValueError(self.name, value, self.allowed())
        if number < self.minimum or number > self.maximum:
            raise KsmValueError(self.name, value, self.allowed())
        return number


_FEATURE_BASE = 'KSM (CONFIG_KSM)'
_FEATURE_NUMA = 'KSM merge_across_nodes (a NUMA kernel, CONFIG_NUMA; Linux 3.9+)'
_FEATURE_ZERO = 'KSM use_zero_pages (about Linux 4.11+)'
_FEATURE_CHAINS = 'KSM stable node chains / max_page_sharing (about Linux 4.13+)'
_FEATURE_SMART = 'KSM smart scan (about Linux 6.7+)'
_FEATURE_ADVISOR = 'the KSM scan-time advisor (about Linux 6.8+)'

# The catalogue of writable knobs, in a stable display order. Defaults and rules are from mm/ksm.c.
KNOBS = dict((k.name, k) for k in (
    Knob('run', 'int', 0, _FEATURE_BASE, '0 = stop ksmd and keep merged pages, 1 = run ksmd, 2 = stop ksmd and unmerge all pages',
         minimum=0, maximum=2),
    Knob('pages_to_scan', 'int', 100, _FEATURE_BASE, 'pages to scan before ksmd sleeps (the kernel rejects writes while advisor_mode is scan-time)',
         minimum=0, maximum=UINT_MAX),
    Knob('sleep_millisecs', 'int', 20, _FEATURE_BASE, 'milliseconds ksmd sleeps between batches', minimum=0, maximum=UINT_MAX),
    Knob('merge_across_nodes', 'bool', 1, _FEATURE_NUMA, 'merge pages across NUMA nodes (changing it needs all KSM pages unmerged)',
         needs_unmerge=True),
    Knob('use_zero_pages', 'bool', 0, _FEATURE_ZERO, 'merge empty pages with the kernel zero page'),
    Knob('max_page_sharing', 'int', 256, _FEATURE_CHAINS, 'maximum sharers of one KSM page (changing it needs all KSM pages unmerged)',
         minimum=2, maximum=INT_MAX, needs_unmerge=True),
    Knob('stable_node_chains_prune_millisecs', 'int', 2000, _FEATURE_CHAINS, 'how often stale stable-node-chain metadata is pruned',
         minimum=0, maximum=UINT_MAX),
    Knob('smart_scan', 'bool', 1, _FEATURE_SMART, 'skip pages that repeatedly failed to merge'),
    Knob('advisor_mode', 'choice', 'none', _FEATURE_ADVISOR, "'none' or 'scan-time' (the kernel then tunes pages_to_scan itself)",
         choices=ADVISOR_MODES),
    Knob('advisor_max_cpu', 'int', 70, _FEATURE_ADVISOR, 'maximum ksmd CPU percent the advisor aims for', minimum=1, maximum=100),
    Knob('advisor_target_scan_time', 'int', 200, _FEATURE_ADVISOR, 'seconds the advisor aims for one full scan', minimum=1, maximum=ULONG_MAX),
    Knob('advisor_min_pages_to_scan', 'int', 500, _FEATURE_ADVISOR, 'pages_to_scan the advisor starts from', minimum=1, maximum=ULONG_MAX),
    Knob('advisor_max_pages_to_scan', 'int', 30000, _FEATURE_ADVISOR, 'highest pages_to_scan the advisor may choose', minimum=1, maximum=ULONG_MAX),
))

KNOB_NAMES = tuple(KNOBS)

# The kernel defaults, for "restore defaults".
KERNEL_DEFAULTS = dict((name, knob.default) for name, knob in KNOBS.items())

# Knobs whose write answers EBUSY while KSM pages exist (pages_shared > 0).
UNMERGE_KNOBS = tuple(name for name, knob in KNOBS.items() if knob.needs_unmerge)

# Read-only counters known to this model; general_profit and ksm_zero_pages are signed.
COUNTERS = (
    'pages_shared', 'pages_sharing', 'pages_unshared', 'pages_volatile', 'full_scans',
    'stable_node_chains', 'stable_node_dups', 'general_profit', 'pages_scanned', 'pages_skipped',
    'ksm_zero_pages',
)
SIGNED_COUNTERS = ('general_profit', 'ksm_zero_pages')


# --------------------------------------------------------------------------------------------
# Errors


class KsmError(Exception):
    """Base class: a clear, operator-facing KSM error."""


class KsmNotAvailableError(KsmError):
    """The kernel has no KSM (no /sys/kernel/mm/ksm)."""

    def __init__(self, root):
        self.root = root
        KsmError.__init__(self, 'KSM is not available on this host: %s does not exist (kernel built without CONFIG_KSM?)' % root)


class KsmUnsupportedError(KsmError):
    """The kernel lacks a knob."""

    def __init__(self, knob, root):
        self.knob = knob
        feature = KNOBS[knob].feature if knob in KNOBS else 'this KSM feature'
        KsmError.__init__(self, 'This kernel has no KSM knob %s (%s/%s is missing): it needs %s' % (knob, root, knob, feature))


class KsmValueError(KsmError):
    """A value outside what the knob accepts (checked before anything is written)."""

    def __init__(self, knob, value, allowed):
        self.knob = knob
        self.value = value
        self.allowed = allowed
        KsmError.__init__(self, 'Invalid value %r for KSM knob %s: allowed values are %s' % (value, knob, allowed))


class KsmUnknownKnobError(KsmError):
    """A name that is not a writable KSM knob."""

    def __init__(self, knob):
        self.knob = knob
        KsmError.__init__(self, 'Unknown KSM knob %r: known knobs are %s' % (knob, ', '.join(KNOB_NAMES)))


class KsmBusyError(KsmError):
    """EBUSY: the knob can only change while no KSM pages exist."""

    def __init__(self, knob, pages_shared=None, detail=None):
        self.knob = knob
        self.pages_shared = pages_shared
        msg = 'Cannot change KSM knob %s while KSM pages exist' % knob
        if pages_shared:
            msg += ' (pages_shared=%d)' % pages_shared
        msg += ': all pages must be unmerged first (run=2); allow the unmerge (allow_unmerge) to have it done automatically'
        if detail:
            msg += ' (%s)' % detail
        KsmError.__init__(self, msg)


class KsmAdvisorError(KsmError):
    """pages_to_scan cannot be written while the scan-time advisor is active (EINVAL)."""

    def __init__(self, value=None):
        self.knob = 'pages_to_scan'
        msg = 'Cannot set KSM pages_to_scan'
        if value is not None:
            msg += ' to %s' % value
        msg += (" while advisor_mode is 'scan-time': the kernel advisor sets pages_to_scan itself"
                " (tune advisor_min_pages_to_scan/advisor_max_pages_to_scan instead, or set advisor_mode to 'none')")
        KsmError.__init__(self, msg)


class KsmPermissionError(KsmError):
    """EACCES/EPERM on a write: KSM knobs are writable by root only."""

    def __init__(self, knob, path):
        self.knob = knob
        KsmError.__init__(self, 'Permission denied writing KSM knob %s (%s): KSM knobs are writable by root only' % (knob, path))


class KsmWriteError(KsmError):
    """Any other write failure; carries the errno."""

    def __init__(self, knob, value, err):
        self.knob = knob
        self.errno = err.errno
        KsmError.__init__(self, 'Writing %s to KSM knob %s failed: %s' % (value, knob, os.strerror(err.errno) if err.errno else err))


class KsmUnmergeTimeout(KsmError):
    """run=2 did not bring pages_shared to 0 in time."""

    def __init__(self, timeout, pages_shared):
        KsmError.__init__(self, 'KSM unmerge (run=2) did not finish within %ss: pages_shared is still %d' % (timeout, pages_shared))


# --------------------------------------------------------------------------------------------
# Pure helpers: parsing, validation, planning


def parse_value(name, text):
    """Parse the text of one sysfs file: advisor_mode gives the selected word, numbers give ints."""
    text = text.strip()
    if name == 'advisor_mode':
        match = re.search(r'\[([^\]]+)\]', text)
        return match.group(1) if match else text
    if re.match(r'^[+-]?\d+$', text):
        return int(text)
    return text


def format_value(name, value):
    """The text to write for a validated value."""
    if name == 'advisor_mode':
        return str(value)
    return '%d' % int(value)


def validate(knob, value):
    """Validate and normalise one wanted value (raises KsmUnknownKnobError or KsmValueError)."""
    if knob not in KNOBS:
        raise KsmUnknownKnobError(knob)
    return KNOBS[knob].validate(value)


def normalize_wanted(wanted):
    """Validate a dict of wanted values; ``None`` values are dropped (leave the knob alone)."""
    result = {}
    for knob, value in wanted.items():
        if value is None:
            continue
        result[knob] = validate(knob, value)
    low = result.get('advisor_min_pages_to_scan')
    high = result.get('advisor_max_pages_to_scan')
    if low is not None and high is not None and low > high:
        raise KsmValueError('advisor_min_pages_to_scan', low, 'at most advisor_max_pages_to_scan (%d)' % high)
    return result


def plan_changes(current, wanted, root=DEFAULT_ROOT):
    """Compare the current knobs with the wanted ones: ``{knob: (before, after)}`` for each difference.

    ``current`` is a dict of knobs as read (:meth:`KsmSysfs.read_knobs`); a wanted knob missing
    from it is a knob the kernel lacks (KsmUnsupportedError). Values are validated first. A
    pages_to_scan that must change while the scan-time advisor will be active is refused
    (KsmAdvisorError): the kernel answers EINVAL to it, and switching the advisor on resets
    pages_to_scan to advisor_min_pages_to_scan anyway. Pure: it reads and writes nothing.
    """
    wanted = normalize_wanted(wanted)
    for knob in wanted:
        if knob not in current:
            raise KsmUnsupportedError(knob, root)
    changes = {}
    for knob in KNOB_NAMES:
        if knob in wanted and knob != 'pages_to_scan' and current[knob] != wanted[knob]:
            changes[knob] = (current[knob], wanted[knob])
    if 'pages_to_scan' in wanted:
        # Compare with what pages_to_scan will be once advisor_mode has switched (which resets it).
        predicted = predict_knobs(current, changes)
        if predicted['pages_to_scan'] != wanted['pages_to_scan']:
            if predicted.get('advisor_mode') == 'scan-time':
                raise KsmAdvisorError(wanted['pages_to_scan'])
            changes['pages_to_scan'] = (current['pages_to_scan'], wanted['pages_to_scan'])
    return changes


def predict_knobs(current, changes):
    """The knobs as they will read after ``changes`` are applied, side effects included.

    Switching advisor_mode makes the kernel reset pages_to_scan: to 100 when it is switched off,
    to advisor_min_pages_to_scan when it is switched on.
    """
    after = dict(current)
    for knob, (dummy, value) in changes.items():
        after[knob] = value
    if 'advisor_mode' in changes and 'pages_to_scan' in current:
        if after['advisor_mode'] == 'scan-time':
            after['pages_to_scan'] = after.get('advisor_min_pages_to_scan', KERNEL_DEFAULTS['advisor_min_pages_to_scan'])
        elif 'pages_to_scan' not in changes:
            after['pages_to_scan'] = KERNEL_DEFAULTS['pages_to_scan']
    return after


def unmerge_needed(counters, changes):
    """The knobs in ``changes`` that need all KSM pages unmerged first, given the current counters.

    Empty when no KSM pages exist, or when the plan itself sets run=2 (which unmerges first).
    """
    if changes.get('run', (None, None))[1] == 2:
        return []
    if not counters.get('pages_shared'):
        return []
    return [knob for knob in UNMERGE_KNOBS if knob in changes]


def check_plan(counters, changes, allow_unmerge=False):
    """Return True when applying ``changes`` will unmerge all KSM pages; raise KsmBusyError when that is not allowed."""
    knobs = unmerge_needed(counters, changes)
    if knobs and not allow_unmerge:
        raise KsmBusyError(knobs[0], counters.get('pages_shared'))
    return bool(knobs)


def write_order(changes):
    """The order to write ``changes`` in (a list of knob names).

    1. run, when it stops ksmd (0) or unmerges (2): stop before retuning; run=2 also lets the
       unmerge-only knobs change.
    2. The advisor's own tunables, so that switching the advisor on starts from them.
    3. advisor_mode (switching it off before pages_to_scan: switching resets pages_to_scan).
    4. pages_to_scan and the other plain tunables.
    5. merge_across_nodes and max_page_sharing (they may need an unmerge first).
    6. run, when it starts ksmd (1): scanning starts with the new settings.
    """
    first, advisor, mode, plain, unmerge, last = [], [], [], [], [], []
    for knob in KNOB_NAMES:
        if knob not in changes:
            continue
        if knob == 'run':
            (last if changes[knob][1] == 1 else first).append(knob)
        elif knob.startswith('advisor_') and knob != 'advisor_mode':
            advisor.append(knob)
        elif knob == 'advisor_mode':
            mode.append(knob)
        elif knob in UNMERGE_KNOBS:
            unmerge.append(knob)
        else:
            plain.append(knob)
    return first + advisor + mode + plain + unmerge + last


def tmpfiles_lines(values, root=DEFAULT_ROOT):
    """systemd-tmpfiles.d ``w`` lines that set ``values`` at boot, in the safe write order."""
    order = write_order(dict((k, (None, v)) for k, v in values.items()))
    return ['w %s/%s - - - - %s' % (root, knob, format_value(knob, values[knob])) for knob in order]


# --------------------------------------------------------------------------------------------
# /proc: per-process KSM statistics and ksmd's CPU time


_KSM_STAT_KEYS = {
    'ksm_merging_pages': 'merging_pages',
    'ksm_zero_pages': 'zero_pages',
    'ksm_rmap_items': 'rmap_items',
    'ksm_process_profit': 'process_profit',
    'ksm_merge_any': 'merge_any',
    'ksm_mergeable': 'mergeable',
}


_INT = re.compile(r'^[+-]?\d+$')
# One ksm_stat line: "ksm_rmap_items 64" (numbers) or "ksm_mergeable: yes" (flags, Linux 6.8+).
_STAT_LINE = re.compile(r'^[ \t]*([A-Za-z0-9_]+)[ \t]*:?[ \t]*(.*?)[ \t]*$', re.MULTILINE)


def _parse_stat_value(text):
    if _INT.match(text):
        return int(text)
    word = text.lower()
    if word == 'yes':
        return True
    if word == 'no':
        return False
    return text


def parse_ksm_stat(text):
    """Parse ``/proc/<pid>/ksm_stat``: ``key N`` lines and ``key: yes|no`` lines, unknown keys kept as they are."""
    return dict((key, _parse_stat_value(value)) for key, value in _STAT_LINE.findall(text))


def read_proc_text(path):
    """A /proc or sysfs file's text. Plain descriptor reads, not a buffered text file object: pagefusiond's sweep
    reads every process's ksm_stat, and the file object's set-up cost more than the kernel's work."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b''.join(chunks).decode('utf-8', 'replace')


def read_process_ksm(pid, proc_root=DEFAULT_PROC_ROOT):
    """KSM statistics of one process, or None when the process (or any KSM file of it) is gone.

    Returns a dict with merging_pages, zero_pages, rmap_items, process_profit (ints or None),
    merge_any and mergeable (bool, or None when the kernel does not report them), ``source``
    (``ksm_stat`` or ``ksm_merging_pages``) and ``other`` (keys this model does not know).
    Falls back to ``/proc/<pid>/ksm_merging_pages`` on kernels without ksm_stat.
    """
    base = os.path.join(proc_root, str(pid))
    result = dict((name, None) for name in _KSM_STAT_KEYS.values())
    result['other'] = {}
    try:
        parsed = parse_ksm_stat(read_proc_text(os.path.join(base, 'ksm_stat')))
    except (IOError, OSError):
        parsed = None
    if parsed is not None:
        for key, value in parsed.items():
            if key in _KSM_STAT_KEYS:
                result[_KSM_STAT_KEYS[key]] = value
            else:
                result['other'][key] = value
        result['source'] = 'ksm_stat'
        return result
    try:
        result['merging_pages'] = int(read_proc_text(os.path.join(base, 'ksm_merging_pages')).strip())
    except (IOError, OSError, ValueError):
        return None
    result['source'] = 'ksm_merging_pages'
    return result


def mergeable_smaps_kb(smaps_text, fields=('Rss',)):
    """Sums (kB) of smaps ``fields`` over the VMAs flagged mergeable (``mg`` in VmFlags) of one /proc/<pid>/smaps text."""
    totals = dict((field, 0) for field in fields)
    vma = {}
    for line in smaps_text.splitlines():
        name = line.split(':', 1)[0]
        if name in totals:
            try:
                vma[name] = int(line.split()[1])
            except (IndexError, ValueError):
                vma[name] = 0
        elif name == 'VmFlags':
            if 'mg' in line.split()[1:]:
                for field, value in vma.items():
                    totals[field] += value
            vma = {}
    return totals


def mergeable_rss_pages(smaps_text, page_size):
    """Resident pages in VMAs flagged mergeable (``mg`` in VmFlags) from the text of /proc/<pid>/smaps."""
    return mergeable_smaps_kb(smaps_text)['Rss'] * 1024 // page_size


def parse_smaps_rollup(text):
    """The ``Name: N kB`` fields of /proc/<pid>/smaps_rollup as ``{name: kB}`` (the header line is skipped)."""
    fields = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith(':'):
            try:
                fields[parts[0][:-1]] = int(parts[1])
            except ValueError:
                continue
    return fields


def read_smaps_rollup(pid, proc_root=DEFAULT_PROC_ROOT):
    """``{name: kB}`` of /proc/<pid>/smaps_rollup, or None (process gone, no ptrace access, kernel before 4.14)."""
    try:
        return parse_smaps_rollup(read_proc_text(os.path.join(proc_root, str(pid), 'smaps_rollup')))
    except (IOError, OSError):
        return None


def shared_anon_kb(rollup):
    """kB a process maps without paying for: anonymous Rss minus anonymous Pss (KSM pages are anonymous).

    Anonymous memory only, so that shared libraries (file pages every QEMU maps) do not count as
    saving; fork's not-yet-copied pages still do (small for QEMU). Kernels without ``Pss_Anon``
    (before 5.13) give Rss - Pss.
    """
    if 'Pss_Anon' in rollup and 'Anonymous' in rollup:
        return max(0, rollup['Anonymous'] - rollup['Pss_Anon'])
    return max(0, rollup.get('Rss', 0) - rollup.get('Pss', 0))


def parse_vmstat_ksm(text):
    """KSM's event counters in the text of /proc/vmstat: ``{'cow_ksm': N, 'ksm_swpin_copy': N}`` (those present; {} when none).

    ``cow_ksm`` (where the kernel has it; 6.18 does) counts writes that copied a KSM page: each one broke sharing that
    ksmd's counters keep showing until ksmd visits the page again.
    """
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ('cow_ksm', 'ksm_swpin_copy'):
            try:
                found[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return found


def _split_proc_stat(text):
    """The fields of /proc/<pid>/stat after the ``(comm)`` field: index 0 is field 3 (state)."""
    return text[text.rindex(')') + 2:].split()


def find_ksmd_pid(proc_root=DEFAULT_PROC_ROOT):
    """The pid of the ksmd kernel thread, or None."""
    try:
        entries = os.listdir(proc_root)
    except OSError:
        return None
    for entry in sorted((e for e in entries if e.isdigit()), key=int):
        base = os.path.join(proc_root, entry)
        try:
            if read_proc_text(os.path.join(base, 'comm')).strip() != 'ksmd':
                continue
            fields = _split_proc_stat(read_proc_text(os.path.join(base, 'stat')))
        except (IOError, OSError, ValueError):
            continue
        # Field 9 is flags (index 6 here); a kernel thread has PF_KTHREAD. Field 4 (ppid) is kthreadd (2).
        try:
            if int(fields[6]) & PF_KTHREAD or fields[1] == '2':
                return int(entry)
        except (IndexError, ValueError):
            continue
    return None


def read_ksmd_cpu_seconds(pid=None, proc_root=DEFAULT_PROC_ROOT):
    """CPU seconds ksmd has used: /proc/<pid>/schedstat (ns) first, else utime+stime of /proc/<pid>/stat. None if unknown."""
    if pid is None:
        pid = find_ksmd_pid(proc_root)
        if pid is None:
            return None
    base = os.path.join(proc_root, str(pid))
    try:
        return int(read_proc_text(os.path.join(base, 'schedstat')).split()[0]) / 1e9
    except (IOError, OSError, ValueError, IndexError):
        pass
    return read_process_cpu_seconds(pid, proc_root)


def read_process_cpu_seconds(pid, proc_root=DEFAULT_PROC_ROOT):
    """utime+stime of a process (all its threads) from /proc/<pid>/stat, in seconds (``pid`` may be ``self``); None if unknown."""
    try:
        fields = _split_proc_stat(read_proc_text(os.path.join(proc_root, str(pid), 'stat')))
        ticks = int(fields[11]) + int(fields[12])  # fields 14 and 15
        return float(ticks) / os.sysconf('SC_CLK_TCK')
    except (IOError, OSError, ValueError, IndexError):
        return None


# --------------------------------------------------------------------------------------------
# sysfs


def system_page_size():
    """The kernel page size in bytes."""
    return os.sysconf('SC_PAGE_SIZE')


class KsmSysfs(object):
    """Reads and writes one KSM sysfs tree (``/sys/kernel/mm/ksm`` unless told otherwise)."""

    def __init__(self, root=DEFAULT_ROOT, proc_root=DEFAULT_PROC_ROOT, page_size=None, sleep=time.sleep, clock=time.monotonic):
        self.root = root
        self.proc_root = proc_root
        self.page_size = page_size if page_size is not None else system_page_size()
        self._sleep = sleep
        self._clock = clock

    # -- reading --------------------------------------------------------------------------

    def present(self):
        """True when the kernel has KSM (the sysfs directory exists)."""
        return os.path.isdir(self.root)

    def require(self):
        """Raise KsmNotAvailableError unless KSM is present."""
        if not self.present():
            raise KsmNotAvailableError(self.root)

    def files(self):
        """The names of the files in the KSM directory (feature detection)."""
        self.require()
        with os.scandir(self.root) as entries:  # the directory entry's type: no stat() per file
            return sorted(entry.name for entry in entries if entry.is_file())

    def path(self, name):
        return os.path.join(self.root, name)

    def read(self, name):
        """One file, parsed (see :func:`parse_value`)."""
        return parse_value(name, self._read_raw(name))

    def _read_raw(self, name):
        return read_proc_text(self.path(name))

    def _read_many(self, names):
        values = {}
        for name in names:
            try:
                values[name] = self.read(name)
            except (IOError, OSError):
                continue  # vanished or unreadable: treat as absent
        return values

    def read_knobs(self):
        """Every writable knob of the catalogue that this kernel has: ``{knob: value}``."""
        present = set(self.files())
        return self._read_many([k for k in KNOB_NAMES if k in present])

    def read_counters(self):
        """Every read-only counter this kernel has: ``{counter: int}``."""
        present = set(self.files())
        return self._read_many([c for c in COUNTERS if c in present])

    def read_all(self):
        """Everything in the KSM directory.

        Returns ``{'knobs': {...}, 'counters': {...}, 'other': {...}, 'page_size': N,
        'saved_pages': N, 'saved_bytes': N, 'shared_bytes': N}``. ``other`` holds files this
        model does not know (ints parsed where they are numbers). saved_pages is
        pages_sharing + ksm_zero_pages; shared_bytes is pages_shared times the page size.
        """
        names = self.files()
        values = self._read_many(names)
        knobs = dict((k, values[k]) for k in KNOB_NAMES if k in values)
        counters = dict((c, values[c]) for c in COUNTERS if c in values)
        other = dict((n, v) for n, v in values.items() if n not in knobs and n not in counters)
        result = {'knobs': knobs, 'counters': counters, 'other': other, 'page_size': self.page_size}
        result.update(derived(counters, self.page_size))
        return result

    def ksmd_pid(self):
        return find_ksmd_pid(self.proc_root)

    def ksmd_cpu_seconds(self, pid=None):
        return read_ksmd_cpu_seconds(pid, self.proc_root)

    def process_ksm(self, pid):
        return read_process_ksm(pid, self.proc_root)

    # -- planning ------------------------------------------------------------------------

    def plan(self, wanted, allow_unmerge=False):
        """Read and plan: returns ``(changes, unmerge)`` exactly as :meth:`apply` would act on them.

        Raises KsmError subclasses for anything the real run would refuse, before any write.
        """
        self.require()
        current = self.read_knobs()
        changes = plan_changes(current, wanted, self.root)
        unmerge = check_plan(self.read_counters(), changes, allow_unmerge)
        return changes, unmerge

    # -- writing -------------------------------------------------------------------------

    def _write_raw(self, name, text):
        """Write one file. Separate so tests can make it fail like the kernel does."""
        fd = os.open(self.path(name), os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, text.encode('ascii'))
        finally:
            os.close(fd)

    def write(self, knob, value):
        """Write one (validated) value, mapping errno to the KsmError classes."""
        text = format_value(knob, value)
        try:
            self._write_raw(knob, text)
        except (IOError, OSError) as err:
            code = getattr(err, 'errno', None)
            if code == errno.EBUSY:
                raise KsmBusyError(knob, self._pages_shared(), detail='the kernel answered EBUSY')
            if code in (errno.EACCES, errno.EPERM):
                raise KsmPermissionError(knob, self.path(knob))
            if code == errno.ENOENT:
                raise KsmUnsupportedError(knob, self.root)
            if code == errno.EINVAL and knob == 'pages_to_scan' and self._advisor_active():
                raise KsmAdvisorError(value)
            raise KsmWriteError(knob, text, err)

    def _pages_shared(self):
        try:
            value = self.read('pages_shared')
        except (IOError, OSError):
            return 0
        return value if isinstance(value, int) else 0

    def _advisor_active(self):
        try:
            return self.read('advisor_mode') == 'scan-time'
        except (IOError, OSError):
            return False

    def unmerge(self, timeout=60.0, poll=0.1):
        """Write run=2 and wait (bounded) until pages_shared is 0. Returns the run value before."""
        before = self.read('run')
        self.write('run', 2)
        deadline = self._clock() + timeout
        while True:
            shared = self._pages_shared()
            if shared == 0:
                return before
            if self._clock() >= deadline:
                raise KsmUnmergeTimeout(timeout, shared)
            self._sleep(poll)

    def apply(self, changes, allow_unmerge=False, unmerge_timeout=60.0):
        """Write a plan from :func:`plan_changes` in :func:`write_order`. Returns True when all pages were unmerged.

        A knob that needs an unmerge while KSM pages exist is written after run=2 when
        ``allow_unmerge`` is true (run is restored afterwards, or set as planned), and raises
        KsmBusyError otherwise. An unexpected EBUSY (pages merged since the plan was made) is
        handled the same way.
        """
        unmerged = False
        saved_run = None
        for knob in write_order(changes):
            value = changes[knob][1]
            if knob in UNMERGE_KNOBS:
                if not unmerged and self._pages_shared() > 0:
                    if not allow_unmerge:
                        raise KsmBusyError(knob, self._pages_shared())
                    saved_run = self.unmerge(unmerge_timeout)
                    unmerged = True
                try:
                    self.write(knob, value)
                except KsmBusyError:
                    if unmerged or not allow_unmerge:
                        raise
                    saved_run = self.unmerge(unmerge_timeout)
                    unmerged = True
                    self.write(knob, value)
            elif knob == 'run' and unmerged:
                continue  # written below, once, after the unmerge
            else:
                self.write(knob, value)
        if unmerged:
            target = changes['run'][1] if 'run' in changes else saved_run
            if target != 2 and self.read('run') != target:
                self.write('run', target)
        return unmerged

    def set_knobs(self, changes, allow_unmerge=False, unmerge_timeout=60.0):
        """Set knobs idempotently: read, plan, write only what differs, in a safe order.

        ``changes`` is ``{knob: wanted value}`` (None = leave alone). Returns
        ``(plan, unmerged)`` where plan is ``{knob: (before, after)}`` of what was written.
        """
        plan, dummy = self.plan(changes, allow_unmerge)
        unmerged = self.apply(plan, allow_unmerge, unmerge_timeout)
        return plan, unmerged

    # -- snapshots -----------------------------------------------------------------------

    def snapshot_knobs(self):
        """The current values of every writable knob this kernel has."""
        return self.read_knobs()

    def restore_knobs(self, snapshot, allow_unmerge=False, unmerge_timeout=60.0):
        """Put back a :meth:`snapshot_knobs` result (knobs the kernel lacks are skipped).

        Under the scan-time advisor pages_to_scan is the advisor's, so it is not restored then.
        """
        present = set(self.read_knobs())
        wanted = dict((k, v) for k, v in snapshot.items() if k in present and k in KNOBS)
        if wanted.get('advisor_mode') == 'scan-time':
            wanted.pop('pages_to_scan', None)
        return self.set_knobs(wanted, allow_unmerge, unmerge_timeout)

    def restore_defaults(self, allow_unmerge=False, unmerge_timeout=60.0):
        """Set every knob this kernel has back to the kernel default (run=0)."""
        return self.restore_knobs(KERNEL_DEFAULTS, allow_unmerge, unmerge_timeout)


def derived(counters, size):
    """saved_pages, saved_bytes and shared_bytes from the counters (missing counters count as 0)."""
    saved = counters.get('pages_sharing', 0) + counters.get('ksm_zero_pages', 0)
    return {
        'saved_pages': saved,
        'saved_bytes': saved * size,
        'shared_bytes': counters.get('pages_shared', 0) * size,
    }


def host_summary(sysfs, ksmd_cpu=True):
    """KSM on this host as the modules report it: ``(summary, warning or None)``.

    ``summary`` has ksm_present, ksm_running, knobs, counters, page_size, shared_bytes, saved_bytes,
    general_profit and ksmd_cpu_seconds. Without KSM, or when it cannot be read, the figures stay
    empty and the warning says why (fusion_facts and host_info both build on this one summary).
    ``ksmd_cpu=False`` leaves ksmd_cpu_seconds None and spares the look for ksmd through /proc.
    """
    summary = {
        'ksm_present': sysfs.present(),
        'ksm_running': False,
        'knobs': {},
        'counters': {},
        'page_size': sysfs.page_size,
        'shared_bytes': 0,
        'saved_bytes': 0,
        'general_profit': None,
        'ksmd_cpu_seconds': None,
    }
    if not summary['ksm_present']:
        return summary, ('KSM is not available on this host (%s does not exist; a kernel built without CONFIG_KSM?): '
                         'the KSM figures are empty.' % sysfs.root)
    try:
        everything = sysfs.read_all()
    except (KsmError, IOError, OSError) as exc:
        return summary, 'Cannot read KSM under %s: %s' % (sysfs.root, exc)
    summary.update({
        'ksm_running': everything['knobs'].get('run') == 1,
        'knobs': everything['knobs'],
        'counters': everything['counters'],
        'shared_bytes': everything['shared_bytes'],
        'saved_bytes': everything['saved_bytes'],
        'general_profit': everything['counters'].get('general_profit'),
        'ksmd_cpu_seconds': sysfs.ksmd_cpu_seconds() if ksmd_cpu else None,
    })
    return summary, None
