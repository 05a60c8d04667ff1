# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What pagefusiond shows: the state file (JSON), Prometheus metrics, and the ``--status`` text."""

from __future__ import annotations

import json
import math
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
    with open(tmp, 'w', encoding='utf-8') as handle:
        handle.write(text)
        handle.flush()
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def state_json(state):
    return json.dumps(state, sort_keys=True, indent=2) + '\n'


def _num(value):
    """A sample value as the exposition format writes it (NaN and the infinities spelled its way)."""
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return 'NaN'
    if math.isinf(value):
        return '+Inf' if value > 0 else '-Inf'
    return repr(value)


def escape_label_value(value):
    """A label value escaped as the text exposition format wants: backslash, double quote, newline."""
    return str(value).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def escape_help(text):
    return text.replace('\\', '\\\\').replace('\n', '\\n')


def _sample_line(name, labels, value):
    label_text = ','.join('%s="%s"' % (key, escape_label_value(val)) for key, val in labels)
    return '%s%s %s' % (name, '{%s}' % label_text if label_text else '', _num(value))


def exposition(families):
    """Text exposition of ``[(name, type, help, [(labels, value)])]``; samples whose value is None are left out."""
    lines = []
    for name, kind, help_text, samples in families:
        samples = [(labels, value) for labels, value in samples if value is not None]
        if not samples:
            continue
        lines.append('# HELP %s %s' % (name, escape_help(help_text)))
        lines.append('# TYPE %s %s' % (name, kind))
        lines.extend(_sample_line(name, labels, value) for labels, value in samples)
    return '\n'.join(lines) + '\n'


def _scaled(value, factor):
    return None if value is None else value * factor


def cpu_budget_ratio(state):
    """The ksmd CPU budget of the current phase as a fraction of one core (None once stopped)."""
    cfg = state.get('config') or DEFAULTS
    phase = state.get('phase')
    if phase in ('boost', 'settle'):
        return cfg.get('max_cpu_percent', DEFAULTS['max_cpu_percent']) / 100.0
    if phase in ('idle', 'steady'):
        return cfg.get('steady_max_cpu_percent', DEFAULTS['steady_max_cpu_percent']) / 100.0
    return None


def vm_samples(state, key):
    """``[(labels, value)]`` of one per-VM figure, summed over processes that carry the same name."""
    totals = {}
    for vm in state.get('vms') or ():
        labels = (('vm', vm['vm']), ('tenant', vm.get('tenant') or ''))
        if vm.get(key) is not None:
            totals[labels] = totals.get(labels, 0) + vm[key]
    return sorted(totals.items())


