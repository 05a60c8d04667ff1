# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Checks the rollout summary of enable.yml / disable.yml over summary_inventory.yml: the JSON (summary_file) and
the table in the playbook's output must both give every host its outcome, with the reason or the error.

Usage: check_summary.py SUMMARY.json PLAYBOOK.log enabled|disabled check|real
"""
import json
import re
import sys

# sum-off's VMs have page fusion off and sum-on's on; the test driver forgets changes, so every run starts again.
EXPECTED = {
    'enabled': {'sum-off': 'changed', 'sum-on': 'unchanged'},
    'disabled': {'sum-off': 'unchanged', 'sum-on': 'changed'},
}
ALWAYS = {'sum-ineligible': 'skipped', 'sum-vbox-missing': 'failed', 'sum-unreachable': 'not_reached'}


def table_from_log(log):
    """The debug task's msg: the lines of the table."""
    match = re.search(r"TASK \[Show the rollout's summary\].*?=> (\{\n.*?\n\})\n", log, re.S)
    assert match, 'no summary table in the output'
    return json.loads(match.group(1))['msg']


def check_hosts(summary, state):
    want = dict(ALWAYS, **EXPECTED[state])
    hosts = {h['host']: h for h in summary['hosts']}
    got = {name: h['outcome'] for name, h in hosts.items()}
    assert got == want, 'outcomes %r, expected %r' % (got, want)
    changed = [h for h in hosts.values() if h['outcome'] == 'changed'][0]
    assert sorted(changed['vms_changed']) == [changed['host'][4:] + '-1', changed['host'][4:] + '-2'], changed
    assert hosts['sum-ineligible']['reason'].startswith('host not eligible: '), hosts['sum-ineligible']
    assert 'VBoxManage' in hosts['sum-ineligible']['reason'], hosts['sum-ineligible']
    error = hosts['sum-vbox-missing']['error']
    assert 'page_fusion_backend=virtualbox cannot be used' in error and 'VBoxManage' in error, error
    reason = hosts['sum-unreachable']['reason']
    assert reason.startswith('unreachable: ') and 'Connection refused' in reason, reason
    counts = dict((o, list(want.values()).count(o)) for o in ('changed', 'unchanged', 'skipped', 'failed', 'not_reached'))
    counts['hosts'] = len(want)
    assert summary['counts'] == counts, summary['counts']
    return hosts


def check_table(lines, summary, check_mode):
    title, header, rows = lines[0], lines[1], lines[2:]
    assert title.startswith('page fusion %s' % summary['state']), title
    assert ('check mode' in title) == check_mode, title
    assert '5 host(s): 1 changed, 1 unchanged, 1 skipped, 1 failed, 1 not reached' in title, title
    assert header.split() == ['OUTCOME', 'HOST', 'DETAIL'], header
    assert len(rows) == len(summary['hosts']), rows
    for row, host in zip(rows, summary['hosts']):
        outcome = host['outcome'].replace('_', ' ')
        assert row.startswith(outcome) and row.split()[len(outcome.split())] == host['host'], (row, host)
        words = host.get('error') or host.get('reason') or ', '.join(host['vms_changed']) or 'nothing to do'
        assert words in row, (row, words)


def main():
    summary_path, log_path, state, mode = sys.argv[1:5]
    with open(summary_path) as f:
        summary = json.load(f)
    with open(log_path) as f:
        log = f.read()
    assert summary['state'] == state and summary['check_mode'] == (mode == 'check'), summary
    assert 'table' not in summary, 'the JSON holds the data, not the table'
    check_hosts(summary, state)
    check_table(table_from_log(log), summary, mode == 'check')
    print('check_summary: %s %s: the table and %s agree on every host' % (state, mode, summary_path))


if __name__ == '__main__':
    main()
