# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Backend-neutral page fusion planning, shared by every module and backend.

This is a private module_utils of pagefusion.core: its API may change at any time.

A module reads every VM once (``Backend.list_vms``), turns each wanted change into a
:class:`Plan` with :func:`plan_vm`, checks that no plan carries an error, and only then, outside
check mode, runs the plans with :func:`apply_plan`. Check mode and real runs therefore use the
very same comparison and predict the very same steps.

Besides page fusion a plan can carry other settings of the VM's persistent definition (for example
libvirt's guest agent channel, ``guest_agent_channel``). They follow the same rules: changed only
while the VM is shut off, with the same ``when_running`` handling. A backend lists the settings it
knows in ``supported_settings``, reports their current values in ``VmRecord.settings`` (and
``settings_live`` for a running VM) and applies them in ``set_definition(vm, changes)``. What every
backend offers is written down in ``_backend_api.Backend``.
"""

from __future__ import annotations

import fnmatch

from ansible_collections.pagefusion.core.plugins.module_utils._unmerge_fit import MIB, assess, describe

WHEN_RUNNING_CHOICES = ('fail', 'restart', 'defer')

# Operator-facing names of the definition settings besides page fusion.
SETTING_LABELS = {
    'guest_agent_channel': 'the guest agent channel',
    'free_page_reporting': 'free page reporting',
}

# Plan steps, in the order they run.
STEP_SHUTDOWN = 'shutdown'
STEP_SET_FUSION = 'set_fusion'
STEP_SET_DEFINITION = 'set_definition'
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
    ``settings`` holds the other definition settings the backend knows (e.g. ``guest_agent_channel``)
    as persistently defined; ``settings_live`` the same for the running instance (``None`` when off).
    """

    def __init__(self, name, backend, power_state, is_off, fusion, fusion_live=None,
                 uuid=None, os_id=None, persistent=True, tenant=None, details=None,
                 settings=None, settings_live=None):
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
        self.settings = dict(settings or {})
        self.settings_live = None if settings_live is None else dict(settings_live)
        # Backend-private data (e.g. the parsed domain XML); never returned to the user.
        self.details = details if details is not None else {}

    def summary(self):
        summary = {
            'name': self.name,
            'backend': self.backend,
            'uuid': self.uuid,
            'power_state': self.power_state,
            'page_fusion': state_word(self.fusion),
            'page_fusion_live': None if self.fusion_live is None else state_word(self.fusion_live),
        }
        for key, value in sorted(self.settings.items()):
            summary[key] = value
        return summary


class Plan(object):
    """The steps needed to bring one VM to the wanted fusion state and definition settings.

    ``want`` is the wanted fusion state, or ``None`` to leave fusion alone; ``want_settings`` the wanted
    values of other definition settings (only those the caller asked for).
    """

    def __init__(self, vm, want, want_settings=None):
        self.vm = vm
        self.want = want
        self.want_settings = dict(want_settings or {})
        self.before = vm.fusion
        self.settings_before = dict((key, vm.settings.get(key)) for key in self.want_settings)
        self.steps = []
        self.restart_required = False
        self.error = None
        self.unsupported = None
        # The memory a restart without page fusion takes back, and whether it fits (see check_unmerge_fit).
        self.unmerge_fit = None
        # Set by apply_plan when a failed change made it start the VM it had shut down.
        self.restarted = False

    @property
    def changes(self):
        return bool(self.steps)

    @property
    def fusion_after(self):
        """Page fusion in the definition once the plan has run (unchanged when the host is unsupported)."""
        if not self.unsupported:
            for step, arg in self.steps:
                if step == STEP_SET_FUSION:
                    return arg
        return self.before


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


def _what(fusion_change, setting_changes):
    """'page fusion', 'the guest agent channel', 'page fusion and the guest agent channel', ..."""
    parts = ['page fusion'] if fusion_change else []
    parts.extend(SETTING_LABELS.get(key, key) for key in sorted(setting_changes))
    return ' and '.join(parts) or 'page fusion'


