# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The host's KSM knobs (and khugepaged's max_ptes_none) from before pagefusiond started, kept in a file, and putting them back."""

from __future__ import annotations

import json
import os

from .collection import _ksm, _thp, _unmerge_fit
from .outputs import ensure_dir, write_atomic


def knob_text(values):
    """``{knob: value}`` as ``knob=value, ...`` in the order KSM is written."""
    return ', '.join('%s=%s' % (k, values[k]) for k in _ksm.write_order(dict((k, (None, v)) for k, v in values.items())))


class KnobSnapshot(object):
    """The knobs to restore when the daemon stops (``knobs``; None until :meth:`take`).

    The snapshot is also saved to ``path`` (None: kept in memory only), so that a daemon that
    crashed with its boost settings in place leaves the host's own settings for the next run.
    ``log`` takes a message; ``error`` an error message (the controller logs each one once).
    ``config`` returns the daemon's current config (``unmerge_on_restore``, ``unmerge_margin_mib``);
    ``note`` says, after :meth:`restore`, what was left merged and why (None when nothing was).
    With ``thp_max_ptes_none`` configured (not ``keep``), :meth:`take` also saves khugepaged's
    max_ptes_none (``thp``) and sets the configured value; :meth:`restore` puts the saved one back.
    """

    def __init__(self, ksm, path, log, error, wall, config=None):
        self.ksm = ksm
        self.path = path
        self.log = log
        self.error = error
        self.wall = wall
        self.config = config or (lambda: {})
        self.knobs = None
        self.note = None
        # The THP directory next to the KSM one: the real one on a host, a fake (or none) in tests.
        self.thp = _thp.ThpSysfs.beside(ksm.root)
        self.thp_saved = None

    def _load(self):
        with open(self.path, 'r') as handle:
            return json.load(handle)['knobs']

    def take(self):
        """Remember the host's KSM knobs (or re-use the snapshot a crashed predecessor left behind)."""
        if self.path and os.path.exists(self.path):
            try:
                self.knobs = self._load()
                self.thp_saved = self._load_thp()
                self.log('re-using the KSM settings saved by an earlier run in %s' % self.path)
                self._apply_thp()
                return self.knobs
            except (IOError, OSError, ValueError, KeyError, TypeError):
                pass
        self.knobs = self.ksm.snapshot_knobs()
        self._save()
        self._apply_thp()
        return self.knobs

    def _load_thp(self):
        with open(self.path, 'r') as handle:
            saved = json.load(handle).get('thp')
        return saved if isinstance(saved, dict) and isinstance(saved.get(_thp.MAX_PTES_NONE), int) else None

    def _save(self):
        if not self.path:
            return
        data = {'knobs': self.knobs, 'saved': self.wall()}
        if self.thp_saved:
            data['thp'] = self.thp_saved
        try:
            ensure_dir(os.path.dirname(self.path))
            write_atomic(self.path, json.dumps(data, sort_keys=True) + '\n')
        except (IOError, OSError) as err:
            self.error('cannot save the KSM settings to %s: %s' % (self.path, err))

    def _apply_thp(self):
        """Set the configured max_ptes_none, first saving the host's own value (once) next to the KSM knobs."""
        wanted = self.config().get('thp_max_ptes_none', 'keep')
        # Without a file for the host's own value (pagefusiond --once), a crash could not put it back: leave it.
        if wanted == 'keep' or not self.path or not self.thp.present():
            return
        try:
            current = self.thp.max_ptes_none()
            if not self.thp.plan(wanted):
                return
            if self.thp_saved is None:
                self.thp_saved = {_thp.MAX_PTES_NONE: current}
                self._save()
            self.thp.write_max_ptes_none(wanted)
        except _thp.ThpError as err:
            self.error('cannot set khugepaged max_ptes_none (thp_max_ptes_none): %s' % err)
            return
        self.log('set khugepaged max_ptes_none=%d (was %s): khugepaged no longer turns KSM zero pages back into huge pages'
                 % (wanted, current))

    def _restore_thp(self):
        if not self.thp_saved:
            return
        value = self.thp_saved[_thp.MAX_PTES_NONE]
        try:
            if self.thp.plan(value):
                self.thp.write_max_ptes_none(value)
                self.log('restored khugepaged max_ptes_none=%d' % value)
        except _thp.ThpError as err:
            self.error('restoring khugepaged max_ptes_none=%d failed: %s' % (value, err))
        self.thp_saved = None

    def restore(self):
        """Put the snapshot back; it unmerges only when configured to and when the take-back fits.

        Otherwise a saved run=2 is restored as run=0, and merge_across_nodes/max_page_sharing, which
        need an unmerge while pages are merged, are left as they are: the pages stay merged, and
        ``note`` (also logged) says so with the figures.
        """
        if not self.knobs:
            return False
        self._restore_thp()
        wanted = dict(self.knobs)
        knobs = self._needs_unmerge(wanted)
        self.note = None
        allow = bool(knobs) and self._unmerge_allowed(wanted, knobs)
        if knobs and not allow:
            wanted = self._without_unmerge(wanted, knobs)
        elif wanted.get('run') == 2 and not allow:
            wanted['run'] = 0  # never write run=2 unless this restore was allowed to unmerge
        try:
            self.ksm.restore_knobs(wanted, allow_unmerge=allow)
        except _ksm.KsmError as err:
            self.error('restoring the KSM settings failed: %s' % err)
            return False
        self.log('restored the KSM settings from before pagefusiond started: %s' % knob_text(wanted))
        if self.note:
            self.log(self.note)
        self.forget()
        return True

    def _needs_unmerge(self, wanted):
        """The saved knobs whose restore would unmerge every KSM page now."""
        try:
            current = self.ksm.read_knobs()
            shared = self.ksm.read_counters().get('pages_shared', 0)
        except (_ksm.KsmError, IOError, OSError):
            return []
        knobs = ['run'] if wanted.get('run') == 2 and current.get('run') != 2 else []
        if shared:
            knobs += [k for k in _ksm.UNMERGE_KNOBS if k in wanted and k in current and wanted[k] != current[k]]
        return knobs

    def _unmerge_allowed(self, wanted, knobs):
        """Whether the restore may unmerge: configured to, and the memory taken back fits (else ``note`` says why)."""
        config = self.config()
        what = 'restoring %s needs all KSM pages unmerged' % ', '.join('%s=%s' % (k, wanted[k]) for k in knobs)
        kept = 'kept the KSM pages merged (%s)' % ', '.join(
            'run=0 instead of run=2' if k == 'run' else '%s left at its current value' % k for k in knobs)
        if not config.get('unmerge_on_restore'):
            self.note = '%s: %s, and unmerge_on_restore is false' % (kept, what)
            return False
        fit = _unmerge_fit.host_fit(self.ksm, config.get('unmerge_margin_mib', _unmerge_fit.DEFAULT_MARGIN_MIB),
                                    self.ksm.proc_root)
        if not fit['fits']:
            self.note = '%s: %s, but %s (unmerge_margin_mib)' % (kept, what, _unmerge_fit.describe(fit))
            return False
        self.log('unmerging all KSM pages on restore (%s): it takes back %.1f MiB of %.1f MiB MemAvailable, margin %.1f MiB'
                 % (what, fit['take_back_mib'], fit['mem_available_mib'], fit['margin_mib']))
        return True

    @staticmethod
    def _without_unmerge(wanted, knobs):
        """The saved knobs minus what would unmerge: run=2 becomes run=0, the unmerge-only knobs stay as they are."""
        wanted = dict((k, v) for k, v in wanted.items() if k == 'run' or k not in knobs)
        if wanted.get('run') == 2:
            wanted['run'] = 0
        return wanted

    def forget(self):
        """Remove the saved file (the daemon stops without restoring, or has restored)."""
        if self.path:
            try:
                os.unlink(self.path)
            except OSError:
                pass
