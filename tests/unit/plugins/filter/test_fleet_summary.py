# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The rollout summary of enable.yml / disable.yml: every host gets one outcome, by precedence."""

from __future__ import annotations

from ansible_collections.pagefusion.core.plugins.filter.fleet_summary import FilterModule, fleet_summary

INELIGIBLE = [{'name': None, 'reason': 'host not eligible: no KSM'}]
HOSTVARS = {
    'changed': {'page_fusion_changed': ['b', 'a'], 'page_fusion_skipped': [{'name': 'c', 'reason': 'running\n(skip)'}],
                'page_fusion_restart_required': ['a']},
    'unchanged': {'page_fusion_changed': [], 'page_fusion_skipped': [], 'page_fusion_restart_required': []},
    'ineligible': {'page_fusion_changed': [], 'page_fusion_skipped': INELIGIBLE},
    'failed': {'page_fusion_changed': [], 'page_fusion_rollout_error': 'page_fusion: backend\nmissing'},
    'unreachable': {'page_fusion_changed': [], 'page_fusion_unreachable': 'ssh: Connection refused',
                    'page_fusion_rollout_error': 'page_fusion: cannot reach unreachable'},
    'dropped': {'page_fusion_changed': []},
    'never': {},
}
ALL = sorted(HOSTVARS)


def by_host(summary):
    return {h['host']: h for h in summary['hosts']}


def test_every_outcome_and_its_words():
    summary = fleet_summary(HOSTVARS, ALL, [h for h in ALL if h != 'dropped'], state='disabled', stop_reason='stopped')
    hosts = by_host(summary)
    assert {h: e['outcome'] for h, e in hosts.items()} == {
        'changed': 'changed', 'unchanged': 'unchanged', 'ineligible': 'skipped', 'failed': 'failed',
        'unreachable': 'not_reached', 'dropped': 'not_reached', 'never': 'not_reached'}
    assert hosts['ineligible']['reason'] == 'host not eligible: no KSM'
    assert hosts['failed']['error'] == 'page_fusion: backend missing'
    assert hosts['unreachable']['reason'] == 'unreachable: ssh: Connection refused'
    assert hosts['dropped']['reason'] == 'unreachable during the rollout'
    assert hosts['never']['reason'] == 'stopped'
    assert hosts['changed']['vms_skipped'] == [{'name': 'c', 'reason': 'running\n(skip)'}]
    assert summary['counts'] == {'hosts': 7, 'changed': 1, 'unchanged': 1, 'skipped': 1, 'failed': 1, 'not_reached': 3}
    assert [h['outcome'] for h in summary['hosts']] == [
        'changed', 'unchanged', 'skipped', 'failed', 'not_reached', 'not_reached', 'not_reached']
    assert summary['state'] == 'disabled' and summary['check_mode'] is False


def test_table_has_one_aligned_line_per_host():
    summary = fleet_summary(HOSTVARS, ALL, ALL, check_mode=True)
    title, header, rows = summary['table'][0], summary['table'][1], summary['table'][2:]
    assert title.startswith('page fusion enabled (check mode')
    # 'dropped' is in the play here, so it is unchanged.
    assert title.endswith('7 host(s): 1 changed, 2 unchanged, 1 skipped, 1 failed, 2 not reached')
    assert len(rows) == 7
    start = header.index('DETAIL')
    assert all(len(row) > start and row[start - 1] == ' ' for row in rows)
    assert rows[0] == ('changed'.ljust(14) + 'changed'.ljust(start - 14)
                       + '2 VM(s): b, a; restart required: a; VMs left alone: c (running (skip))')
    assert rows[1].endswith('nothing to do')
    assert all('\n' not in row for row in rows)


def test_no_hosts():
    summary = fleet_summary({}, [], [])
    assert summary['counts']['hosts'] == 0 and summary['hosts'] == []
    assert len(summary['table']) == 2


def test_registered_as_a_filter():
    assert FilterModule().filters() == {'fleet_summary': fleet_summary}
