# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""VirtualBox's shared-memory metrics: set collection up where it is missing, then read them.

Private module_utils of pagefusion.core; its API may change at any time.

VirtualBox collects metrics only after ``VBoxManage metrics setup`` and forgets that setup when
VBoxSVC stops, so a first read is often empty. :func:`usage_facts` sets collection up for the objects
without a value, waits briefly for the first sample and reads again.
"""

from __future__ import annotations

import time

from ansible_collections.pagefusion.core.plugins.module_utils._backend_api import vm_facts_entry
from ansible_collections.pagefusion.core.plugins.module_utils._fusion import FusionError
from ansible_collections.pagefusion.core.plugins.module_utils._vbox_parse import has_process, metric_bytes

# What is read, and the base metrics that "metrics setup" must name (setup matches base metric names
# only: "RAM/VMM/Shared" would set nothing up).
HOST_METRIC = 'RAM/VMM/Shared'
VM_METRIC = 'Guest/RAM/Usage/Shared'
HOST_BASE = 'RAM/VMM'
VM_BASE = 'Guest/RAM/Usage'
METRICS = [HOST_METRIC, VM_METRIC]
# How long to wait for the first sample after a setup (the sampling period is 1 s), and how often to look.
SETTLE_SECONDS = 2.0
SETTLE_POLL = 0.5

EMPTY_AFTER_SETUP_NOTE = (
    'No value yet for %s: this run set VirtualBox metric collection up (VBoxManage metrics setup), and VirtualBox '
    'collects only after setup, so the first read after it may be empty (null). Read the facts again in a few '
    'seconds. A VM without the Guest Additions never reports Guest/RAM/Usage/Shared.')


def missing_objects(rows, running):
    """The objects (``host`` and running VMs) whose metric has no value: ``[(label, setup target, base)]``."""
    missing = []
    if metric_bytes(rows, 'host', HOST_METRIC) is None:
        missing.append(('host', 'host', HOST_BASE))
    for vm in running:
        if metric_bytes(rows, vm.name, VM_METRIC) is None:
            missing.append((vm.name, vm.uuid, VM_BASE))
    return missing


def set_up(backend, missing, warn):
    """Set collection up for every missing object; returns the targets that were set up."""
    setup = []
    for label, target, base in missing:
        try:
            backend.setup_metrics(target, [base])
        except FusionError as exc:
            # E.g. the VM was unregistered meanwhile: its figures stay null, the rest is still reported.
            warn('Cannot set VirtualBox metric collection up for %r: %s' % (label, exc))
            continue
        setup.append(target)
    return setup


def wait_for_values(backend, missing, running, sleep=time.sleep, clock=time.monotonic):
    """Query until the objects that were missing have a value, or SETTLE_SECONDS pass; returns the rows."""
    wanted = set(label for label, _target, _base in missing)
    deadline = clock() + SETTLE_SECONDS
    while True:
        rows = backend.query_metrics('*', METRICS)
        still = set(label for label, _target, _base in missing_objects(rows, running))
        if not still.intersection(wanted) or clock() >= deadline:
            return rows
        sleep(SETTLE_POLL)


def usage_facts(backend, warn, sleep=time.sleep, clock=time.monotonic):
    """``(host figures, {name: entry})`` of a VirtualBox host, setting metric collection up where needed."""
    records = backend.list_vms()
    running = [vm for vm in records if has_process(vm.power_state) and vm.uuid]
    rows = backend.query_metrics('*', METRICS)
    missing = missing_objects(rows, running)
    setup = set_up(backend, missing, warn)
    if setup:
        rows = wait_for_values(backend, missing, running, sleep, clock)
    host = {'shared_bytes': metric_bytes(rows, 'host', HOST_METRIC), 'metrics_setup': setup}
    vms = {}
    for vm in records:
        entry = vm_facts_entry(vm)
        entry['shared_bytes'] = metric_bytes(rows, vm.name, VM_METRIC) if vm in running else None
        vms[vm.name] = entry
    if setup:
        empty = [label for label, _target, _base in missing_objects(rows, running)]
        if empty:
            host['note'] = EMPTY_AFTER_SETUP_NOTE % ', '.join(repr(label) for label in empty)
    return host, vms
