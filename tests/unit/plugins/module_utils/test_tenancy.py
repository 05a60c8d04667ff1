# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tenant safety rules."""

from __future__ import annotations

from ansible_collections.pagefusion.core.plugins.module_utils._fusion import VmRecord, plan_vm
from ansible_collections.pagefusion.core.plugins.module_utils._tenancy import check_plans, cross_tenant_report


def vm(name, tenant=None, fusion=False, running=False, live=None):
    return VmRecord(name=name, backend='libvirt', power_state='running' if running else 'shut off',
                    is_off=not running, fusion=fusion, fusion_live=live if running else None, tenant=tenant)


def plans_for(vms, names, want=True, when_running='fail'):
    return [plan_vm(v, want, when_running) for v in vms if v.name in names]


def test_enabling_next_to_another_tenant_is_refused_both_ways():
    vms = [vm('a1', 'acme'), vm('b1', 'bolt', fusion=True)]
    errors, _warnings = check_plans(vms, plans_for(vms, ['a1']))
    assert len(errors) == 1
    assert "VM 'a1' (tenant 'acme')" in errors[0] and "tenant 'bolt': 'b1'" in errors[0]
    # And the other way round: bolt's VM is the one being enabled next to an enabled acme VM.
    vms = [vm('a1', 'acme', fusion=True), vm('b1', 'bolt')]
    errors, _warnings = check_plans(vms, plans_for(vms, ['b1']))
    assert len(errors) == 1 and "VM 'b1' (tenant 'bolt')" in errors[0]


def test_a_running_instance_that_still_shares_counts():
    # b1's definition says disabled but its running QEMU still has mergeable memory.
    vms = [vm('a1', 'acme'), vm('b1', 'bolt', fusion=False, running=True, live=True)]
    errors, _warnings = check_plans(vms, plans_for(vms, ['a1']))
    assert len(errors) == 1


def test_same_tenant_and_disabled_others_are_fine():
    vms = [vm('a1', 'acme'), vm('a2', 'acme', fusion=True), vm('b1', 'bolt', fusion=False)]
    assert check_plans(vms, plans_for(vms, ['a1'])) == ([], [])


def test_enabling_two_tenants_in_one_call_is_refused():
    vms = [vm('a1', 'acme'), vm('b1', 'bolt')]
    errors, _warnings = check_plans(vms, plans_for(vms, ['a1', 'b1']))
    assert len(errors) == 2


def test_disabling_is_never_refused():
    vms = [vm('a1', 'acme', fusion=True), vm('b1', 'bolt', fusion=True)]
    assert check_plans(vms, plans_for(vms, ['a1'], want=False)) == ([], [])


def test_unlabelled_vms_warn_but_do_not_refuse():
    vms = [vm('a1', 'acme'), vm('x', fusion=True)]
    errors, warnings = check_plans(vms, plans_for(vms, ['a1']))
    assert errors == [] and len(warnings) == 1 and "'x'" in warnings[0]
    # An unlabelled VM being enabled is not checked at all.
    vms = [vm('y'), vm('b1', 'bolt', fusion=True)]
    assert check_plans(vms, plans_for(vms, ['y'])) == ([], [])


def test_host_report():
    vms = [vm('a1', 'acme', fusion=True), vm('b1', 'bolt', running=True, fusion=False, live=True), vm('c1', 'cult')]
    assert cross_tenant_report(vms) == {'cross_tenant_sharing': True,
                                        'sharing_tenants': {'acme': ['a1'], 'bolt': ['b1']}}
    assert cross_tenant_report(vms[:1])['cross_tenant_sharing'] is False
