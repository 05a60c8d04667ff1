# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Counts, per host, the module runs and the task results of a playbook run, for benchmarks/fleet_bench.py.

Enabled by fleet_bench.py only (ANSIBLE_CALLBACK_PLUGINS pointing here, ANSIBLE_CALLBACKS_ENABLED=module_count);
writes {"modules": {host: n}, "tasks": {host: n}, "actions": {action: n}} as JSON to $PF_BENCH_COUNTS at the end.
A module run is a task result (or loop item) that was not skipped, of an action that runs code on the host: the
controller-only actions below run no module.
"""

from __future__ import annotations

DOCUMENTATION = r'''
name: module_count
type: aggregate
short_description: Count module runs and task results per host (benchmarks only)
description:
  - Writes the counts as JSON to the file named by the environment variable C(PF_BENCH_COUNTS).
requirements:
  - enabled in the configuration (callbacks_enabled)
'''

import collections
import json
import os

from ansible.plugins.callback import CallbackBase

CONTROLLER_ONLY = frozenset((
    'set_fact', 'debug', 'assert', 'fail', 'meta', 'include_role', 'include_tasks', 'import_role', 'import_tasks',
    'add_host', 'group_by', 'include_vars', 'set_stats', 'pause', 'include', 'validate_argument_spec',
))


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'module_count'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.modules = collections.Counter()
        self.tasks = collections.Counter()
        self.actions = collections.Counter()

    def _count(self, result):
        host = result._host.get_name()
        self.tasks[host] += 1
        self.actions[result._task.action] += 1
        if result._task.action.split('.')[-1] in CONTROLLER_ONLY:
            return
        items = result._result.get('results')
        if isinstance(items, list):
            self.modules[host] += sum(1 for item in items if not item.get('skipped'))
        else:
            self.modules[host] += 1

    def v2_runner_on_ok(self, result):
        self._count(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result)

    def v2_runner_on_unreachable(self, result):
        self._count(result)

    def v2_playbook_on_stats(self, stats):
        with open(os.environ['PF_BENCH_COUNTS'], 'w') as f:
            json.dump({'modules': dict(self.modules), 'tasks': dict(self.tasks), 'actions': dict(self.actions)}, f)
