# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The libvirt backend and the planner on one test-driver connection (its state lives as long as it)."""

from __future__ import annotations

import os

import libvirt  # noqa: F401  pylint: disable=unused-import  # the libvirt backend under test needs it
import pytest

from ansible_collections.pagefusion.core.plugins.module_utils import _libvirt, _libvirt_qemu  # noqa: E402
from ansible_collections.pagefusion.core.plugins.module_utils._fusion import (  # noqa: E402
    FusionError,
    apply_plan,
    plan_vm,
    select_vms,
)

NODE = os.path.join(os.path.dirname(__file__), '..', 'modules', 'node.xml')


@pytest.fixture
def backend(test_driver_backend):
    return test_driver_backend(NODE)


def vms_by_name(backend):
    return dict((vm.name, vm) for vm in backend.list_vms())


def test_records(backend):
    vms = vms_by_name(backend)
    assert vms['off-shared'].fusion is True and vms['off-shared'].is_off
    assert vms['off-private'].fusion is False
    running = vms['running-private']
    assert running.power_state == 'running' and not running.is_off and running.fusion_live is False
    odd = vms[u'odd "q" \u00fc $x;& *[1]']
    assert odd.os_id == 'http://microsoft.com/win/10'


def test_apply_is_idempotent_and_preserves_the_rest(backend):
    name = u'odd "q" \u00fc $x;& *[1]'
    vm = vms_by_name(backend)[name]
    plan = plan_vm(vm, True, 'fail')
    assert plan.steps == [('set_fusion', True)]
    apply_plan(backend, plan, 5, False)

    again = vms_by_name(backend)[name]
    assert again.fusion is True
    assert plan_vm(again, True, 'fail').steps == []
    root = again.details['root']
    # Other memoryBacking children, the metadata namespace and the name survive the edit.
    assert root.find('./memoryBacking/locked') is not None
    assert root.find('./memoryBacking/nosharepages') is None
    assert again.os_id == 'http://microsoft.com/win/10'
    assert root.find('./name').text == name

    apply_plan(backend, plan_vm(again, False, 'fail'), 5, False)
    back = vms_by_name(backend)[name]
    assert back.fusion is False
    assert back.details['root'].find('./memoryBacking/locked') is not None


def test_empty_memory_backing_is_removed(backend):
    vm = vms_by_name(backend)['off-private']
    apply_plan(backend, plan_vm(vm, True, 'fail'), 5, False)
    assert vms_by_name(backend)['off-private'].details['root'].find('./memoryBacking') is None


def test_defer_then_restart(backend):
    vm = vms_by_name(backend)['running-private']
    plan = plan_vm(vm, True, 'defer')
    assert plan.steps == [('set_fusion', True)] and plan.restart_required
    apply_plan(backend, plan, 5, False)
    vm = vms_by_name(backend)['running-private']
    assert vm.fusion is True and vm.fusion_live is False
    # Definition right, instance not: fail mode does nothing but still reports the pending restart.
    pending = plan_vm(vm, True, 'fail')
    assert pending.steps == [] and pending.error is None and pending.restart_required
    # restart mode cycles the VM to apply it, without redefining.
    plan = plan_vm(vm, True, 'restart')
    assert plan.steps == [('shutdown', None), ('start', None)]
    apply_plan(backend, plan, 5, False)
    vm = vms_by_name(backend)['running-private']
    assert vm.power_state == 'running' and vm.fusion_live is True
    assert plan_vm(vm, True, 'restart').steps == []


class _StubbornDomain(object):
    """Wraps a test-driver domain whose guest ignores the ACPI power button."""

    def __init__(self, dom):
        self._dom = dom

    def shutdown(self):
        return 0

    def __getattr__(self, name):
        return getattr(self._dom, name)


