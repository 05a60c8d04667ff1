# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pagefusion.core.vm guest_agent_channel and host_info os_source, against libvirt's test driver."""

from __future__ import annotations

import os

import libvirt  # noqa: F401  pylint: disable=unused-import  # the libvirt backend under test needs it

from ansible_collections.pagefusion.core.plugins.modules import host_info, vm  # noqa: E402

HERE = os.path.dirname(__file__)
AGENT_URI = 'test://' + os.path.abspath(os.path.join(HERE, '..', 'module_utils', 'agent-node.xml'))
NODE_URI = 'test://' + os.path.abspath(os.path.join(HERE, 'node.xml'))
ADD = "define 'no-agent' with the guest agent channel <channel type='unix'><target type='virtio' " \
      "name='org.qemu.guest_agent.0'/></channel>"


def by_name(result):
    return dict((entry['name'], entry) for entry in result['vms'])


def test_add_channel_check_then_real_predict_the_same(run_module):
    args = dict(uri=AGENT_URI, name='no-agent', guest_agent_channel=True)
    check, failed = run_module(vm.main, args, check_mode=True, diff=True)
    assert not failed
    real, failed = run_module(vm.main, args, diff=True)
    assert not failed
    assert check['changed'] is real['changed'] is True
    assert check['actions'] == real['actions'] == [ADD]
    assert check['diff'] == real['diff']
    assert real['diff']['before']['no-agent']['guest_agent_channel'] is False
    assert real['diff']['after']['no-agent']['guest_agent_channel'] is True
    entry = by_name(real)['no-agent']
    assert (entry['guest_agent_channel_before'], entry['guest_agent_channel_after']) == (False, True)
    assert entry['guest_agent_channel'] is True
    # Page fusion was not asked for, so it is left as it was.
    assert entry['page_fusion_before'] == entry['page_fusion_after'] == 'enabled'


def test_channel_already_there_is_unchanged(run_module):
    result, failed = run_module(vm.main, dict(uri=AGENT_URI, name='with-agent', guest_agent_channel=True))
    assert not failed and result['changed'] is False and result['actions'] == []


def test_remove_channel_and_fusion_in_one_call(run_module):
    result, failed = run_module(vm.main, dict(uri=AGENT_URI, name='with-agent', guest_agent_channel=False,
                                              state='enabled'))
    assert not failed and result['changed'] is True
    # One redefine carries both changes.
    assert result['actions'] == ["define 'with-agent' without <memoryBacking><nosharepages/> (page fusion enabled), "
                                 "without the guest agent channel <channel type='unix'><target type='virtio' "
                                 "name='org.qemu.guest_agent.0'/></channel>"]
    entry = by_name(result)['with-agent']
    assert entry['page_fusion_after'] == 'enabled' and entry['guest_agent_channel'] is False


def test_running_vm_refused_then_deferred(run_module):
    args = dict(uri=AGENT_URI, name='running-no-agent', guest_agent_channel=True)
    result, failed = run_module(vm.main, args)
    assert failed and 'the guest agent channel can only be switched while it is shut off' in result['msg']
    result, failed = run_module(vm.main, dict(args, when_running='defer'))
    assert not failed and result['changed'] and result['restart_required']


def test_state_or_channel_required(run_module):
    result, failed = run_module(vm.main, dict(uri=AGENT_URI, name='no-agent'))
    assert failed and 'state' in result['msg'] and 'guest_agent_channel' in result['msg']


def test_null_channel_leaves_it_alone(run_module):
    result, failed = run_module(vm.main, dict(uri=AGENT_URI, name='with-agent', state='disabled'))
    assert not failed and result['changed'] is False
    assert 'guest_agent_channel_before' not in by_name(result)['with-agent']
    assert by_name(result)['with-agent']['guest_agent_channel'] is True


def test_host_info_os_source(run_module):
    result, failed = run_module(host_info.main, dict(backend='libvirt', uri=NODE_URI))
    assert not failed
    vms = by_name(result)
    odd = vms[u'odd "q" \u00fc $x;& *[1]']
    assert (odd['os_id'], odd['os_source'], odd['os_name']) == ('http://microsoft.com/win/10', 'libosinfo', None)
    # No agent and no libosinfo metadata: unknown, never guessed.
    assert (vms['off-shared']['os_id'], vms['off-shared']['os_source']) == (None, None)
    assert vms['off-shared']['guest_agent_channel'] is False
