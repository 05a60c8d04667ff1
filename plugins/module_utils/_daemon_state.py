# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Where the pagefusiond host daemon keeps its state file, and how to read it.

Private module_utils of pagefusion.core. The daemon writes the file; ``fusion_facts`` and the
daemon's own ``--status`` read it. Python standard library only (the daemon imports it on hosts
without Ansible).
"""

from __future__ import annotations

import errno
import json

DEFAULT_STATE_PATH = '/run/pagefusiond/state.json'


def read_state(path):
    """``(state, warning)``: the daemon's JSON object, or None with a warning when it is not usable.

    An absent file is no daemon on this host: ``(None, None)``.
    """
    try:
        with open(path, 'rb') as handle:
            raw = handle.read()
    except (IOError, OSError) as exc:
        if getattr(exc, 'errno', None) == errno.ENOENT:
            return None, None
        return None, 'Cannot read the pagefusiond state file %s: %s' % (path, exc)
    try:
        state = json.loads(raw.decode('utf-8'))
    except (ValueError, UnicodeDecodeError) as exc:
        return None, 'The pagefusiond state file %s is not valid JSON (%s); host.daemon is null.' % (path, exc)
    if not isinstance(state, dict):
        return None, 'The pagefusiond state file %s holds a JSON %s, not an object; host.daemon is null.' % (
            path, type(state).__name__)
    return state, None


def real_saving(state):
    """``(bytes, sampled)``: the real saving pagefusiond last sampled and when (epoch seconds); ``(None, None)`` without one.

    The daemon's ``real_saved_bytes`` is the anonymous Rss - Pss of the mergeable processes (plus
    their KSM zero pages): what merging really saves at that moment, unlike KSM's counters, which
    keep counting a page whose sharing a write broke until ksmd visits it again.
    """
    if not isinstance(state, dict):
        return None, None
    value, sampled = state.get('real_saved_bytes'), state.get('real_saved_sampled')
    if not isinstance(value, int) or isinstance(value, bool):
        return None, None
    return value, sampled if isinstance(sampled, (int, float)) and not isinstance(sampled, bool) else None