def plan_vm(vm, want, when_running, can_defer=True, settings=None):
    """Decide what to do with one VM. Pure: reads the record, touches nothing.

    ``want`` is True/False for page fusion, or None to leave it alone. ``settings`` maps other definition
    settings to their wanted values; None values are left alone.
    """
    wanted_settings = dict((key, value) for key, value in (settings or {}).items() if value is not None)
    plan = Plan(vm, want, wanted_settings)
    fusion_change = want is not None and vm.fusion != want
    setting_changes = dict((key, value) for key, value in wanted_settings.items() if vm.settings.get(key) != value)
    definition_steps = ([(STEP_SET_FUSION, want)] if fusion_change else []) + (
        [(STEP_SET_DEFINITION, setting_changes)] if setting_changes else [])
    if vm.is_off:
        plan.steps.extend(definition_steps)
        return plan
    live_differs = (
        (want is not None and vm.fusion_live is not None and vm.fusion_live != want)
        or (vm.settings_live is not None
            and any(vm.settings_live.get(key) != value for key, value in wanted_settings.items())))
    _plan_running(plan, definition_steps, live_differs, _what(fusion_change, setting_changes), when_running, can_defer)
    return plan


def _plan_running(plan, definition_steps, live_differs, what, when_running, can_defer):
    """The part of :func:`plan_vm` for a VM that is not shut off."""
    vm = plan.vm
    needs_definition_change = bool(definition_steps)
    # A backend may know that no restart can help (e.g. a VirtualBox VM with a saved state).
    blocker = vm.details.get('blocker')
    if blocker and (needs_definition_change or live_differs):
        plan.error = blocker
    elif not vm.persistent:
        if needs_definition_change or live_differs:
            plan.error = ("VM '%s' is transient (it has no persistent definition), so %s cannot be "
                          "switched: define it persistently first." % (vm.name, what))
    elif when_running == 'defer' and not can_defer:
        if needs_definition_change:
            plan.error = ("VM '%s' is %s and the %s backend cannot change a running VM's definition "
                          "(when_running=defer is libvirt only): shut the VM down or use when_running=restart."
                          % (vm.name, vm.power_state, vm.backend))
    elif when_running == 'restart':
        if needs_definition_change or live_differs:
            plan.steps.extend([(STEP_SHUTDOWN, None)] + definition_steps + [(STEP_START, None)])
    elif when_running == 'defer':
        plan.steps.extend(definition_steps)
        # Undoing a deferred change brings the definition back to what runs: no restart then. Where the backend
        # cannot read the running instance's settings, a changed definition is assumed to need one.
        live_known = vm.fusion_live is not None or vm.settings_live is not None
        plan.restart_required = live_differs or (needs_definition_change and not live_known)
    elif needs_definition_change:  # when_running == 'fail'
        defer_hint = (' or when_running=defer (change the definition now, apply at the next cold boot)'
                      if can_defer else '')
        plan.error = ("VM '%s' is %s: %s can only be switched while it is shut off. Shut it down "
                      "first, or set when_running=restart (graceful shutdown, change, start)%s."
                      % (vm.name, vm.power_state, what, defer_hint))
    elif live_differs:
        # The definition is already right (e.g. an earlier deferred run): nothing to change, a restart pending.
        plan.restart_required = True


def merged_steps(steps):
    """The steps as they run: a page fusion change and other definition changes become one definition change
    (one redefine), ``STEP_SET_DEFINITION`` with ``page_fusion`` among its changes."""
    fusion = [arg for step, arg in steps if step == STEP_SET_FUSION]
    settings = [arg for step, arg in steps if step == STEP_SET_DEFINITION]
    if not (fusion and settings):
        return list(steps)
    merged = dict(settings[0], page_fusion=fusion[0])
    return [(step, merged if step == STEP_SET_DEFINITION else arg) for step, arg in steps if step != STEP_SET_FUSION]


def describe_plan(backend, plan, shutdown_timeout, force_off):
    """Human- and replay-friendly descriptions of a plan's steps, from the backend."""
    return [backend.describe_step(plan.vm, step, arg, shutdown_timeout=shutdown_timeout, force_off=force_off)
            for step, arg in merged_steps(plan.steps)]


