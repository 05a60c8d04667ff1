# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Tenant safety: page fusion must not let VMs of different tenants share memory pages.

Private module_utils of pagefusion.core. Pure functions over VmRecords and Plans.

A VM's tenant is an operator-set label (libvirt: ``<pagefusion:tenant name='...'/>`` in the domain
metadata; VirtualBox: the extradata key ``pagefusion/tenant``). A VM's memory is *open to sharing*
when its definition has page fusion enabled or its running instance still runs with it. Two VMs
open to sharing on one host can share pages, and shared pages are a side channel (Flush+Reload,
memory deduplication attacks). VMs without a label belong to no known tenant: they are never
counted as a conflict, but enabling a labelled VM next to them earns a warning.
"""

from __future__ import annotations

SIDE_CHANNEL_NOTE = ('Shared pages between tenants are a side channel (Flush+Reload, memory deduplication attacks). '
                     'Set allow_cross_tenant=true only if these tenants trust each other.')


def open_to_sharing(vm, fusion_after=None):
    """Whether the VM's memory is, or after the change will be, open to sharing with other VMs."""
    persistent = vm.fusion if fusion_after is None else fusion_after
    return bool(persistent) or bool(vm.fusion_live)


def sharing_tenants(vms, fusion_after=None):
    """``{tenant: [vm names]}`` of the labelled VMs open to sharing (``fusion_after`` by name overrides)."""
    fusion_after = fusion_after or {}
    tenants = {}
    for vm in vms:
        if vm.tenant and open_to_sharing(vm, fusion_after.get(vm.name)):
            tenants.setdefault(vm.tenant, []).append(vm.name)
    for names in tenants.values():
        names.sort()
    return tenants


def cross_tenant_report(vms):
    """What host_info reports: which tenants already share this host's page fusion."""
    tenants = sharing_tenants(vms)
    return {'cross_tenant_sharing': len(tenants) > 1, 'sharing_tenants': tenants}


def check_plans(vms, plans):
    """Refuse plans that would open a labelled VM to sharing next to another tenant's VMs.

    Returns ``(errors, warnings)``; each error names the VM, both tenants and the other tenant's VMs.
    Changes within one call count together: enabling VMs of two tenants at once is refused too.
    """
    after = dict((plan.vm.name, plan.fusion_after) for plan in plans)
    tenants = sharing_tenants(vms, after)
    unlabelled = sorted(vm.name for vm in vms if not vm.tenant and open_to_sharing(vm, after.get(vm.name)))
    errors, warnings = [], []
    for plan in plans:
        vm = plan.vm
        opens = after[vm.name] and not open_to_sharing(vm)
        if not opens or not vm.tenant:
            continue
        others = dict((tenant, names) for tenant, names in tenants.items() if tenant != vm.tenant)
        if others:
            errors.append("Enabling page fusion on VM '%s' (tenant '%s') would let it share memory pages with VMs "
                          "of other tenants on this host: %s. %s"
                          % (vm.name, vm.tenant,
                             '; '.join("tenant '%s': %s" % (tenant, ', '.join("'%s'" % n for n in names))
                                       for tenant, names in sorted(others.items())),
                             SIDE_CHANNEL_NOTE))
        elif unlabelled:
            warnings.append("VM '%s' (tenant '%s') will share memory pages with VMs that carry no tenant label: %s. "
                            "Label every VM on this host so pagefusion.core can keep tenants apart."
                            % (vm.name, vm.tenant, ', '.join("'%s'" % n for n in unlabelled[:10])))
    return errors, warnings
