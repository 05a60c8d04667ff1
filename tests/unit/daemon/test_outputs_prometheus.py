# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""pagefusiond's Prometheus exposition, read back with prometheus_client's text parser (the real one, from PyPI)."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.pagefusion.core.daemon.pagefusiond.outputs import metric_families, render_metrics
from ansible_collections.pagefusion.core.daemon.pagefusiond.phases import PHASES
from ansible_collections.pagefusion.core.daemon.pagefusiond.service import Daemon
from ansible_collections.pagefusion.core.tests.unit.daemon.sim import Clock, SimKernel, make_config

NASTY_NAMES = [
    'plain',
    'with "quotes"',
    'back\\slash\\',
    'new\nline',
    'all \\"\n at once\\n',
    'unicodé ✓ 名前',
    '',
]


def full_state(vms=(), phase='steady', tenants=()):
    return {
        'phase': phase, 'since': 1700000100.5, 'updated': 1700000200.25, 'started': 1700000000.0, 'version': '1.2.0',
        'pid': 4242, 'page_size': 4096,
        'knobs': {'run': 1, 'pages_to_scan': 512, 'sleep_millisecs': 20},
        'counters': {'full_scans': 7, 'pages_scanned': 123456, 'general_profit': -8192, 'ksm_zero_pages': 10},
        'saved_bytes': 4096 * 300, 'saved_pages': 300, 'shared_bytes': 4096 * 50,
        'ksmd_cpu_percent': 12.5, 'ksmd_cpu_seconds': 33.25, 'daemon_cpu_seconds': 1.5,
        'mergeable_bytes_estimate': 4096 * 1000, 'mergeable_processes': len(vms), 'boosts': 2,
        'vms': list(vms), 'sharing_tenants': sorted(tenants),
        'config': {'max_cpu_percent': 95.0, 'steady_max_cpu_percent': 2.0},
        'real_saved_bytes': 4096 * 280, 'real_saved_sampled': 1700000190.5, 'cow_ksm': 5150, 'steady_pass_seconds': 12.5,
    }


def vm(name, merged, tenant=None, pid=100):
    return {'vm': name, 'tenant': tenant, 'pid': pid, 'merged_bytes': merged, 'zero_page_bytes': 4096, 'profit_bytes': merged - 64}


def parse(text):
    """``{family name: family}`` as prometheus_client reads the text (counters lose their _total there)."""
    return dict((family.name, family) for family in text_string_to_metric_families(text))


def value(families, name, **labels):
    family = families[name[:-len('_total')] if name.endswith('_total') else name]
    matches = [s.value for s in family.samples if s.name == name and s.labels == labels]
    assert len(matches) == 1, (name, labels, family.samples)
    return matches[0]


def test_every_family_has_help_type_and_a_unit_in_its_name():
    text = render_metrics(full_state([vm('a', 4096)]))
    families = parse(text)
    for name, kind, _help, _samples in metric_families(full_state([vm('a', 4096)])):
        assert '# HELP %s ' % name in text and '# TYPE %s %s\n' % (name, kind) in text
        assert (kind == 'counter') == name.endswith('_total'), name
        assert not name.endswith('_percent') and not name.endswith('_millisecs'), name
    assert families['pagefusiond_ksmd_cpu_seconds'].type == 'counter'
    assert families['pagefusiond_cpu_seconds'].type == 'counter'
    assert families['pagefusiond_ksm_saved_bytes'].type == 'gauge'


def test_values_in_base_units():
    families = parse(render_metrics(full_state()))
    assert value(families, 'pagefusiond_ksm_saved_bytes') == 4096 * 300
    assert value(families, 'pagefusiond_ksm_zero_page_bytes') == 4096 * 10
    assert value(families, 'pagefusiond_ksm_general_profit_bytes') == -8192
    assert value(families, 'pagefusiond_ksmd_cpu_ratio') == pytest.approx(0.125)
    assert value(families, 'pagefusiond_ksmd_cpu_seconds_total') == 33.25
    assert value(families, 'pagefusiond_cpu_seconds_total') == 1.5
    assert value(families, 'pagefusiond_ksm_sleep_seconds') == pytest.approx(0.02)
    assert value(families, 'pagefusiond_ksmd_cpu_budget_ratio') == pytest.approx(0.02)
    assert value(families, 'pagefusiond_last_update_time_seconds') == 1700000200.25
    assert value(families, 'pagefusiond_up') == 1
    # the real saving (Rss - Pss, sampled) beside the counters' saving, never mixed up with it
    assert value(families, 'pagefusiond_real_saved_bytes') == 4096 * 280
    assert value(families, 'pagefusiond_real_saved_sample_time_seconds') == 1700000190.5
    assert value(families, 'pagefusiond_ksm_cow_total') == 5150
    assert value(families, 'pagefusiond_steady_pass_seconds') == 12.5