def apply_plan(backend, plan, shutdown_timeout, force_off):
    """Run a plan's steps. Raises FusionError.

    A failed shutdown leaves the VM running and unchanged. If the definition change fails after
    this plan shut the VM down, the VM is started again before the error is raised, so a VM that
    was running is never left off by a failed change.
    """
    stopped_here = False
    for step, arg in merged_steps(plan.steps):
        if step == STEP_SHUTDOWN:
            backend.shutdown(plan.vm, timeout=shutdown_timeout, force_off=force_off)
            stopped_here = True
        elif step in (STEP_SET_FUSION, STEP_SET_DEFINITION):
            try:
                if step == STEP_SET_FUSION:
                    backend.set_fusion(plan.vm, arg)
                else:
                    backend.set_definition(plan.vm, arg)
            except FusionError as exc:
                if not stopped_here:
                    raise
                backend.start(plan.vm, timeout=shutdown_timeout)
                plan.restarted = True
                if isinstance(exc, UnsupportedError):
                    raise  # reported, not failed: the module says why the VM was left as it was
                raise FusionError('%s It was shut down for the change and has been started again as it was.'
                                  % exc) from exc
        elif step == STEP_START:
            backend.start(plan.vm, timeout=shutdown_timeout)
        else:  # pragma: no cover - programming error
            raise ValueError('unknown plan step %r' % (step,))


def result_for(plan, actions, done):
    """The per-VM result entry (``vms`` list in the module result)."""
    vm = plan.vm
    entry = vm.summary()
    entry.update({
        'page_fusion_before': state_word(plan.before),
        'page_fusion_after': state_word(plan.fusion_after),
        'changed': plan.changes and not plan.unsupported,
        'restart_required': plan.restart_required,
        'actions': actions,
        'applied': done,
    })
    if plan.unsupported:
        entry['unsupported'] = plan.unsupported
    if plan.unmerge_fit is not None:
        entry['unmerge_fit'] = plan.unmerge_fit
    changes = {}
    for step, arg in plan.steps:
        if step == STEP_SET_DEFINITION and not plan.unsupported:
            changes.update(arg)
    for key, value in plan.settings_before.items():
        entry['%s_before' % key] = value
        entry['%s_after' % key] = changes.get(key, value)
        entry[key] = changes.get(key, value)
    return entry


def unmerges_on_restart(plan):
    """True when the plan restarts a VM that runs with page fusion into one without: its merged memory comes back."""
    restarts = any(step == STEP_START for step, dummy in plan.steps)
    return restarts and plan.vm.fusion_live is not False and not plan.fusion_after and not plan.unsupported


def merged_bytes_by_vm(backend, sysfs, warn):
    """``{name: bytes}`` each running VM has merged (libvirt: its QEMU's ksm_stat, zero pages included).

    VirtualBox reports sharing only through metrics that must be set up first (a change), so it is not
    measured here; VMs missing from the result have an unknown figure.
    """
    if backend.name != 'libvirt':
        return {}
    dummy, vms = backend.usage_facts(sysfs, warn)
    return dict((name, entry['merged_bytes'] + (entry.get('zero_page_bytes') or 0))
                for name, entry in vms.items() if entry.get('merged_bytes') is not None)


def check_unmerge_fit(plans, merged, mem_available, margin_mib, when_short):
    """Give each plan that restarts a VM without page fusion its ``unmerge_fit``; returns ``(errors, warnings)``.

    VMs are counted in plan order: each one's fit includes what the VMs before it in this run take back.
    """
    errors, warnings, total = [], [], 0
    for plan in plans:
        if not unmerges_on_restart(plan):
            continue
        name = plan.vm.name
        own = merged.get(name)
        if own is None:
            warnings.append("Cannot tell how much memory VM '%s' has merged, so whether restarting it without page "
                            "fusion fits in the host's available memory is not checked." % name)
            continue
        total += own
        plan.unmerge_fit = fit = assess(total, mem_available, margin_mib)
        fit['vm_merged_bytes'] = own
        if fit['fits']:
            continue
        together = ' (with the VMs before it in this run)' if total != own else ''
        text = ("restarting VM '%s' without page fusion takes back the %.1f MiB it has merged (ksm_stat)%s: %s"
                % (name, own / float(MIB), together, describe(fit)))
        if when_short:
            warnings.append('Unmerge check: %s. Restarting it anyway (unmerge_when_short=true).' % text)
        else:
            errors.append('Refusing: %s. Free memory first, lower unmerge_margin_mib, or set unmerge_when_short=true. '
                          'Nothing was changed.' % text)
    return errors, warnings
