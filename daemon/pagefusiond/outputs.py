# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What pagefusiond shows: the state file (JSON), Prometheus metrics, and the ``--status`` text."""

from __future__ import annotations

import json
import os
import time

from .config import DEFAULTS
from .phases import PHASES


def ensure_dir(path):
    if path and not os.path.isdir(path):
        os.makedirs(path, 0o755)


def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename."""
    directory = os.path.dirname(path) or '.'
    tmp = os.path.join(directory, '.%s.%d.tmp' % (os.path.basename(path), os.getpid()))
    with open(tmp, 'w') as handle:
        handle.write(text)
        handle.flush()
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def state_json(state):
    return json.dumps(state, sort_keys=True, indent=2) + '\n'


def _num(value):
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, int):
        return str(value)
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return '0'


def render_metrics(state):
    """Prometheus text exposition format for the node_exporter textfile collector."""
    lines = []

    def metric(name, kind, help_text, samples):
        lines.append('# HELP %s %s' % (name, help_text))
        lines.append('# TYPE %s %s' % (name, kind))
        for labels, value in samples:
            label_text = '{%s}' % ','.join('%s="%s"' % kv for kv in labels) if labels else ''
            lines.append('%s%s %s' % (name, label_text, _num(value)))

    knobs = state.get('knobs') or {}
    counters = state.get('counters') or {}
    metric('pagefusiond_up', 'gauge', 'pagefusiond is running (0 once it stopped).',
           [((), 0 if state.get('phase') == 'stopped' else 1)])
    metric('pagefusiond_phase', 'gauge', 'The current phase of pagefusiond (1 for the current one).',
           [((('phase', p),), 1 if state.get('phase') == p else 0) for p in PHASES])
    metric('pagefusiond_phase_since_seconds', 'gauge', 'Epoch seconds when the current phase began.', [((), state.get('since') or 0)])
    metric('pagefusiond_saved_bytes', 'gauge', 'Memory KSM saves: (pages_sharing + ksm_zero_pages) x page size.', [((), state.get('saved_bytes', 0))])
    metric('pagefusiond_shared_bytes', 'gauge', 'Memory in KSM pages (pages_shared x page size).', [((), state.get('shared_bytes', 0))])
    metric('pagefusiond_mergeable_bytes', 'gauge', 'Estimated mergeable memory of all processes.', [((), state.get('mergeable_bytes_estimate', 0))])
    metric('pagefusiond_mergeable_processes', 'gauge', 'Processes with mergeable memory.', [((), state.get('mergeable_processes', 0))])
    metric('pagefusiond_ksmd_cpu_percent', 'gauge', 'ksmd CPU use over the last control step, percent of one core.',
           [((), state.get('ksmd_cpu_percent') or 0)])
    metric('pagefusiond_ksmd_cpu_seconds_total', 'counter', 'CPU seconds ksmd has used since boot.', [((), state.get('ksmd_cpu_seconds') or 0)])
    metric('pagefusiond_pages_to_scan', 'gauge', 'KSM pages_to_scan.', [((), knobs.get('pages_to_scan', 0))])
    metric('pagefusiond_sleep_millisecs', 'gauge', 'KSM sleep_millisecs.', [((), knobs.get('sleep_millisecs', 0))])
    metric('pagefusiond_ksm_run', 'gauge', 'KSM run (0 stopped, 1 running, 2 unmerging).', [((), knobs.get('run', 0))])
    metric('pagefusiond_full_scans_total', 'counter', 'KSM full_scans.', [((), counters.get('full_scans', 0))])
    metric('pagefusiond_boosts_total', 'counter', 'Boosts since pagefusiond started.', [((), state.get('boosts', 0))])
    metric('pagefusiond_last_update_seconds', 'gauge', 'Epoch seconds of the last control step.', [((), state.get('updated') or 0)])
    return '\n'.join(lines) + '\n'


def _mib(value):
    return '%.1f MiB' % ((value or 0) / 1048576.0)


def status_text(state, now=None):
    """A human-readable summary of a state dict."""
    now = time.time() if now is None else now
    knobs = state.get('knobs') or {}
    cpu = state.get('ksmd_cpu_percent')
    age = max(0, now - (state.get('since') or now))
    lines = [
        'pagefusiond %s (pid %s): phase %s for %ds' % (state.get('version'), state.get('pid'), state.get('phase'), age),
        '  saved: %s (%s pages), shared: %s' % (_mib(state.get('saved_bytes')), state.get('saved_pages'), _mib(state.get('shared_bytes'))),
        '  mergeable (estimate): %s in %s processes' % (_mib(state.get('mergeable_bytes_estimate')), state.get('mergeable_processes')),
        '  ksmd: run=%s pages_to_scan=%s sleep_millisecs=%s, CPU %s' % (
            knobs.get('run'), knobs.get('pages_to_scan'), knobs.get('sleep_millisecs'),
            'unknown' if cpu is None else '%.1f%% of one core' % cpu),
        '  updated %.1fs ago' % (now - (state.get('updated') or 0)),
    ]
    if state.get('last_error'):
        lines.append('  last error: %s' % state['last_error'])
    return '\n'.join(lines)


def is_stale(state, now=None):
    """True when the state file is older than three control intervals (plus 5 s)."""
    now = time.time() if now is None else now
    cfg = state.get('config') or {}
    interval = max(cfg.get('interval', DEFAULTS['interval']), cfg.get('boost_interval', DEFAULTS['boost_interval']))
    return state.get('phase') == 'stopped' or now - (state.get('updated') or 0) > 3 * interval + 5
