# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guest agent channel (a definition setting besides page fusion) and where the guest OS comes from."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import libvirt
import pytest

from ansible_collections.pagefusion.core.plugins.module_utils import _libvirt, _libvirt_xml  # noqa: E402
from ansible_collections.pagefusion.core.plugins.module_utils._fusion import (  # noqa: E402
    STEP_SET_DEFINITION,
    STEP_SET_FUSION,
    STEP_SHUTDOWN,
    STEP_START,
    VmRecord,
    apply_plan,
    plan_vm,
    result_for,
)

NODE = os.path.join(os.path.dirname(__file__), 'agent-node.xml')
AGENT = {'guest_agent_channel': True}
NO_AGENT = {'guest_agent_channel': False}


@pytest.fixture
def backend(test_driver_backend):
    return test_driver_backend(NODE)


def vms_by_name(backend):
    return dict((vm.name, vm) for vm in backend.list_vms())


# -- the XML -----------------------------------------------------------------------------------

def test_channel_read_from_the_definition(backend):
    vms = vms_by_name(backend)
    assert vms['no-agent'].settings['guest_agent_channel'] is False
    assert vms['with-agent'].settings['guest_agent_channel'] is True
    assert vms['no-devices'].settings['guest_agent_channel'] is False
    assert vms['no-agent'].summary()['guest_agent_channel'] is False


def test_add_channel_then_idempotent_then_remove(backend):
    vm = vms_by_name(backend)['no-agent']
    plan = plan_vm(vm, None, 'fail', settings=AGENT)
    assert plan.steps == [(STEP_SET_DEFINITION, {'guest_agent_channel': True})]
    apply_plan(backend, plan, 5, False)
    entry = result_for(plan, [], True)
    assert entry['guest_agent_channel_before'] is False and entry['guest_agent_channel_after'] is True
    assert entry['page_fusion_before'] == entry['page_fusion_after'] == 'enabled'

    again = vms_by_name(backend)['no-agent']
    assert again.settings['guest_agent_channel'] is True
    assert plan_vm(again, None, 'fail', settings=AGENT).steps == []
    root = again.details['root']
    # The other devices survive, and libvirt kept exactly one agent channel of type unix.
    assert root.find('./devices/serial') is not None
    names = [t.get('name') for t in root.findall('./devices/channel/target')]
    assert sorted(names) == ['org.example.other.0', 'org.qemu.guest_agent.0']
    channel = [c for c in root.findall('./devices/channel') if c.find('target').get('name') == _libvirt_xml.GUEST_AGENT_PORT]
    assert channel[0].get('type') == 'unix'

    apply_plan(backend, plan_vm(again, None, 'fail', settings=NO_AGENT), 5, False)
    back = vms_by_name(backend)['no-agent']
    assert back.settings['guest_agent_channel'] is False
    assert [t.get('name') for t in back.details['root'].findall('./devices/channel/target')] == ['org.example.other.0']


def test_channel_added_to_a_domain_without_devices(backend):
    vm = vms_by_name(backend)['no-devices']
    apply_plan(backend, plan_vm(vm, None, 'fail', settings=AGENT), 5, False)
    assert vms_by_name(backend)['no-devices'].settings['guest_agent_channel'] is True


def test_fusion_and_channel_together(backend):
    vm = vms_by_name(backend)['with-agent']
    plan = plan_vm(vm, True, 'fail', settings=NO_AGENT)
    assert plan.steps == [(STEP_SET_FUSION, True), (STEP_SET_DEFINITION, {'guest_agent_channel': False})]
    apply_plan(backend, plan, 5, False)
    vm = vms_by_name(backend)['with-agent']
    assert vm.fusion is True and vm.settings['guest_agent_channel'] is False


def test_none_leaves_the_channel_alone(backend):
    vm = vms_by_name(backend)['with-agent']
    plan = plan_vm(vm, False, 'fail', settings={'guest_agent_channel': None})
    assert plan.steps == []
    assert 'guest_agent_channel_before' not in result_for(plan, [], False)


def test_running_vm_rules(backend):
    vm = vms_by_name(backend)['running-no-agent']
    assert vm.settings_live['guest_agent_channel'] is False
    refused = plan_vm(vm, None, 'fail', settings=AGENT)
    assert refused.error and 'the guest agent channel can only be switched while it is shut off' in refused.error
    assert "running-no-agent" in refused.error

    deferred = plan_vm(vm, None, 'defer', settings=AGENT)
    assert deferred.steps == [(STEP_SET_DEFINITION, {'guest_agent_channel': True})] and deferred.restart_required
    restarted = plan_vm(vm, None, 'restart', settings=AGENT)
    assert [step for step, _arg in restarted.steps] == [STEP_SHUTDOWN, STEP_SET_DEFINITION, STEP_START]

    apply_plan(backend, deferred, 5, False)
    vm = vms_by_name(backend)['running-no-agent']
    assert vm.settings['guest_agent_channel'] is True and vm.settings_live['guest_agent_channel'] is False
    # The definition is right now; the running instance still lacks the channel.
    later = plan_vm(vm, None, 'fail', settings=AGENT)
    assert later.steps == [] and later.error is None and later.restart_required


