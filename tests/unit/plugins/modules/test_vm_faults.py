# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pagefusion.core.vm and host_info on faults, against libvirt's real test driver (test:///<node file>).

The same faults on the real libvirt daemon with real guests: tests/integration/targets/vm_libvirt/tasks/faults.yml
and tests/integration/targets/host_info_degraded.
"""

from __future__ import annotations

import libvirt  # noqa: F401  pylint: disable=unused-import  # the libvirt backend under test needs it
import pytest

from ansible_collections.pagefusion.core.plugins.module_utils import _libvirt
from ansible_collections.pagefusion.core.plugins.module_utils._fusion import (
    STEP_SET_FUSION,
    FusionError,
    UnsupportedError,
    VmRecord,
    plan_vm,
)
from ansible_collections.pagefusion.core.plugins.modules import host_info, vm

NODE = """<node>
  <domain type='kvm' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>paused-private</name>
    <memory unit='MiB'>512</memory>
    <os><type arch='x86_64'>hvm</type></os>
    <memoryBacking><nosharepages/></memoryBacking>
    <test:runstate>3</test:runstate>
  </domain>
  <domain type='kvm'>
    <name>running-private</name>
    <memory unit='MiB'>512</memory>
    <os><type arch='x86_64'>hvm</type></os>
    <memoryBacking><nosharepages/></memoryBacking>
  </domain>
</node>
"""


@pytest.fixture
def uri(tmp_path):
    path = tmp_path / 'faults-node.xml'
    path.write_text(NODE)
    return 'test://%s' % path


@pytest.mark.parametrize('force_off', [False, True])
def test_a_paused_vm_is_refused_for_restart_in_check_mode_and_for_real(run_module, uri, force_off):
    args = dict(uri=uri, name='paused-private', state='enabled', when_running='restart', force_off=force_off)
    for check_mode in (True, False):
        result, failed = run_module(vm.main, args, check_mode=check_mode)
        assert failed
        assert "VM 'paused-private' is paused: it cannot act on a graceful shutdown" in result['msg']
        assert 'virsh resume' in result['msg'] and result['msg'].endswith('Nothing was changed.')
        assert result['vms'][0]['changed'] is False and result['vms'][0]['actions'] == []


def test_a_paused_vm_can_be_deferred(run_module, uri):
    result, failed = run_module(vm.main, dict(uri=uri, name='paused-private', state='enabled', when_running='defer'))
    assert not failed
    assert result['changed'] and result['restart_required']
    assert result['vms'][0]['power_state'] == 'paused'


def test_a_failed_redefine_after_the_shutdown_starts_the_vm_again(run_module, uri, monkeypatch):
    def refuse(self, record, enabled):
        raise FusionError("libvirt refused the new definition of VM '%s': no. Its definition is unchanged."
                          % record.name)
    monkeypatch.setattr(_libvirt.LibvirtBackend, 'set_fusion', refuse)
    args = dict(uri=uri, name='running-private', state='enabled', when_running='restart', shutdown_timeout=5)
    result, failed = run_module(vm.main, args)
    assert failed
    assert result['msg'].endswith('It was shut down for the change and has been started again as it was.')
    entry = result['vms'][0]
    assert entry['power_state'] == 'running' and entry['page_fusion'] == 'disabled'
    # The VM went down and came back: that is a change the operator must see.
    assert entry['changed'] is True and result['changed'] is True


def test_host_info_for_libvirt_without_libvirt_python(run_module, uri, monkeypatch):
    monkeypatch.setattr(_libvirt, 'HAS_LIBVIRT', False)
    result, failed = run_module(host_info.main, dict(backend='libvirt', uri=uri))
    assert failed
    assert 'Failed to import the required Python library (libvirt-python)' in result['msg']
    result, failed = run_module(host_info.main, dict(backend='auto', uri=uri))
    assert not failed
    report = result['backends']['libvirt']
    assert (report['available'], report['reachable'], report['error']) == (False, False, 'libvirt-python is not installed')
    assert 'libvirt is not usable: libvirt-python is not installed' in report['reasons']


@pytest.mark.parametrize('fusion_live, restart_required', [(False, False), (True, True), (None, True)])
def test_undoing_a_deferred_change_needs_no_restart(fusion_live, restart_required):
    # The definition says enabled (an earlier defer); the instance runs with fusion_live (None: unknown).
    record = VmRecord('deferred', 'libvirt', 'running', is_off=False, fusion=True, fusion_live=fusion_live)
    plan = plan_vm(record, False, 'defer')
    assert plan.steps == [(STEP_SET_FUSION, False)]
    assert plan.restart_required is restart_required


def test_a_host_found_unsupported_after_the_shutdown_is_reported_not_failed(run_module, uri, monkeypatch):
    def unsupported(self, record, enabled):
        raise UnsupportedError('this host cannot switch page fusion')
    monkeypatch.setattr(_libvirt.LibvirtBackend, 'set_fusion', unsupported)
    args = dict(uri=uri, name='running-private', state='enabled', when_running='restart', shutdown_timeout=5)
    result, failed = run_module(vm.main, args)
    assert not failed
    assert result['unsupported'] is True and result['vms'][0]['power_state'] == 'running'
