# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Free page reporting of the virtio balloon: the pure XML edits, the plans, and one redefine with page fusion."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.pagefusion.core.plugins.module_utils import _libvirt_qemu, _libvirt_xml
from ansible_collections.pagefusion.core.plugins.module_utils._fusion import (
    STEP_SET_DEFINITION,
    STEP_SET_FUSION,
    STEP_SHUTDOWN,
    STEP_START,
    apply_plan,
    describe_plan,
    merged_steps,
    plan_vm,
    result_for,
)

NODE = os.path.join(os.path.dirname(__file__), 'balloon-node.xml')
ON = {'free_page_reporting': True}
OFF = {'free_page_reporting': False}


def parse(text):
    return ET.fromstring(text)


def balloon_xml(root):
    return [ET.tostring(node, encoding='unicode').strip() for node in root.findall('./devices/memballoon')]


# -- the pure XML edits ------------------------------------------------------------------------

@pytest.mark.parametrize('xml, expected', [
    ('<domain/>', False),
    ('<domain><devices><memballoon model="none"/></devices></domain>', False),
    ('<domain><devices><memballoon model="virtio"/></devices></domain>', False),
    ('<domain><devices><memballoon model="virtio" freePageReporting="off"/></devices></domain>', False),
    ('<domain><devices><memballoon model="virtio" freePageReporting="on"/></devices></domain>', True),
    ('<domain><devices><memballoon model="virtio-non-transitional" freePageReporting="on"/></devices></domain>', True),
    ('<domain><devices><memballoon model="none" freePageReporting="on"/></devices></domain>', False),
])
def test_read(xml, expected):
    assert _libvirt_xml.has_free_page_reporting(parse(xml)) is expected


def test_on_adds_a_virtio_balloon_where_there_is_none():
    root = parse('<domain><name>a</name></domain>')
    assert _libvirt_xml.set_free_page_reporting(root, True) is True
    assert balloon_xml(root) == ['<memballoon model="virtio" freePageReporting="on" />']
    assert _libvirt_xml.set_free_page_reporting(root, True) is False


def test_on_turns_model_none_into_virtio_and_keeps_the_rest():
    root = parse('<domain><devices><disk type="file"/><memballoon model="none"/></devices></domain>')
    assert _libvirt_xml.set_free_page_reporting(root, True) is True
    assert balloon_xml(root) == ['<memballoon model="virtio" freePageReporting="on" />']
    assert root.find('./devices/disk') is not None and len(root.findall('./devices/memballoon')) == 1


def test_on_keeps_the_balloons_model_attributes_and_children():
    root = parse('<domain><devices><memballoon model="virtio-transitional" autodeflate="on"><stats period="10"/>'
                 '<address type="pci" slot="0x05"/></memballoon></devices></domain>')
    assert _libvirt_xml.set_free_page_reporting(root, True) is True
    balloon = root.find('./devices/memballoon')
    assert balloon.attrib == {'model': 'virtio-transitional', 'autodeflate': 'on', 'freePageReporting': 'on'}
    assert [child.tag for child in balloon] == ['stats', 'address']


@pytest.mark.parametrize('attribute', ['freePageReporting="on"', ''])
def test_off_removes_the_attribute_and_keeps_the_balloon(attribute):
    root = parse('<domain><devices><memballoon model="virtio" %s><stats period="5"/></memballoon></devices></domain>'
                 % attribute)
    assert _libvirt_xml.set_free_page_reporting(root, False) is bool(attribute)
    balloon = root.find('./devices/memballoon')
    assert balloon.attrib == {'model': 'virtio'} and balloon.find('./stats') is not None


def test_explicit_off_counts_as_off():
    root = parse('<domain><devices><memballoon model="virtio" freePageReporting="off"/></devices></domain>')
    assert _libvirt_xml.set_free_page_reporting(root, False) is False
    assert _libvirt_xml.set_free_page_reporting(root, True) is True
    assert balloon_xml(root) == ['<memballoon model="virtio" freePageReporting="on" />']


def test_apply_settings_carries_page_fusion_too():
    root = parse('<domain><memoryBacking><nosharepages/></memoryBacking></domain>')
    assert _libvirt_xml.apply_settings(root, {'page_fusion': True, 'free_page_reporting': True}) is True
    assert not _libvirt_xml.has_nosharepages(root) and _libvirt_xml.has_free_page_reporting(root)
    assert _libvirt_xml.definition_settings(root) == {'guest_agent_channel': False, 'free_page_reporting': True}


# -- host support ------------------------------------------------------------------------------

@pytest.mark.parametrize('lib, hyp, hyp_version, supported, lib_ok, qemu_ok', [
    ('9.0.0', 'QEMU', '7.2.22', True, True, True),
    ('6.9.0', 'QEMU', '5.1.0', True, True, True),
    ('6.8.0', 'QEMU', '7.2.0', False, False, True),
    ('9.0.0', 'QEMU', '5.0.1', False, True, False),
    ('9.0.0', 'TEST', '0.0.2', False, True, None),
    (None, None, None, False, None, None),
])
def test_support(lib, hyp, hyp_version, supported, lib_ok, qemu_ok):
    support = _libvirt_qemu.free_page_reporting_support(lib, hyp, hyp_version)
    assert (support['supported'], support['libvirt'], support['qemu']) == (supported, lib_ok, qemu_ok)
    assert bool(support['reasons']) is not supported