def test_both_changes_named_in_the_error(backend):
    vm = vms_by_name(backend)['running-no-agent']
    plan = plan_vm(vm, False, 'fail', settings=AGENT)
    assert 'page fusion and the guest agent channel can only be switched' in plan.error


def test_describe_step(backend):
    vm = vms_by_name(backend)['no-agent']
    text = backend.describe_step(vm, STEP_SET_DEFINITION, {'guest_agent_channel': True})
    assert text == ("define 'no-agent' with the guest agent channel <channel type='unix'><target type='virtio' "
                    "name='org.qemu.guest_agent.0'/></channel>")
    assert 'without the guest agent channel' in backend.describe_step(vm, STEP_SET_DEFINITION, NO_AGENT)


def test_set_agent_channel_pure():
    root = ET.fromstring('<domain><devices><channel type="unix"><target type="virtio" name="org.qemu.guest_agent.0"/>'
                         '</channel><channel type="unix"><target type="virtio" name="org.qemu.guest_agent.0"/>'
                         '</channel></devices></domain>')
    assert _libvirt_xml.set_agent_channel(root, True) is False
    assert _libvirt_xml.set_agent_channel(root, False) is True
    assert root.findall('./devices/channel') == []
    assert _libvirt_xml.set_agent_channel(root, False) is False


# -- the guest OS: agent, then libosinfo, then unknown ---------------------------------------------

LIVE_CONNECTED = ("<domain><devices><channel type='unix'><source mode='bind' path='/run/x.sock'/>"
                  "<target type='virtio' name='org.qemu.guest_agent.0' state='connected'/></channel>"
                  "</devices></domain>")
LIVE_DISCONNECTED = LIVE_CONNECTED.replace("'connected'", "'disconnected'")

OS_INFO = {'os.id': 'debian', 'os.name': 'Debian GNU/Linux', 'os.pretty-name': 'Debian GNU/Linux 12 (bookworm)',
           'os.version': '12 (bookworm)', 'os.version-id': '12', 'os.kernel-release': '6.1.0-35-cloud-amd64',
           'os.machine': 'x86_64'}


class FakeDom(object):
    def __init__(self, info=None, error=False):
        self.info = info
        self.error = error
        self.calls = 0

    def guestInfo(self, types, flags):  # noqa: N802 - libvirt's name
        self.calls += 1
        assert types == _libvirt.GUEST_INFO_OS and flags == 0
        if self.error:
            raise libvirt.libvirtError('Guest agent is not responding: QEMU guest agent is not connected')
        return dict(self.info or {})


def record(dom, live_xml):
    live_root = None if live_xml is None else ET.fromstring(live_xml)
    return VmRecord('vm', 'libvirt', 'running', False, True, details={'dom': dom, 'live_root': live_root})


def test_agent_answers(backend):
    dom = FakeDom(OS_INFO)
    info = backend.agent_os_info(record(dom, LIVE_CONNECTED))
    assert info['id'] == 'debian' and info['version_id'] == '12'
    assert info['pretty_name'] == 'Debian GNU/Linux 12 (bookworm)'
    assert _libvirt_xml.guest_os(info, 'http://debian.org/debian/12') == ('debian', 'agent', 'Debian GNU/Linux 12 (bookworm)')


@pytest.mark.parametrize('live_xml', [None, LIVE_DISCONNECTED, '<domain><devices/></domain>'])
def test_agent_not_asked_when_it_cannot_answer(backend, live_xml):
    dom = FakeDom(OS_INFO)
    assert backend.agent_os_info(record(dom, live_xml)) is None
    assert dom.calls == 0


def test_agent_error_falls_back(backend, monkeypatch):
    monkeypatch.setattr(_libvirt, 'libvirt_qemu', None)
    dom = FakeDom(error=True)
    assert backend.agent_os_info(record(dom, LIVE_CONNECTED)) is None
    assert dom.calls == 1


def test_qmp_fallback(backend, monkeypatch):
    class FakeQemu(object):
        @staticmethod
        def qemuAgentCommand(dom, command, timeout, flags):  # noqa: N802 - libvirt's name
            assert 'guest-get-osinfo' in command and 0 < timeout <= 10
            return '{"return": {"id": "mswindows", "pretty-name": "Windows Server 2022 Standard", "version-id": "2022"}}'

    monkeypatch.setattr(_libvirt, 'libvirt_qemu', FakeQemu)
    info = backend.agent_os_info(record(FakeDom(error=True), LIVE_CONNECTED))
    assert info['id'] == 'mswindows' and info['name'] is None
    assert _libvirt_xml.guest_os(info, None) == ('mswindows', 'agent', 'Windows Server 2022 Standard')


def test_empty_agent_answer_is_no_answer(backend):
    assert backend.agent_os_info(record(FakeDom({'os.id': ''}), LIVE_CONNECTED)) is None


def test_os_source_order():
    assert _libvirt_xml.guest_os(None, 'http://microsoft.com/win/10') == ('http://microsoft.com/win/10', 'libosinfo', None)
    assert _libvirt_xml.guest_os({'id': None, 'name': 'x'}, None) == (None, None, None)
    assert _libvirt_xml.guest_os(None, None) == (None, None, None)
