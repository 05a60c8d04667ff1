# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The shipped Prometheus rules and Grafana dashboard: checked by promtool (Debian's prometheus package), and
every metric they use is one pagefusiond exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from ansible_collections.pagefusion.core.daemon.pagefusiond.outputs import metric_families
from ansible_collections.pagefusion.core.tests.unit.daemon.test_outputs_prometheus import full_state, vm

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
RULES = os.path.join(ROOT, 'extras', 'prometheus', 'pagefusion.rules.yml')
RULES_TEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'pagefusion.rules.test.yml')
DASHBOARD = os.path.join(ROOT, 'extras', 'grafana', 'pagefusion-dashboard.json')
# Grafana's variables, as a query would see them on an "All hosts" dashboard.
GRAFANA_VARIABLES = {'$__rate_interval': '5m', '$instance': '.*'}
EXPECTED_ALERTS = {'PagefusiondDown', 'PagefusiondStateStale', 'KsmdOverCpuBudget', 'KsmNegativeProfit', 'CrossTenantPageSharing'}


def promtool(*args):
    path = shutil.which('promtool')
    assert path, "promtool is missing: install Debian's prometheus package (./dev setup installs it)"
    return subprocess.run([path] + list(args), capture_output=True, text=True, check=False)


def load_rules():
    with open(RULES) as handle:
        return yaml.safe_load(handle)


def load_dashboard():
    with open(DASHBOARD) as handle:
        return json.load(handle)


def dashboard_exprs(dashboard):
    exprs = []
    for panel in dashboard['panels']:
        for target in panel['targets']:
            expr = target['expr']
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            exprs.append(expr)
    return exprs


def exported_metric_names():
    """The metric names of a state where every figure is known (one VM, one tenant)."""
    state = full_state([vm('a', 4096, tenant='t')], tenants=['t'])
    return set(name for name, _kind, _help, samples in metric_families(state) if any(v is not None for _l, v in samples))


def test_promtool_checks_the_rules():
    result = promtool('check', 'rules', RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'SUCCESS: %d rules found' % len(EXPECTED_ALERTS) in result.stdout


def test_promtool_unit_tests_every_alert():
    with open(RULES_TEST) as handle:
        tested = set(case['alertname'] for test in yaml.safe_load(handle)['tests'] for case in test['alert_rule_test'])
    assert tested == EXPECTED_ALERTS
    result = promtool('test', 'rules', RULES_TEST)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_schema():
    rules = load_rules()
    assert list(rules) == ['groups']
    alerts = [rule for group in rules['groups'] for rule in group['rules']]
    assert set(rule['alert'] for rule in alerts) == EXPECTED_ALERTS
    for rule in alerts:
        assert set(rule) == {'alert', 'expr', 'for', 'labels', 'annotations'}, rule['alert']
        assert rule['labels']['severity'] in ('info', 'warning', 'critical')
        assert set(rule['annotations']) == {'summary', 'description'}
    assert [r['for'] for r in alerts if r['alert'] == 'KsmdOverCpuBudget'] == ['10m']


def test_dashboard_shape():
    dashboard = load_dashboard()
    assert dashboard['uid'] == 'pagefusion-core'
    ids = [panel['id'] for panel in dashboard['panels']]
    assert len(ids) == len(set(ids))
    variables = dict((v['name'], v) for v in dashboard['templating']['list'])
    assert variables['datasource']['query'] == 'prometheus'
    for panel in dashboard['panels']:
        assert panel['datasource'] == {'type': 'prometheus', 'uid': '${datasource}'}, panel['title']
        assert set(panel['gridPos']) == {'x', 'y', 'w', 'h'} and panel['gridPos']['x'] + panel['gridPos']['w'] <= 24
        assert panel['targets'], panel['title']
    titles = ' '.join(panel['title'] for panel in dashboard['panels'])
    for wanted in ('per host', 'per VM', 'ksmd CPU', 'Phase'):
        assert wanted in titles


def test_promtool_parses_every_dashboard_query(tmp_path):
    """promtool has no bare expression checker: each query becomes a recording rule that `check rules` parses."""
    exprs = dashboard_exprs(load_dashboard())
    rules = {'groups': [{'name': 'dashboard', 'rules': [{'record': 'dashboard:query_%d' % i, 'expr': e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / 'dashboard.rules.yml'
    path.write_text(yaml.safe_dump(rules))
    result = promtool('check', 'rules', str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_broken_query(tmp_path):
    path = tmp_path / 'broken.rules.yml'
    path.write_text(yaml.safe_dump({'groups': [{'name': 'x', 'rules': [{'record': 'x:y', 'expr': 'rate(pagefusiond_up[5m]'}]}]}))
    assert promtool('check', 'rules', str(path)).returncode != 0


@pytest.mark.parametrize('source', ['rules', 'dashboard'])
def test_every_metric_used_is_exported(source):
    exprs = ([rule['expr'] for group in load_rules()['groups'] for rule in group['rules']] if source == 'rules'
             else dashboard_exprs(load_dashboard()))
    used = set(re.findall(r'\bpagefusiond_[a-z_]+', ' '.join(exprs)))
    assert used and used <= exported_metric_names(), sorted(used - exported_metric_names())
