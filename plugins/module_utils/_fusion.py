# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Backend-neutral page fusion planning, shared by every module and backend.

This is a private module_utils of pagefusion.core: its API may change at any time.

A module reads every VM once (``Backend.list_vms``), turns each wanted change into a
:class:`Plan` with :func:`plan_vm`, checks that no plan carries an error, and only then, outside
check mode, runs the plans with :func:`apply_plan`. Check mode and real runs therefore use the
very same comparison and predict the very same steps.
"""

from __future__ import annotations

import fnmatch

WHEN_RUNNING_CHOICES = ('fail', 'restart', 'defer')

# Plan steps, in the order they run.
STEP_SHUTDOWN = 'shutdown'
STEP_SET_FUSION = 'set_fusion'
STEP_START = 'start'


class FusionError(Exception):
    """A clear, operator-facing error. The message names the object and what to do."""


class UnsupportedError(FusionError):
    """The host cannot switch page fusion at all (e.g. VirtualBox 7.2). Reported, not failed."""


class VmRecord(object):
    """What a backend knows about one VM, read once per module run.

    ``fusion`` is the persistent setting (what the next cold boot uses); ``fusion_live`` is
    what the running instance uses (``None`` when the VM is off or the backend cannot tell).
    ``is_off`` is True only in states in which the definition may be changed.
    """

    def __init__(self, name, backend, power_state, is_off, fusion, fusion_live=None,
                 uuid=None, os_id=None, persistent=True, tenant=None, details=None):
        self.name = name
        self.backend = backend
        self.power_state = power_state
        self.is_off = is_off
        self.fusion = fusion
        self.fusion_live = fusion_live
        self.uuid = uuid
        self.os_id = os_id
        self.persistent = persistent
        self.tenant = tenant
        # Backend-private data (e.g. the parsed domain XML); never returned to the user.
        self.details = details if details is not None else {}

    def summary(self):
        return {
            'name': self.name,
            'backend': self.backend,
            'uuid': self.uuid,
            'power_state': self.power_state,
            'page_fusion': state_word(self.fusion),
            'page_fusion_live': None if self.fusion_live is None else state_word(self.fusion_live),
        }


class Plan(object):
    """The steps needed to bring one VM to the wanted fusion state."""

    def __init__(self, vm, want):
        self.vm = vm
        self.want = want
        self.before = vm.fusion
        self.steps = []
        self.restart_required = False
        self.error = None
        self.unsupported = None

    @property
    def changes(self):
        return bool(self.steps)


def state_word(enabled):
    return 'enabled' if enabled else 'disabled'


def select_vms(vms, names=None, pattern=None):
    """Pick VMs by exact names (kept in the order given) or by a shell-style pattern.

    Returns ``(selected, missing_names)``. Names are matched exactly, so names holding
    ``*`` or ``[`` are safe; ``pattern`` uses fnmatch semantics, case-sensitive.
    """
    by_name = {}
    for vm in vms:
        by_name.setdefault(vm.name, vm)
    if pattern is not None:
        return [vm for vm in vms if fnmatch.fnmatchcase(vm.name, pattern)], []
    selected, missing, seen = [], [], set()
    for name in names or []:
        if name in seen:
            continue
        seen.add(name)
        if name in by_name:
            selected.append(by_name[name])
        else:
            missing.append(name)
    return selected, missing


def plan_vm(vm, want, when_running, can_defer=True):
    """Decide what to do with one VM. Pure: reads the record, touches nothing."""
    plan = Plan(vm, want)
    needs_definition_change = vm.fusion != want
    live_differs = (not vm.is_off) and vm.fusion_live is not None and vm.fusion_live != want

    if vm.is_off:
        if needs_definition_change:
            plan.steps.append((STEP_SET_FUSION, want))
        return plan

    # A backend may know that no restart can help (e.g. a VirtualBox VM with a saved state).
    blocker = vm.details.get('blocker')
    if blocker and (needs_definition_change or live_differs):
        plan.error = blocker
        return plan

    if not vm.persistent:
        if needs_definition_change or live_differs:
            plan.error = ("VM '%s' is transient (it has no persistent definition), so page fusion cannot be "
                          "switched: define it persistently first." % vm.name)
        return plan

    if when_running == 'defer' and not can_defer:
        if needs_definition_change:
            plan.error = ("VM '%s' is %s and the %s backend cannot change a running VM's definition "
                          "(when_running=defer is libvirt only): shut the VM down or use when_running=restart."
                          % (vm.name, vm.power_state, vm.backend))
        return plan

    if when_running == 'restart':
        if needs_definition_change or live_differs:
            plan.steps.append((STEP_SHUTDOWN, None))
            if needs_definition_change:
                plan.steps.append((STEP_SET_FUSION, want))
            plan.steps.append((STEP_START, None))
        return plan

    if when_running == 'defer':
        if needs_definition_change:
            plan.steps.append((STEP_SET_FUSION, want))
        plan.restart_required = needs_definition_change or live_differs
        return plan

    # when_running == 'fail'
    if needs_definition_change:
        plan.error = ("VM '%s' is %s: page fusion can only be switched while it is shut off. Shut it down "
                      "first, or set when_running=restart (graceful shutdown, change, start) or "
                      "when_running=defer (libvirt: change the definition now, apply at the next cold boot)."
                      % (vm.name, vm.power_state))
    elif live_differs:
        # The definition is already right (e.g. an earlier deferred run): nothing to change, a restart pending.
        plan.restart_required = True
    return plan


def describe_plan(backend, plan, shutdown_timeout, force_off):
    """Human- and replay-friendly descriptions of a plan's steps, from the backend."""
    return [backend.describe_step(plan.vm, step, arg, shutdown_timeout=shutdown_timeout, force_off=force_off)
            for step, arg in plan.steps]


def apply_plan(backend, plan, shutdown_timeout, force_off):
    """Run a plan's steps. Raises FusionError.

    A failed shutdown leaves the VM running and unchanged. If the definition change fails after
    this plan shut the VM down, the VM is started again before the error is raised, so a VM that
    was running is never left off by a failed change.
    """
    stopped_here = False
    for step, arg in plan.steps:
        if step == STEP_SHUTDOWN:
            backend.shutdown(plan.vm, timeout=shutdown_timeout, force_off=force_off)
            stopped_here = True
        elif step == STEP_SET_FUSION:
            try:
                backend.set_fusion(plan.vm, arg)
            except FusionError:
                if stopped_here:
                    backend.start(plan.vm, timeout=shutdown_timeout)
                raise
        elif step == STEP_START:
            backend.start(plan.vm, timeout=shutdown_timeout)
        else:  # pragma: no cover - programming error
            raise ValueError('unknown plan step %r' % (step,))


def result_for(plan, actions, done):
    """The per-VM result entry (``vms`` list in the module result)."""
    vm = plan.vm
    sets_fusion = any(step == STEP_SET_FUSION for step, _arg in plan.steps)
    after = plan.want if (sets_fusion and not plan.unsupported) else plan.before
    entry = vm.summary()
    entry.update({
        'page_fusion_before': state_word(plan.before),
        'page_fusion_after': state_word(after),
        'changed': plan.changes and not plan.unsupported,
        'restart_required': plan.restart_required,
        'actions': actions,
        'applied': done,
    })
    if plan.unsupported:
        entry['unsupported'] = plan.unsupported
    return entry