def metric_families(state):
    """The daemon's metric families: ``[(name, type, help, [(labels, value)])]``."""
    knobs = state.get('knobs') or {}
    counters = state.get('counters') or {}
    size = state.get('page_size') or 4096
    phase = state.get('phase')
    tenants = state.get('sharing_tenants') or []
    one = ()
    return [
        ('pagefusiond_up', 'gauge', 'Whether pagefusiond runs (0 once it stopped).', [(one, 0 if phase == 'stopped' else 1)]),
        ('pagefusiond_info', 'gauge', 'pagefusiond version (always 1).', [((('version', state.get('version') or ''),), 1)]),
        ('pagefusiond_phase', 'gauge', 'The phase pagefusiond is in: 1 for the current phase, 0 for the others.',
         [((('phase', p),), 1 if phase == p else 0) for p in PHASES]),
        ('pagefusiond_phase_start_time_seconds', 'gauge', 'Unix time when the current phase began.', [(one, state.get('since'))]),
        ('pagefusiond_start_time_seconds', 'gauge', 'Unix time when pagefusiond started.', [(one, state.get('started'))]),
        ('pagefusiond_last_update_time_seconds', 'gauge', 'Unix time of the last control step (stale when far behind).',
         [(one, state.get('updated'))]),
        ('pagefusiond_cpu_seconds_total', 'counter', 'CPU time pagefusiond itself used (user + system).',
         [(one, state.get('daemon_cpu_seconds'))]),
        ('pagefusiond_boosts_total', 'counter', 'Boosts since pagefusiond started.', [(one, state.get('boosts'))]),
        ('pagefusiond_ksm_saved_bytes', 'gauge', 'Memory KSM saves: (pages_sharing + ksm_zero_pages) x page size.',
         [(one, state.get('saved_bytes'))]),
        ('pagefusiond_real_saved_bytes', 'gauge', 'Memory the mergeable processes really save: the sum of their anonymous Rss '
         'minus anonymous Pss (/proc/<pid>/smaps_rollup) plus their KSM zero pages, sampled at '
         'pagefusiond_real_saved_sample_time_seconds. Unlike pagefusiond_ksm_saved_bytes (ksmd\'s counters) it drops as '
         'soon as a write breaks sharing.', [(one, state.get('real_saved_bytes'))]),
        ('pagefusiond_real_saved_sample_time_seconds', 'gauge', 'Unix time when pagefusiond_real_saved_bytes was sampled.',
         [(one, state.get('real_saved_sampled'))]),
        ('pagefusiond_ksm_cow_total', 'counter', 'cow_ksm of /proc/vmstat: writes that copied a KSM page (broke its sharing) '
         'since boot.', [(one, state.get('cow_ksm'))]),
        ('pagefusiond_steady_pass_seconds', 'gauge', 'Seconds one full pass should take in the steady phase, set from the rate '
         'at which writes break sharing.', [(one, state.get('steady_pass_seconds'))]),
        ('pagefusiond_ksm_shared_bytes', 'gauge', 'Memory in KSM pages: pages_shared x page size.', [(one, state.get('shared_bytes'))]),
        ('pagefusiond_ksm_zero_page_bytes', 'gauge', 'Empty pages KSM merged with the kernel zero page: ksm_zero_pages x page size.',
         [(one, _scaled(counters.get('ksm_zero_pages'), size))]),
        ('pagefusiond_ksm_general_profit_bytes', 'gauge', 'KSM general_profit: memory saved minus the rmap items it costs '
         '(negative: KSM costs more than it saves).', [(one, counters.get('general_profit'))]),
        ('pagefusiond_ksm_full_scans_total', 'counter', 'KSM full_scans: passes over all mergeable memory since boot.',
         [(one, counters.get('full_scans'))]),
        ('pagefusiond_ksm_pages_scanned_total', 'counter', 'KSM pages_scanned since boot.', [(one, counters.get('pages_scanned'))]),
        ('pagefusiond_ksm_run', 'gauge', 'KSM run: 0 stopped, 1 running, 2 unmerging.', [(one, knobs.get('run'))]),
        ('pagefusiond_ksm_pages_to_scan', 'gauge', 'KSM pages_to_scan: pages ksmd scans per wake-up.', [(one, knobs.get('pages_to_scan'))]),
        ('pagefusiond_ksm_sleep_seconds', 'gauge', 'KSM sleep_millisecs, in seconds: ksmd sleep between wake-ups.',
         [(one, _scaled(knobs.get('sleep_millisecs'), 0.001))]),
        ('pagefusiond_mergeable_bytes', 'gauge', 'Estimated mergeable memory of all processes.', [(one, state.get('mergeable_bytes_estimate'))]),
        ('pagefusiond_mergeable_processes', 'gauge', 'Processes with mergeable memory.', [(one, state.get('mergeable_processes'))]),
        ('pagefusiond_ksmd_cpu_seconds_total', 'counter', 'CPU time ksmd used since boot.', [(one, state.get('ksmd_cpu_seconds'))]),
        ('pagefusiond_ksmd_cpu_ratio', 'gauge', 'ksmd CPU use over the last control step, as a fraction of one core.',
         [(one, _scaled(state.get('ksmd_cpu_percent'), 0.01))]),
        ('pagefusiond_ksmd_cpu_budget_ratio', 'gauge', 'The ksmd CPU budget of the current phase, as a fraction of one core.',
         [(one, cpu_budget_ratio(state))]),
        ('pagefusiond_vm_merged_bytes', 'gauge', "A VM's memory that KSM merged (ksm_merging_pages of its QEMU process x page size).",
         vm_samples(state, 'merged_bytes')),
        ('pagefusiond_vm_zero_page_bytes', 'gauge', "A VM's empty pages merged with the kernel zero page.",
         vm_samples(state, 'zero_page_bytes')),
        ('pagefusiond_vm_profit_bytes', 'gauge', "A VM's KSM profit (ksm_process_profit): merged memory minus its rmap cost.",
         vm_samples(state, 'profit_bytes')),
        ('pagefusiond_sharing_tenants', 'gauge', 'Tenants whose labelled VMs run with page fusion on this host.', [(one, len(tenants))]),
        ('pagefusiond_cross_tenant_sharing', 'gauge', 'Whether VMs of more than one tenant share page fusion on this host (1: yes).',
         [(one, 1 if len(tenants) > 1 else 0)]),
    ]


def render_metrics(state):
    """Prometheus text exposition format (version 0.0.4) for the node_exporter textfile collector."""
    return exposition(metric_families(state))


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
        '  real saving (Rss - Pss): %s' % real_text(state, now),
        '  mergeable (estimate): %s in %s processes' % (_mib(state.get('mergeable_bytes_estimate')), state.get('mergeable_processes')),
        '  ksmd: run=%s pages_to_scan=%s sleep_millisecs=%s, CPU %s' % (
            knobs.get('run'), knobs.get('pages_to_scan'), knobs.get('sleep_millisecs'),
            'unknown' if cpu is None else '%.1f%% of one core' % cpu),
        '  updated %.1fs ago' % (now - (state.get('updated') or 0)),
    ]
    if state.get('last_error'):
        lines.append('  last error: %s' % state['last_error'])
    return '\n'.join(lines)


def real_text(state, now):
    """The sampled real saving, its age and the break rate, for ``--status``."""
    if state.get('real_saved_bytes') is None:
        return 'not sampled yet'
    breaks = state.get('sharing_breaks_per_second')
    return '%s, sampled %ds ago; sharing broken by writes: %s pages/s, steady pass %ss' % (
        _mib(state['real_saved_bytes']), max(0, now - (state.get('real_saved_sampled') or now)),
        'unknown' if breaks is None else breaks, state.get('steady_pass_seconds'))


def is_stale(state, now=None):
    """True when the state file is older than three control intervals (plus 5 s)."""
    now = time.time() if now is None else now
    cfg = state.get('config') or {}
    interval = max(cfg.get('interval', DEFAULTS['interval']), cfg.get('boost_interval', DEFAULTS['boost_interval']))
    return state.get('phase') == 'stopped' or now - (state.get('updated') or 0) > 3 * interval + 5
