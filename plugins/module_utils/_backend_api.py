# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The backend contract: what every hypervisor backend offers the modules, written down once.

Private module_utils of pagefusion.core; its API may change at any time.

A backend is opened by ``_backends.open_backend`` and speaks for one hypervisor API (libvirt,
VirtualBox). The modules only use what :class:`Backend` lists here:

- ``vm`` reads every VM once (:meth:`Backend.list_vms`), plans with ``_fusion.plan_vm`` using
  :attr:`Backend.can_defer` and :attr:`Backend.supported_settings`, asks
  :meth:`Backend.unsupported_reason`, :meth:`Backend.setting_refusal` and :meth:`Backend.eligibility`, describes the plan with
  :meth:`Backend.describe_step` and, outside check mode, runs it through the power and definition
  operations (:meth:`Backend.shutdown`, :meth:`Backend.set_fusion`, :meth:`Backend.set_definition`,
  :meth:`Backend.start`);
- ``host_info`` reports :meth:`Backend.versions`, every VM with :meth:`Backend.eligibility` and
  :meth:`Backend.guest_os`;
- ``fusion_facts`` reports :meth:`Backend.usage_facts` (what page fusion shares per VM, read the
  backend's own way) and :meth:`Backend.commands`.

Every failure a user can act on is a ``_fusion.FusionError`` whose message names the VM or the
connection and what to do.
"""

from __future__ import annotations

from ansible_collections.pagefusion.core.plugins.module_utils._fusion import FusionError, state_word


def vm_facts_entry(vm):
    """The keys every ``fusion_facts`` VM entry has, whatever the backend."""
    return {
        'backend': vm.backend,
        'uuid': vm.uuid,
        'power_state': vm.power_state,
        'page_fusion': state_word(vm.fusion),
        'page_fusion_live': None if vm.fusion_live is None else state_word(vm.fusion_live),
    }


class Backend(object):
    """A hypervisor backend. Subclasses set the attributes and implement the methods.

    Reading methods never change anything. Changing methods update the VmRecord they were given, so
    that the module reports what really happened.
    """

    #: The backend's name, as the ``backend`` option and the results spell it.
    name = None
    #: Whether a running VM's persistent definition can be changed now, for its next cold boot
    #: (``when_running=defer``).
    can_defer = False
    #: Definition settings besides page fusion that the backend manages (see ``_fusion.plan_vm``).
    supported_settings = ()

    def close(self):
        """Release the connection. Safe to call more than once."""

    # -- reading --------------------------------------------------------------------------------

    def list_vms(self):
        """Every VM, read once, as ``_fusion.VmRecord`` objects."""
        raise NotImplementedError

    def versions(self):
        """The backend's host and version figures that ``host_info`` reports (a dict)."""
        raise NotImplementedError

    def unsupported_reason(self):
        """Why this host cannot switch page fusion at all (reported, not failed), or None."""
        return None

    def eligibility(self, vm):
        """``(eligible, reasons)``: whether page fusion would work for this VM, and why not."""
        raise NotImplementedError

    def guest_os(self, vm):
        """``(os_id, os_source, os_name)`` of the VM's guest; never guessed (all None when unknown)."""
        raise NotImplementedError

    def usage_facts(self, sysfs, warn):
        """What page fusion shares, per VM, read the backend's own way.

        ``sysfs`` is the host's ``_ksm.KsmSysfs``; ``warn(text)`` reports a warning. Returns
        ``(host figures or None, {vm name: entry})``; each entry starts with :func:`vm_facts_entry`.
        Host figures, when not None, are reported under the backend's name in the host facts.
        """
        raise NotImplementedError

    def commands(self):
        """The exact command lines that ran, in order, shell-quoted; None for a backend that runs none."""
        return None

    # -- planning and changing ------------------------------------------------------------------

    def describe_step(self, vm, step, arg, shutdown_timeout=None, force_off=False):
        """The text ``actions`` shows for one plan step (``_fusion.STEP_*``)."""
        raise NotImplementedError

    def set_fusion(self, vm, enabled):
        """Switch page fusion in the VM's persistent definition, and prove it held."""
        raise NotImplementedError

    def setting_refusal(self, key, value):
        """Why this host cannot take the definition setting ``key=value`` at all (e.g. too old), or None."""
        return None

    def set_definition(self, vm, changes):
        """Apply ``{setting: value}`` of :attr:`supported_settings` to the persistent definition.

        When the plan changes page fusion too, ``changes`` also holds ``page_fusion`` (True/False): one definition
        change then carries both (``_fusion.merged_steps``).
        """
        raise FusionError('the %s backend cannot set %s' % (self.name, ', '.join(sorted(changes))))

    def shutdown(self, vm, timeout, force_off=False):
        """Shut the VM down gracefully (hard only with ``force_off``); a VM that does not stop is left unchanged."""
        raise NotImplementedError

    def start(self, vm, timeout):
        """Start the VM and wait until it runs."""
        raise NotImplementedError
