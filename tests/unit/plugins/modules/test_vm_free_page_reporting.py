# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pagefusion.core.vm free_page_reporting and host_info's report of it, against libvirt's test driver."""

from __future__ import annotations

import os

import libvirt  # noqa: F401  pylint: disable=unused-import  # the libvirt backend under test needs it

from ansible_collections.pagefusion.core.plugins.module_utils import _libvirt, _libvirt_qemu
from ansible_collections.pagefusion.core.plugins.modules import host_info, vm

HERE = os.path.dirname(__file__)
URI = 'test://' + os.path.abspath(os.path.join(HERE, '..', 'module_utils', 'balloon-node.xml'))
ON = "define 'balloon-none' with free page reporting <memballoon model='virtio' freePageReporting='on'/>"


def by_name(result):
    return dict((entry['name'], entry) for entry in result['vms'])


def test_on_check_then_real_predict_the_same(run_module):
    args = dict(uri=URI, name='balloon-none', free_page_reporting=True)
    check, failed = run_module(vm.main, args, check_mode=True, diff=True)
    assert not failed
    real, failed = run_module(vm.main, args, diff=True)
    assert not failed
    assert check['changed'] is real['changed'] is True
    assert check['actions'] == real['actions'] == [ON]
    assert check['diff'] == real['diff']
    assert real['diff']['before']['balloon-none']['free_page_reporting'] is False
    assert real['diff']['after']['balloon-none']['free_page_reporting'] is True
    entry = by_name(real)['balloon-none']
    assert entry['free_page_reporting_before'] is False and entry['free_page_reporting_after'] is True
    assert entry['page_fusion_before'] == entry['page_fusion_after'] == 'disabled'


def test_already_on_is_unchanged_and_off_changes(run_module):
    result, failed = run_module(vm.main, dict(uri=URI, name='reporting-on', free_page_reporting=True))
    assert not failed and result['changed'] is False and result['actions'] == []
    result, failed = run_module(vm.main, dict(uri=URI, name='reporting-on', free_page_reporting=False))
    assert not failed and result['changed'] is True
    assert result['actions'] == ["define 'reporting-on' without free page reporting (no freePageReporting='on' on "
                                 "<memballoon>)"]


def test_with_page_fusion_in_one_definition_change(run_module):
    result, failed = run_module(vm.main, dict(uri=URI, name='balloon-none', free_page_reporting=True,
                                              state='enabled'))
    assert not failed and result['changed'] is True
    assert result['actions'] == ["define 'balloon-none' without <memoryBacking><nosharepages/> (page fusion enabled), "
                                 "with free page reporting <memballoon model='virtio' freePageReporting='on'/>"]
    entry = by_name(result)['balloon-none']
    assert entry['page_fusion_after'] == 'enabled' and entry['free_page_reporting'] is True


def test_running_vm_refused_then_deferred(run_module):
    args = dict(uri=URI, name='running-no-reporting', free_page_reporting=True)
    result, failed = run_module(vm.main, args)
    assert failed and "VM 'running-no-reporting' is running: free page reporting can only be switched while it is " \
        "shut off" in result['msg'] and 'Nothing was changed.' in result['msg']
    result, failed = run_module(vm.main, dict(args, when_running='defer'))
    assert not failed and result['changed'] and result['restart_required']


def test_old_libvirt_is_refused_before_anything_changes(run_module, monkeypatch):
    old = _libvirt_qemu.free_page_reporting_support('6.0.0', 'QEMU', '4.2.1')
    monkeypatch.setattr(_libvirt.LibvirtBackend, 'setting_refusal',
                        lambda self, key, value: '; '.join(old['reasons']) if value else None)
    result, failed = run_module(vm.main, dict(uri=URI, name=['balloon-none', 'no-balloon'],
                                              free_page_reporting=True))
    assert failed
    assert ("VM 'balloon-none': free_page_reporting=true is refused on this host: free page reporting needs libvirt "
            "6.9.0 or later; this libvirt is 6.0.0") in result['msg']
    assert 'Nothing was changed.' in result['msg']
    assert all(entry['changed'] is False for entry in result['vms'])


def test_option_alone_satisfies_required_one_of(run_module):
    result, failed = run_module(vm.main, dict(uri=URI, name='no-balloon'))
    assert failed and 'free_page_reporting' in result['msg']


def test_host_info_reports_support_and_each_vm(run_module):
    result, failed = run_module(host_info.main, dict(backend='libvirt', uri=URI))
    assert not failed
    support = result['backends']['libvirt']['free_page_reporting']
    # The test driver is not QEMU: libvirt is new enough, QEMU is unknown, so not supported.
    assert support['libvirt'] is True and support['qemu'] is None and support['supported'] is False
    assert "free page reporting needs the QEMU hypervisor; this connection's is TEST" in support['reasons']
    vms = by_name(result)
    assert vms['reporting-on']['free_page_reporting'] is True
    assert vms['no-balloon']['free_page_reporting'] is False
