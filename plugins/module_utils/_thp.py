# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Transparent huge pages (THP) and khugepaged under /sys/kernel/mm/transparent_hugepage: the one model.

Why pagefusion.core cares (docs/thp-and-ksm-zero-pages.md): khugepaged counts a PTE that maps the zero
page (a KSM zero page with use_zero_pages=1) as "none", and collapses a 2 MiB range with up to
``khugepaged/max_ptes_none`` such PTEs (kernel default 511) into a fresh huge page: the zero pages become
real memory again. ``max_ptes_none=0`` stops that. The kernel's THP shrinker (``shrink_underused``) reads
the same knob. Used by the ksm and host_info modules and by pagefusiond.
"""

from __future__ import annotations

import errno
import os

DEFAULT_ROOT = '/sys/kernel/mm/transparent_hugepage'
MAX_PTES_NONE = 'max_ptes_none'
KERNEL_DEFAULT_MAX_PTES_NONE = 511
# The value that keeps KSM zero pages: any other lets khugepaged refill ranges that hold some of them.
ZERO_PAGE_SAFE_MAX_PTES_NONE = 0


class ThpError(Exception):
    """A THP sysfs problem, naming the file and what to do."""


class ThpNotAvailableError(ThpError):
    def __init__(self, root):
        ThpError.__init__(self, 'This kernel has no khugepaged settings (%s/khugepaged/%s is missing): it was built '
                                'without CONFIG_TRANSPARENT_HUGEPAGE. Leave thp_max_ptes_none unset on this host.'
                          % (root, MAX_PTES_NONE))
        self.root = root


class ThpValueError(ThpError):
    def __init__(self, value, limit):
        ThpError.__init__(self, 'Invalid value %r for thp_max_ptes_none: allowed values are integers from 0 to %d '
                                '(the pages of one huge page minus one on this host).' % (value, limit))


class ThpWriteError(ThpError):
    def __init__(self, path, value, err):
        ThpError.__init__(self, 'Could not write %s to %s: %s (root is needed; a container needs /sys writable).'
                          % (value, path, os.strerror(err.errno) if err.errno else err))


def parse_mode(text):
    """The selected word of a THP mode file (``always [madvise] never`` gives ``madvise``); None if none is selected."""
    for word in text.split():
        if word.startswith('[') and word.endswith(']'):
            return word[1:-1]
    return None


def plan_max_ptes_none(current, wanted, limit):
    """``{}`` or ``{'max_ptes_none': (current, wanted)}``; ``wanted`` None means leave it alone."""
    if wanted is None:
        return {}
    if isinstance(wanted, bool) or not isinstance(wanted, int) or not 0 <= wanted <= limit:
        raise ThpValueError(wanted, limit)
    return {} if current == wanted else {MAX_PTES_NONE: (current, wanted)}


def zero_pages_at_risk(enabled, max_ptes_none):
    """Whether khugepaged may turn KSM zero pages back into memory: THP is not off and max_ptes_none is above 0."""
    return enabled not in (None, 'never') and bool(max_ptes_none)


def risk_warning(state, use_zero_pages):
    """The warning host_info and fusion_facts show, or None."""
    if not (use_zero_pages and state.get('zero_pages_at_risk')):
        return None
    return ('Transparent huge pages are %s and khugepaged max_ptes_none is %s: khugepaged collapses 2 MiB ranges '
            'that hold KSM zero pages back into huge pages, so zero-page savings come back as used memory. '
            'Set max_ptes_none to 0 (pagefusion.core.ksm thp_max_ptes_none=0, or pagefusiond thp_max_ptes_none = 0).'
            % (state.get('enabled'), state.get(MAX_PTES_NONE)))


class ThpSysfs(object):
    """The THP sysfs directory (``root``; tests pass a fake tree)."""

    def __init__(self, root=DEFAULT_ROOT, page_size=None):
        self.root = root
        self.page_size = page_size or os.sysconf('SC_PAGE_SIZE')

    @classmethod
    def beside(cls, ksm_root, page_size=None):
        """The THP directory next to a KSM directory (``/sys/kernel/mm/ksm`` gives the real one; a fake KSM tree a fake one)."""
        return cls(os.path.join(os.path.dirname(os.path.normpath(ksm_root)), 'transparent_hugepage'), page_size)

    def khugepaged_path(self, name):
        return os.path.join(self.root, 'khugepaged', name)

    def present(self):
        return os.path.isfile(self.khugepaged_path(MAX_PTES_NONE))

    def require(self):
        if not self.present():
            raise ThpNotAvailableError(self.root)

    def _read(self, path):
        try:
            with open(path) as handle:
                return handle.read().strip()
        except (IOError, OSError):
            return None

    def mode(self, name='enabled'):
        text = self._read(os.path.join(self.root, name))
        return parse_mode(text) if text is not None else None

    def max_ptes_none(self):
        text = self._read(self.khugepaged_path(MAX_PTES_NONE))
        return int(text) if text is not None and text.isdigit() else None

    def limit(self):
        """The highest max_ptes_none: pages per PMD huge page minus one (511 with 4 KiB pages)."""
        text = self._read(os.path.join(self.root, 'hpage_pmd_size'))
        size = int(text) if text and text.isdigit() else 2 * 1024 * 1024
        return size // self.page_size - 1

    def state(self):
        """What host_info reports: present, enabled, defrag, max_ptes_none, its limit, zero_pages_at_risk."""
        if not self.present():
            return {'present': False, 'enabled': self.mode(), 'defrag': self.mode('defrag'), MAX_PTES_NONE: None,
                    'max_ptes_none_limit': None, 'zero_pages_at_risk': False}
        enabled, value = self.mode(), self.max_ptes_none()
        return {'present': True, 'enabled': enabled, 'defrag': self.mode('defrag'), MAX_PTES_NONE: value,
                'max_ptes_none_limit': self.limit(), 'zero_pages_at_risk': zero_pages_at_risk(enabled, value)}

    def plan(self, wanted):
        """Read, then plan: ``{}`` or ``{'max_ptes_none': (before, after)}``. Nothing is written."""
        if wanted is None:
            return {}
        self.require()
        return plan_max_ptes_none(self.max_ptes_none(), wanted, self.limit())

    def write_max_ptes_none(self, value):
        path = self.khugepaged_path(MAX_PTES_NONE)
        try:
            with open(path, 'w') as handle:
                handle.write('%d' % value)
        except (IOError, OSError) as err:
            if err.errno == errno.ENOENT:
                raise ThpNotAvailableError(self.root)
            raise ThpWriteError(path, value, err)
