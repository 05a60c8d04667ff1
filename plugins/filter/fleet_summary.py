# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
name: fleet_summary
short_description: Sort the hosts of a page fusion rollout into changed, unchanged, skipped, failed and not reached
version_added: 0.1.0
description:
  - Reads, for every host of a rollout of P(pagefusion.core.page_fusion#role), the facts the role and the
    C(enable)/C(disable) playbooks left in C(hostvars), and sorts the host into one outcome.
  - V(failed) (C(page_fusion_rollout_error), with the error), V(not_reached) (C(page_fusion_unreachable), a host
    that dropped out of the play, or one the rollout never got to), V(skipped) (the host is not eligible, with the
    reason), V(changed) (some VM changed, or in check mode would change) or V(unchanged).
  - Used by the last play of C(pagefusion.core.enable) and C(pagefusion.core.disable); returns the summary with a
    table of text lines to show.
positional: hosts, reached
options:
  _input:
    description: C(hostvars).
    type: dict
    required: true
  hosts:
    description: Every host of the rollout (C(ansible_play_hosts_all)).
    type: list
    elements: str
    required: true
  reached:
    description: The hosts still in the play (C(ansible_play_hosts)); a host missing here became unreachable.
    type: list
    elements: str
    required: true
  state:
    description: What the rollout does.
    type: str
    choices: [enabled, disabled]
    default: enabled
  check_mode:
    description: Whether the rollout ran in check mode (then V(changed) means that a real run would change).
    type: bool
    default: false
  stop_reason:
    description: Why the rollout did not get to a host that it never started on.
    type: str
    default: the rollout stopped before this host
'''

EXAMPLES = r'''
- name: Summarize the rollout
  ansible.builtin.debug:
    msg: "{{ (hostvars | pagefusion.core.fleet_summary(ansible_play_hosts_all, ansible_play_hosts)).table }}"
  run_once: true
'''

RETURN = r'''
_value:
  description: The summary.
  type: dict
  contains:
    state:
      description: The O(state) of the rollout.
      type: str
    check_mode:
      description: The O(check_mode) of the rollout.
      type: bool
    counts:
      description: How many hosts had each outcome, and C(hosts), all of them.
      type: dict
      sample: {hosts: 5, changed: 1, unchanged: 1, skipped: 1, failed: 1, not_reached: 1}
    hosts:
      description:
        - One entry per host, by outcome (changed, unchanged, skipped, failed, not reached) and then by name, with
          C(host), C(outcome), C(reason) (skipped, not_reached) or C(error) (failed), and for hosts the role ran
          on C(vms_changed), C(vms_restart_required) and C(vms_skipped) (C(name), C(reason)).
      type: list
      elements: dict
    table:
      description: The summary as lines of text, a title line and one aligned row per host.
      type: list
      elements: str
'''

OUTCOMES = ('changed', 'unchanged', 'skipped', 'failed', 'not_reached')
COLUMN = 14


def one_line(text):
    """Errors may span lines (ssh, libvirt); a table row must not."""
    return ' '.join(str(text).split())


def role_results(hvars):
    return {
        'vms_changed': list(hvars.get('page_fusion_changed') or []),
        'vms_restart_required': list(hvars.get('page_fusion_restart_required') or []),
        'vms_skipped': [s for s in hvars.get('page_fusion_skipped') or [] if s.get('name') is not None],
    }


def host_outcome(host, hvars, reached, stop_reason):
    """One host's entry; the order of the checks is the precedence of the outcomes."""
    unreachable = hvars.get('page_fusion_unreachable')
    if unreachable:
        return {'host': host, 'outcome': 'not_reached', 'reason': 'unreachable: %s' % one_line(unreachable)}
    if host not in reached:
        return {'host': host, 'outcome': 'not_reached', 'reason': 'unreachable during the rollout'}
    error = hvars.get('page_fusion_rollout_error')
    if error is not None:
        return dict({'host': host, 'outcome': 'failed', 'error': one_line(error)}, **role_results(hvars))
    if hvars.get('page_fusion_changed') is None:
        return {'host': host, 'outcome': 'not_reached', 'reason': stop_reason}
    entry = dict({'host': host}, **role_results(hvars))
    host_skips = [s for s in hvars.get('page_fusion_skipped') or [] if s.get('name') is None]
    if host_skips:
        entry.update(outcome='skipped', reason='; '.join(one_line(s['reason']) for s in host_skips))
    else:
        entry['outcome'] = 'changed' if entry['vms_changed'] else 'unchanged'
    return entry


def detail(entry):
    """The table's last column: what happened, in a few words."""
    if entry['outcome'] in ('skipped', 'not_reached'):
        return entry['reason']
    if entry['outcome'] == 'failed':
        return entry['error']
    parts = []
    if entry['vms_changed']:
        parts.append('%d VM(s): %s' % (len(entry['vms_changed']), ', '.join(entry['vms_changed'])))
    if entry['vms_restart_required']:
        parts.append('restart required: %s' % ', '.join(entry['vms_restart_required']))
    if entry['vms_skipped']:
        left_alone = ['%s (%s)' % (s['name'], one_line(s['reason'])) for s in entry['vms_skipped']]
        parts.append('VMs left alone: %s' % '; '.join(left_alone))
    return '; '.join(parts) or 'nothing to do'


def table(summary):
    counts = summary['counts']
    mode = ' (check mode: nothing was changed; "changed" says what a real run would change)' if summary['check_mode'] else ''
    title = 'page fusion %s%s: %d host(s): %s' % (
        summary['state'], mode, counts['hosts'],
        ', '.join('%d %s' % (counts[o], o.replace('_', ' ')) for o in OUTCOMES))
    width = max([len('HOST')] + [len(e['host']) for e in summary['hosts']]) + 2
    rows = ['%-*s%-*s%s' % (COLUMN, 'OUTCOME', width, 'HOST', 'DETAIL')]
    rows += ['%-*s%-*s%s' % (COLUMN, e['outcome'].replace('_', ' '), width, e['host'], detail(e))
             for e in summary['hosts']]
    return [title] + rows


def fleet_summary(hostvars, hosts, reached, state='enabled', check_mode=False,
                  stop_reason='the rollout stopped before this host'):
    """hostvars of the rollout's hosts -> the summary (see RETURN)."""
    entries = [host_outcome(h, hostvars[h], set(reached), stop_reason) for h in hosts]
    entries.sort(key=lambda e: (OUTCOMES.index(e['outcome']), e['host']))
    counts = dict((o, sum(1 for e in entries if e['outcome'] == o)) for o in OUTCOMES)
    counts['hosts'] = len(entries)
    summary = {'state': state, 'check_mode': bool(check_mode), 'counts': counts, 'hosts': entries}
    summary['table'] = table(summary)
    return summary


class FilterModule(object):
    def filters(self):
        return {'fleet_summary': fleet_summary}