def test_support_reasons_name_the_versions():
    reasons = _libvirt_qemu.free_page_reporting_support('6.0.0', 'QEMU', '4.2.1')['reasons']
    assert reasons == ['free page reporting needs libvirt 6.9.0 or later; this libvirt is 6.0.0',
                       'free page reporting needs QEMU 5.1.0 or later; this QEMU is 4.2.1']


# -- plans on the real libvirt test driver ------------------------------------------------------

@pytest.fixture
def backend(test_driver_backend):
    return test_driver_backend(NODE)


def vms_by_name(backend):
    return dict((vm.name, vm) for vm in backend.list_vms())


def test_read_from_the_definitions(backend):
    vms = vms_by_name(backend)
    assert vms['reporting-on'].settings['free_page_reporting'] is True
    assert vms['no-balloon'].settings['free_page_reporting'] is False
    assert vms['running-no-reporting'].settings_live['free_page_reporting'] is False
    assert vms['reporting-on'].summary()['free_page_reporting'] is True


@pytest.mark.parametrize('name', ['no-balloon', 'balloon-none', 'balloon-stats'])
def test_on_then_idempotent_then_off(backend, name):
    vm = vms_by_name(backend)[name]
    plan = plan_vm(vm, None, 'fail', settings=ON)
    assert plan.steps == [(STEP_SET_DEFINITION, ON)]
    apply_plan(backend, plan, 5, False)
    entry = result_for(plan, [], True)
    assert entry['free_page_reporting_before'] is False and entry['free_page_reporting_after'] is True

    again = vms_by_name(backend)[name]
    assert again.settings['free_page_reporting'] is True
    assert plan_vm(again, None, 'fail', settings=ON).steps == []
    apply_plan(backend, plan_vm(again, None, 'fail', settings=OFF), 5, False)
    back = vms_by_name(backend)[name]
    assert back.settings['free_page_reporting'] is False
    # The balloon stays (virtio now), with what it had besides.
    assert back.details['root'].find('./devices/memballoon').get('model') == 'virtio'
    if name == 'balloon-stats':
        assert back.details['root'].find('./devices/memballoon/stats').get('period') == '10'


def test_page_fusion_and_reporting_in_one_redefine(backend):
    vm = vms_by_name(backend)['balloon-none']
    plan = plan_vm(vm, True, 'fail', settings=ON)
    assert plan.steps == [(STEP_SET_FUSION, True), (STEP_SET_DEFINITION, ON)]
    assert merged_steps(plan.steps) == [(STEP_SET_DEFINITION, {'free_page_reporting': True, 'page_fusion': True})]
    defined = []
    real_define = backend.conn.defineXML

    class CountingConn(object):
        def __getattr__(self, attr):
            return getattr(backend.conn_real, attr)

        def defineXML(self, xml):
            defined.append(xml)
            return real_define(xml)

    backend.conn_real, backend.conn = backend.conn, CountingConn()
    try:
        actions = describe_plan(backend, plan, 5, False)
        apply_plan(backend, plan, 5, False)
    finally:
        backend.conn = backend.conn_real
    assert len(defined) == 1
    assert actions == ["define 'balloon-none' without <memoryBacking><nosharepages/> (page fusion enabled), with free "
                       "page reporting <memballoon model='virtio' freePageReporting='on'/>"]
    assert plan.vm.fusion is True and plan.fusion_after is True
    vm = vms_by_name(backend)['balloon-none']
    assert vm.fusion is True and vm.settings['free_page_reporting'] is True


def test_running_vm_rules(backend):
    vm = vms_by_name(backend)['running-no-reporting']
    refused = plan_vm(vm, None, 'fail', settings=ON)
    assert "VM 'running-no-reporting' is running: free page reporting can only be switched while it is shut off" \
        in refused.error
    restarted = plan_vm(vm, None, 'restart', settings=ON)
    assert [step for step, _arg in restarted.steps] == [STEP_SHUTDOWN, STEP_SET_DEFINITION, STEP_START]
    deferred = plan_vm(vm, None, 'defer', settings=ON)
    assert deferred.steps == [(STEP_SET_DEFINITION, ON)] and deferred.restart_required
    apply_plan(backend, deferred, 5, False)
    vm = vms_by_name(backend)['running-no-reporting']
    assert vm.settings['free_page_reporting'] is True and vm.settings_live['free_page_reporting'] is False
    later = plan_vm(vm, None, 'fail', settings=ON)
    assert later.steps == [] and later.error is None and later.restart_required


def test_refusal_on_a_host_without_support(backend):
    # The test driver is not QEMU: not refused (unknown), but reported unsupported by host_info.
    assert backend.setting_refusal('free_page_reporting', True) is None
    assert backend.versions()['free_page_reporting']['supported'] is False
    backend._free_page_reporting = _libvirt_qemu.free_page_reporting_support('6.0.0', 'QEMU', '7.2.0')
    assert 'libvirt 6.9.0' in backend.setting_refusal('free_page_reporting', True)
    assert backend.setting_refusal('free_page_reporting', False) is None
