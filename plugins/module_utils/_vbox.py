# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The VirtualBox backend: Page Fusion is the ``PageFusion`` flag of a VM, switched with VBoxManage.

Private module_utils of pagefusion.core; its API may change at any time.

VirtualBox lets the flag change only while the VM is shut off (``poweroff``, ``aborted`` or
``teleported``), only on 64-bit non-macOS hosts, and not at all in VirtualBox 7.2 (see
``_eligibility``). Every VBoxManage call goes through :class:`VBoxManageRunner`, which runs argument
lists (never a shell) under the C locale and keeps the exact argv of every command in ``actions``.
VMs are addressed by UUID in commands, so any VM name is safe; messages show names.

What VBoxManage prints is read by the pure functions of ``_vbox_parse``; the runner is in
``_vbox_runner`` and the metrics that ``fusion_facts`` reports in ``_vbox_metrics``.
"""

from __future__ import annotations

import platform
import shlex
import time

from ansible_collections.pagefusion.core.plugins.module_utils._backend_api import Backend
from ansible_collections.pagefusion.core.plugins.module_utils._eligibility import (
    vbox_guest_eligibility,
    vbox_host_eligibility,
    vbox_version_support,
)
from ansible_collections.pagefusion.core.plugins.module_utils._fusion import (
    STEP_SET_FUSION,
    STEP_SHUTDOWN,
    STEP_START,
    FusionError,
    UnsupportedError,
    VmRecord,
)
from ansible_collections.pagefusion.core.plugins.module_utils._vbox_parse import (
    INACCESSIBLE,
    NOT_MUTABLE_RE,
    SAVED_STATES,
    error_text,
    guest_os_type,
    has_process,
    is_lock_race,
    is_not_implemented,
    is_off_state,
    page_fusion_enabled,
    parse_extradata,
    parse_list_vms,
    parse_machinereadable,
    parse_metrics_query,
    saved_state_message,
    vm_state,
)
from ansible_collections.pagefusion.core.plugins.module_utils._vbox_runner import VBoxManageRunner
from ansible_collections.pagefusion.core.plugins.module_utils import _vbox_metrics

TENANT_KEY = 'pagefusion/tenant'

DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_LOCK_RETRIES = 5
DEFAULT_LOCK_RETRY_DELAY = 1.0
# How long to wait for a hard power-off to show up as "poweroff".
POWEROFF_WAIT = 30


class VirtualBoxBackend(Backend):
    """Reads every VM once (list vms + showvminfo per VM), then switches Page Fusion by UUID."""

    name = 'virtualbox'
    can_defer = False

    def __init__(self, module, runner=None, poll_interval=DEFAULT_POLL_INTERVAL, lock_retries=DEFAULT_LOCK_RETRIES,
                 lock_retry_delay=DEFAULT_LOCK_RETRY_DELAY, host_machine=None, host_system=None, read_tenant=True,
                 sleep=time.sleep, clock=time.monotonic):
        self.module = module
        self.runner = runner if runner is not None else VBoxManageRunner(module)
        self.runner.require()
        self.poll_interval = poll_interval
        self.lock_retries = max(1, lock_retries)
        self.lock_retry_delay = lock_retry_delay
        self.host_machine = host_machine if host_machine is not None else platform.machine()
        self.host_system = host_system if host_system is not None else platform.system()
        self.read_tenant = read_tenant
        self._sleep = sleep
        self._clock = clock

    @property
    def actions(self):
        return self.runner.actions

    @property
    def path(self):
        """Where VBoxManage is."""
        return self.runner.binary

    def commands(self):
        return [shlex.join(argv) for argv in self.runner.actions]

    # -- host -----------------------------------------------------------------------------------

    def version(self):
        return self.runner.version()

    def versions(self):
        numbers = self.version()
        return {
            'vboxmanage': self.runner.binary,
            'version': '%d.%d.%d' % numbers if numbers else None,
            'version_full': self.runner.version_output(),
        }

    def unsupported_reason(self):
        """Why this host cannot switch Page Fusion at all (VirtualBox 7.2, 32-bit or macOS host), or None."""
        supported, reason = vbox_version_support(self.runner.version_output())
        if not supported:
            return reason
        eligible, reasons = vbox_host_eligibility(self.host_machine, self.host_system)
        if not eligible:
            return '; '.join(reasons)
        return None

    def eligibility(self, vm):
        """Guest eligibility of one VM: ``(eligible, reasons)`` (Windows 2000 or later guests only)."""
        return vbox_guest_eligibility(vm.os_id)

    def guest_os(self, vm):
        """The OS type of the VM's settings."""
        return vm.os_id, ('settings' if vm.os_id else None), None

    def usage_facts(self, sysfs, warn):
        """VirtualBox's shared-memory metrics, per VM and for the host (see ``_vbox_metrics``)."""
        return _vbox_metrics.usage_facts(self, warn, sleep=self._sleep, clock=self._clock)

    def fusion_option(self):
        """``--page-fusion`` on 7.x; 6.x and older know only ``--pagefusion``."""
        numbers = self.version()
        return '--page-fusion' if numbers and numbers[0] >= 7 else '--pagefusion'

    # -- reading --------------------------------------------------------------------------------

    def list_vms(self):
        _rc, out, _err = self.runner.run(['list', 'vms'])
        records = []
        for listed_name, uuid in parse_list_vms(out):
            rc, text, err = self.runner.run(['showvminfo', uuid, '--machinereadable'], check=False)
            if rc != 0:
                if 'VBOX_E_OBJECT_NOT_FOUND' in (err or ''):
                    continue  # unregistered between the two commands
                raise FusionError("Cannot read VirtualBox VM '%s' (%s): %s" % (listed_name, uuid, error_text(err or text)))
            records.append(self.record(parse_machinereadable(text), listed_name=listed_name, uuid=uuid))
        return records

    def record(self, info, listed_name=None, uuid=None):
        """A VmRecord from parsed showvminfo output."""
        state = vm_state(info)
        uuid = (info.get('UUID') or uuid or '').lower() or None
        name = info.get('name') or listed_name
        if state == INACCESSIBLE:
            name = listed_name or name
        fusion = bool(page_fusion_enabled(info))
        os_id, os_source = guest_os_type(info)
        tenant = self.get_extradata(uuid, TENANT_KEY) if (self.read_tenant and uuid and state != INACCESSIBLE) else None
        details = {
            'info': info,
            'state': state,
            'cfg_file': info.get('CfgFile'),
            'os_type_source': os_source,
            'os_description': info.get('ostype'),
        }
        if state in SAVED_STATES:
            details['blocker'] = saved_state_message(name, state)
        elif state == INACCESSIBLE:
            details['blocker'] = ("VirtualBox VM %s is inaccessible (its settings file cannot be read); fix or "
                                  "unregister it first. Nothing was changed." % uuid)
        return VmRecord(
            name=name,
            backend=self.name,
            power_state=state,
            is_off=is_off_state(state),
            fusion=fusion,
            fusion_live=fusion if has_process(state) else None,
            uuid=uuid,
            os_id=os_id,
            tenant=tenant,
            details=details,
        )

    def get_extradata(self, uuid, key):
        """Extradata value of a VM (or ``global``), None when unset or unreadable."""
        rc, out, _err = self.runner.run(['getextradata', uuid, key], check=False)
        if rc != 0:
            return None
        return parse_extradata(out)

    def _info(self, vm):
        rc, text, err = self.runner.run(['showvminfo', vm.uuid, '--machinereadable'], check=False)
        if rc != 0:
            if 'VBOX_E_OBJECT_NOT_FOUND' in (err or ''):
                raise FusionError("VirtualBox VM '%s' (%s) is no longer registered." % (vm.name, vm.uuid))
            raise FusionError("Cannot read the state of VirtualBox VM '%s': %s" % (vm.name, error_text(err or text)))
        return parse_machinereadable(text)

    def _wait(self, vm, wanted, timeout):
        """Poll VMState until ``wanted(state)``; returns the parsed info, or None at the deadline."""
        deadline = self._clock() + timeout
        while True:
            info = self._info(vm)
            if wanted(vm_state(info)):
                return info
            if self._clock() >= deadline:
                return None
            self._sleep(self.poll_interval)

    def _mark(self, vm, info):
        state = vm_state(info)
        vm.power_state = state
        vm.is_off = is_off_state(state)
        fusion = page_fusion_enabled(info)
        if fusion is not None:
            vm.fusion = fusion
        vm.fusion_live = vm.fusion if has_process(state) else None
        vm.details['info'] = info
        vm.details['state'] = state

    # -- describing -----------------------------------------------------------------------------

    def _cmd(self, *args):
        return shlex.join(self.runner.argv(args))

    def describe_step(self, vm, step, arg, shutdown_timeout=None, force_off=False):
        """The exact VBoxManage command line(s) a step runs; waiting and fallbacks as ``#`` comments."""
        if step == STEP_SHUTDOWN:
            poweroff = self._cmd('controlvm', vm.uuid, 'poweroff')
            state = vm.power_state
            if state in SAVED_STATES or state == INACCESSIBLE:
                return '# cannot shut down: %s' % vm.details.get('blocker', 'VM is %s' % state)
            if state == 'stopping':
                text = ('# VM is already stopping: poll %s every %ss until VMState is poweroff, at most %ss'
                        % (self._cmd('showvminfo', vm.uuid, '--machinereadable'), self.poll_interval, shutdown_timeout))
                return text + ('; if it still runs: %s' % poweroff if force_off else '; if it still runs: fail')
            if state != 'running':
                if force_off:
                    return '%s  # VM is %s, so no graceful ACPI shutdown is possible' % (poweroff, state)
                return ('# cannot shut down: VM is %s and a graceful (ACPI) shutdown needs a running VM; '
                        'force_off=true would run: %s' % (state, poweroff))
            text = ('%s  # then poll %s every %ss until VMState is poweroff, at most %ss'
                    % (self._cmd('controlvm', vm.uuid, 'acpipowerbutton'),
                       self._cmd('showvminfo', vm.uuid, '--machinereadable'), self.poll_interval, shutdown_timeout))
            if force_off:
                return text + '; if it still runs: %s' % poweroff
            return text + '; if it still runs: fail, VM left running and unchanged'
        if step == STEP_SET_FUSION:
            return self._cmd('modifyvm', vm.uuid, self.fusion_option(), 'on' if arg else 'off')
        if step == STEP_START:
            return '%s  # then wait until VMState is running, at most %ss' % (
                self._cmd('startvm', vm.uuid, '--type', 'headless'), shutdown_timeout)
        raise ValueError(step)

    # -- changing -------------------------------------------------------------------------------

    def set_fusion(self, vm, enabled):
        argv = ['modifyvm', vm.uuid, self.fusion_option(), 'on' if enabled else 'off']
        attempt = 0
        while True:
            attempt += 1
            rc, out, err = self.runner.run(argv, check=False, changes=True)
            if rc == 0:
                break
            output = (err or '') + (out or '')
            if is_lock_race(output) and attempt < self.lock_retries:
                self._sleep(self.lock_retry_delay)
                continue
            raise self._set_fusion_error(vm, enabled, output, attempt)
        # modifyvm may exit 0 without applying (or a settings race may undo it): read it back.
        info = self._info(vm)
        if page_fusion_enabled(info) != enabled:
            raise FusionError("VBoxManage accepted page fusion %s for VM '%s' but showvminfo still says "
                              "pagefusion=\"%s\"." % ('on' if enabled else 'off', vm.name, info.get('pagefusion')))
        self._mark(vm, info)

    def _set_fusion_error(self, vm, enabled, output, attempts):
        wanted = 'on' if enabled else 'off'
        message = error_text(output)
        not_mutable = NOT_MUTABLE_RE.search(output)
        if not_mutable:
            state = not_mutable.group(1)
            if state.lower() in ('saved', 'abortedsaved', 'aborted-saved'):
                return FusionError(saved_state_message(vm.name, state.lower()))
            return FusionError("VM '%s' is not shut off (VirtualBox says: %s); page fusion was not changed. Shut it "
                               "down first, or use when_running=restart." % (vm.name, message))
        if is_not_implemented(output):
            return UnsupportedError(self._not_implemented_reason(message))
        if is_lock_race(output):
            try:
                state = vm_state(self._info(vm))
            except FusionError:
                state = None
            if state and not is_off_state(state):
                return FusionError("VM '%s' is %s now (it was shut off when it was read, so something started it "
                                   "meanwhile); page fusion was not changed. VirtualBox says: %s"
                                   % (vm.name, state, message))
            return FusionError("VM '%s' stayed locked by another VirtualBox session through %d attempts (VirtualBox "
                               "says: %s); page fusion was not changed. Retry when nothing else (the GUI, Vagrant, "
                               "another play) is working on this VM." % (vm.name, attempts, message))
        if 'VBOX_E_OBJECT_NOT_FOUND' in output:
            return FusionError("VirtualBox VM '%s' (%s) is no longer registered." % (vm.name, vm.uuid))
        return FusionError("Cannot switch page fusion %s for VM '%s' with VirtualBox %s: %s"
                           % (wanted, vm.name, self.versions().get('version') or 'unknown', message))

    def _not_implemented_reason(self, message):
        eligible, reasons = vbox_host_eligibility(self.host_machine, self.host_system)
        if not eligible:
            return '%s (VirtualBox says: %s)' % ('; '.join(reasons), message)
        supported, reason = vbox_version_support(self.runner.version_output())
        if not supported:
            return reason
        return ('VirtualBox %s on this %s host refuses to switch Page Fusion (VirtualBox says: %s); its build lacks '
                'page sharing, as in the VirtualBox 7.2 regression (https://github.com/VirtualBox/virtualbox/issues/268).'
                % (self.versions().get('version') or 'unknown', self.host_machine, message))

    def shutdown(self, vm, timeout, force_off=False):
        """Graceful ACPI shutdown; hard power-off only with ``force_off``. Leaves a VM it cannot stop unchanged."""
        info = self._info(vm)
        state = vm_state(info)
        if is_off_state(state):
            self._mark(vm, info)
            return
        if state in SAVED_STATES:
            raise FusionError(saved_state_message(vm.name, state))
        if state in ('running', 'stopping'):
            refused = None
            if state == 'running':
                rc, out, err = self.runner.run(['controlvm', vm.uuid, 'acpipowerbutton'], check=False, changes=True)
                if rc != 0:
                    refused = error_text(err or out)
            info = self._wait(vm, is_off_state, 0 if refused else timeout)
            if info is not None:
                self._mark(vm, info)
                return
            if not force_off:
                if refused:
                    raise FusionError("VM '%s' refused the ACPI power button (VirtualBox says: %s); it is still running "
                                      "and page fusion was not changed. Set force_off=true to power it off hard."
                                      % (vm.name, refused))
                raise FusionError(
                    "VM '%s' did not shut down within shutdown_timeout=%s s after the ACPI power button (does the "
                    "guest honour ACPI?); it is still running and page fusion was not changed. Raise "
                    "shutdown_timeout, shut it down yourself, or set force_off=true to power it off hard."
                    % (vm.name, timeout))
        elif not force_off:
            raise FusionError("VM '%s' is %s: a graceful (ACPI) shutdown needs a running VM, so it was left %s and "
                              "page fusion was not changed. Resume it first, or set force_off=true to power it off "
                              "hard." % (vm.name, state, state))
        self._power_off(vm)

    def _power_off(self, vm):
        rc, out, err = self.runner.run(['controlvm', vm.uuid, 'poweroff'], check=False, changes=True)
        info = self._wait(vm, is_off_state, POWEROFF_WAIT)
        if info is None:
            raise FusionError("VM '%s' is still not shut off after a hard power-off%s."
                              % (vm.name, (' (VirtualBox says: %s)' % error_text(err or out)) if rc != 0 else ''))
        self._mark(vm, info)

    def start(self, vm, timeout):
        """``startvm --type headless`` and wait until the VM runs."""
        rc, out, err = self.runner.run(['startvm', vm.uuid, '--type', 'headless'], check=False, changes=True)
        if rc != 0:
            raise FusionError("VM '%s' did not start again (VirtualBox says: %s). Its page fusion setting is now %s; "
                              "start it yourself with: %s"
                              % (vm.name, error_text(err or out), 'on' if vm.fusion else 'off',
                                 self._cmd('startvm', vm.uuid, '--type', 'headless')))
        info = self._wait(vm, lambda state: state == 'running', timeout)
        if info is None:
            raise FusionError("VM '%s' was started but is not running after %s s." % (vm.name, timeout))
        self._mark(vm, info)

    # -- metrics --------------------------------------------------------------------------------

    def setup_metrics(self, obj, metrics, period=1, samples=1):
        """``metrics setup``: nothing is collected before it; VM data exists only while the VM runs.

        Pass base metric names (``RAM/VMM``, ``Guest/RAM/Usage``): VirtualBox matches setup filters against
        base metrics only and silently ignores sub-metric names such as ``RAM/VMM/Shared``.
        """
        self.runner.run(['metrics', 'setup', '--period', period, '--samples', samples, obj, ','.join(metrics)])

    def query_metrics(self, obj, metrics):
        """Parsed ``metrics query <obj> <metrics>`` rows (see :func:`parse_metrics_query`)."""
        _rc, out, _err = self.runner.run(['metrics', 'query', obj, ','.join(metrics)])
        return parse_metrics_query(out, metrics)