@pytest.fixture
def stubborn_vm(backend):
    """running-private, ignoring the power button, on a backend whose clock only moves when it sleeps."""
    clock = [0.0]
    backend._clock = lambda: clock[0]
    backend._sleep = lambda seconds: clock.__setitem__(0, clock[0] + seconds)
    vm = vms_by_name(backend)['running-private']
    vm.details['dom'] = _StubbornDomain(vm.details['dom'])
    return vm


def test_shutdown_timeout_leaves_vm_running_and_unchanged(backend, stubborn_vm):
    vm = stubborn_vm
    with pytest.raises(FusionError, match='did not shut down within shutdown_timeout=3 s; it is still running and unchanged'):
        apply_plan(backend, plan_vm(vm, True, 'restart'), 3, False)
    again = vms_by_name(backend)['running-private']
    assert again.power_state == 'running' and again.fusion is False


def test_shutdown_timeout_with_force_off(backend, stubborn_vm):
    apply_plan(backend, plan_vm(stubborn_vm, True, 'restart'), 3, True)
    again = vms_by_name(backend)['running-private']
    assert again.power_state == 'running' and again.fusion is True and again.fusion_live is True


def test_select_vms_exact_names_and_patterns(backend):
    vms = backend.list_vms()
    selected, missing = select_vms(vms, names=['off-shared', 'nope', 'off-shared'])
    assert [vm.name for vm in selected] == ['off-shared'] and missing == ['nope']
    selected, _missing = select_vms(vms, pattern='*private')
    assert sorted(vm.name for vm in selected) == ['off-private', 'running-private']
    # A name with glob characters is not treated as a pattern.
    selected, missing = select_vms(vms, names=['off-*'])
    assert selected == [] and missing == ['off-*']


def test_version_string():
    assert _libvirt.version_string(9000000) == '9.0.0'
    assert _libvirt.version_string(7002005) == '7.2.5'
    assert _libvirt.version_string(0) is None


def test_qemu_pid_from_pidfile_and_cmdline(tmp_path):
    run_dir = tmp_path / 'run'
    proc = tmp_path / 'proc'
    run_dir.mkdir()
    (proc / '4242').mkdir(parents=True)
    (proc / '4242' / 'cmdline').write_bytes(b'/usr/bin/qemu-system-x86_64\0-name\0guest=a,,b,debug-threads=on\0')
    assert _libvirt_qemu.qemu_pid('a,b', run_dirs=(str(run_dir),), proc_root=str(proc)) == 4242
    # 'a' must not match the QEMU of 'a,b' (its -name value is 'guest=a,,b').
    assert _libvirt_qemu.qemu_pid('a', run_dirs=(str(run_dir),), proc_root=str(proc)) is None
    (proc / '51').mkdir()
    (proc / '51' / 'cmdline').write_bytes(b'qemu\0-name\0guest=vm 1,debug-threads=on\0')
    (run_dir / 'vm 1.pid').write_text('51\n')
    assert _libvirt_qemu.qemu_pid('vm 1', run_dirs=(str(run_dir),), proc_root=str(proc)) == 51
    # A stale pid file naming another domain's process does not count.
    (run_dir / 'other.pid').write_text('4242\n')
    assert _libvirt_qemu.qemu_pid('other', run_dirs=(str(run_dir),), proc_root=str(proc)) is None


def test_qemu_pid_from_xml_escaped_pidfile(tmp_path):
    # libvirt 9 writes the pid file of domain 'a "b" & c' as 'a &quot;b&quot; &amp; c.pid'.
    run_dir = tmp_path / 'run'
    proc = tmp_path / 'proc'
    run_dir.mkdir()
    (proc / '77').mkdir(parents=True)
    (proc / '77' / 'cmdline').write_bytes(b'qemu\0-name\0guest=a "b" & c,debug-threads=on\0')
    (run_dir / 'a &quot;b&quot; &amp; c.pid').write_text('77\n')
    assert _libvirt_qemu.qemu_pid('a "b" & c', run_dirs=(str(run_dir),), proc_root=str(proc)) == 77
