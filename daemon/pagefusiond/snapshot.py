# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The host's KSM knobs from before pagefusiond started, kept in a file, and putting them back."""

from __future__ import annotations

import json
import os

from .collection import _ksm
from .outputs import ensure_dir, write_atomic


def knob_text(values):
    """``{knob: value}`` as ``knob=value, ...`` in the order KSM is written."""
    return ', '.join('%s=%s' % (k, values[k]) for k in _ksm.write_order(dict((k, (None, v)) for k, v in values.items())))


class KnobSnapshot(object):
    """The knobs to restore when the daemon stops (``knobs``; None until :meth:`take`).

    The snapshot is also saved to ``path`` (None: kept in memory only), so that a daemon that
    crashed with its boost settings in place leaves the host's own settings for the next run.
    ``log`` takes a message; ``error`` an error message (the controller logs each one once).
    """

    def __init__(self, ksm, path, log, error, wall):
        self.ksm = ksm
        self.path = path
        self.log = log
        self.error = error
        self.wall = wall
        self.knobs = None

    def _load(self):
        with open(self.path, 'r') as handle:
            return json.load(handle)['knobs']

    def take(self):
        """Remember the host's KSM knobs (or re-use the snapshot a crashed predecessor left behind)."""
        if self.path and os.path.exists(self.path):
            try:
                self.knobs = self._load()
                self.log('re-using the KSM settings saved by an earlier run in %s' % self.path)
                return self.knobs
            except (IOError, OSError, ValueError, KeyError, TypeError):
                pass
        self.knobs = self.ksm.snapshot_knobs()
        if self.path:
            try:
                ensure_dir(os.path.dirname(self.path))
                write_atomic(self.path, json.dumps({'knobs': self.knobs, 'saved': self.wall()}, sort_keys=True) + '\n')
            except (IOError, OSError) as err:
                self.error('cannot save the KSM settings to %s: %s' % (self.path, err))
        return self.knobs

    def restore(self):
        """Put the snapshot back (never unmerging: a saved run=2 is restored as run=0)."""
        if not self.knobs:
            return False
        wanted = dict(self.knobs)
        if wanted.get('run') == 2:
            wanted['run'] = 0
        try:
            self.ksm.restore_knobs(wanted)
        except _ksm.KsmError as err:
            self.error('restoring the KSM settings failed: %s' % err)
            return False
        self.log('restored the KSM settings from before pagefusiond started: %s' % knob_text(wanted))
        self.forget()
        return True

    def forget(self):
        """Remove the saved file (the daemon stops without restoring, or has restored)."""
        if self.path:
            try:
                os.unlink(self.path)
            except OSError:
                pass