@pytest.mark.parametrize('phase', PHASES)
def test_one_phase_is_current(phase):
    families = parse(render_metrics(full_state(phase=phase)))
    current = dict((s.labels['phase'], s.value) for s in families['pagefusiond_phase'].samples)
    assert current == dict((p, 1 if p == phase else 0) for p in PHASES)
    assert value(families, 'pagefusiond_up') == (0 if phase == 'stopped' else 1)
    assert ('pagefusiond_ksmd_cpu_budget_ratio' in families) == (phase != 'stopped')
    budget = {'boost': 0.95, 'settle': 0.95, 'idle': 0.02, 'steady': 0.02}
    if phase in budget:
        assert value(families, 'pagefusiond_ksmd_cpu_budget_ratio') == pytest.approx(budget[phase])


def test_vm_names_with_quotes_backslashes_newlines_and_unicode_survive_the_parser():
    vms = [vm(name, 4096 * (i + 1), tenant='tenant "%d"\\\n' % i, pid=1000 + i) for i, name in enumerate(NASTY_NAMES)]
    families = parse(render_metrics(full_state(vms)))
    merged = dict(((s.labels['vm'], s.labels['tenant']), s.value) for s in families['pagefusiond_vm_merged_bytes'].samples)
    assert merged == dict(((name, 'tenant "%d"\\\n' % i), 4096 * (i + 1)) for i, name in enumerate(NASTY_NAMES))
    assert len(families['pagefusiond_vm_profit_bytes'].samples) == len(NASTY_NAMES)


def test_processes_with_one_name_are_summed_and_unlabelled_tenants_are_empty():
    families = parse(render_metrics(full_state([vm('web', 4096, pid=1), vm('web', 8192, pid=2), vm('db', 0, pid=3)])))
    assert value(families, 'pagefusiond_vm_merged_bytes', vm='web', tenant='') == 12288
    assert value(families, 'pagefusiond_vm_merged_bytes', vm='db', tenant='') == 0


def test_cross_tenant_sharing():
    families = parse(render_metrics(full_state([vm('a', 1, 'acme'), vm('b', 1, 'umbrella')], tenants=['acme', 'umbrella'])))
    assert value(families, 'pagefusiond_sharing_tenants') == 2
    assert value(families, 'pagefusiond_cross_tenant_sharing') == 1
    families = parse(render_metrics(full_state([vm('a', 1, 'acme')], tenants=['acme'])))
    assert value(families, 'pagefusiond_cross_tenant_sharing') == 0


def test_unknown_figures_are_left_out_and_odd_floats_are_spelled_right():
    state = full_state()
    state.update(ksmd_cpu_percent=None, ksmd_cpu_seconds=None, counters={}, daemon_cpu_seconds=float('nan'))
    state['knobs']['pages_to_scan'] = float('inf')
    text = render_metrics(state)
    families = parse(text)
    for name in ('pagefusiond_ksmd_cpu_ratio', 'pagefusiond_ksmd_cpu_seconds', 'pagefusiond_ksm_general_profit_bytes',
                 'pagefusiond_ksm_zero_page_bytes', 'pagefusiond_vm_merged_bytes'):
        assert name not in families and '# TYPE %s' % name not in text
    assert math.isnan(value(families, 'pagefusiond_cpu_seconds_total'))
    assert value(families, 'pagefusiond_ksm_pages_to_scan') == float('inf')


def test_a_sparse_state_still_renders():
    families = parse(render_metrics({'phase': 'stopped'}))
    assert value(families, 'pagefusiond_up') == 0
    assert value(families, 'pagefusiond_phase', phase='stopped') == 1
    assert value(families, 'pagefusiond_cross_tenant_sharing') == 0


def test_the_daemon_names_a_qemu_process_and_writes_its_merged_bytes(tmp_path):
    metrics_dir = tmp_path / 'textfile'
    metrics_dir.mkdir()
    conf = make_config(state_path=str(tmp_path / 'run' / 'state.json'), metrics_path=str(metrics_dir / 'pagefusiond.prom'))
    kernel = SimKernel(tmp_path)
    kernel.add_process(1401, mib=64)
    kernel.add_process(1402, mib=64)
    (tmp_path / 'proc' / '1401' / 'cmdline').write_bytes(b'/usr/bin/qemu-system-x86_64\0-name\0guest=web "1",,\\x,debug-threads=on\0-S\0')
    (tmp_path / 'proc' / '1402' / 'cmdline').write_bytes(b'python3\0synthetic_guests.py\0')
    clock = Clock()
    daemon = Daemon('/nonexistent.conf', conf, ksm=kernel.sysfs(), log=lambda m: None, clock=clock, wall=clock.wall)
    for _step in range(40):
        daemon.run_step()
        kernel.advance(0.5)
        clock.now += 0.5
    state = daemon.controller.state
    assert [v['vm'] for v in state['vms']] == ['web "1",\\x']
    assert state['vms'][0]['merged_bytes'] > 0
    families = parse((metrics_dir / 'pagefusiond.prom').read_text(encoding='utf-8'))
    assert value(families, 'pagefusiond_vm_merged_bytes', vm='web "1",\\x', tenant='') == state['vms'][0]['merged_bytes']
    assert value(families, 'pagefusiond_cpu_seconds_total') > 0
    assert value(families, 'pagefusiond_mergeable_processes') == 2
