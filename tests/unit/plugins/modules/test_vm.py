# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pagefusion.core.vm against libvirt's real test driver (test:///<node file>)."""

from __future__ import annotations

import os

import libvirt  # noqa: F401  pylint: disable=unused-import  # the libvirt backend under test needs it

from ansible_collections.pagefusion.core.plugins.modules import vm  # noqa: E402

NODE = os.path.join(os.path.dirname(__file__), 'node.xml')
URI = 'test://' + NODE
ODD = u'odd "q" \u00fc $x;& *[1]'


def by_name(result):
    return dict((entry['name'], entry) for entry in result['vms'])


def test_enable_shut_off_vm_check_then_real_predict_the_same(run_module):
    args = dict(uri=URI, name=['off-private'], state='enabled')
    check, failed = run_module(vm.main, args, check_mode=True, diff=True)
    assert not failed
    real, failed = run_module(vm.main, args, diff=True)
    assert not failed
    assert check['changed'] is real['changed'] is True
    assert check['actions'] == real['actions'] == [
        "define 'off-private' without <memoryBacking><nosharepages/> (page fusion enabled)"]
    assert check['diff'] == real['diff']
    assert real['diff']['before']['off-private']['page_fusion'] == 'disabled'
    assert real['diff']['after']['off-private']['page_fusion'] == 'enabled'
    entry = by_name(real)['off-private']
    assert (entry['page_fusion_before'], entry['page_fusion_after'], entry['applied']) == ('disabled', 'enabled', True)
    assert by_name(check)['off-private']['applied'] is False


def test_already_in_state_is_unchanged(run_module):
    result, failed = run_module(vm.main, dict(uri=URI, name=['off-shared'], state='enabled'))
    assert not failed
    assert result['changed'] is False
    assert result['actions'] == []


def test_running_vm_is_refused_and_nothing_changes(run_module):
    # off-private would change, but running-private refuses: the whole call must change nothing.
    result, failed = run_module(vm.main, dict(uri=URI, name=['off-private', 'running-private'], state='enabled'))
    assert failed
    assert "VM 'running-private' is running" in result['msg']
    assert 'Nothing was changed' in result['msg']
    assert all(entry['changed'] is False for entry in result['vms'])


def test_defer_changes_definition_and_reports_restart(run_module):
    args = dict(uri=URI, name=['running-private'], state='enabled', when_running='defer')
    check, _failed = run_module(vm.main, args, check_mode=True)
    real, failed = run_module(vm.main, args)
    assert not failed
    assert check['actions'] == real['actions']
    assert real['restart_required'] is True and check['restart_required'] is True
    entry = by_name(real)['running-private']
    assert entry['page_fusion'] == 'enabled'
    assert entry['page_fusion_live'] == 'disabled'


def test_restart_cycles_the_vm(run_module):
    args = dict(uri=URI, name=['running-private'], state='enabled', when_running='restart', shutdown_timeout=5)
    check, _failed = run_module(vm.main, args, check_mode=True)
    real, failed = run_module(vm.main, args)
    assert not failed
    assert check['actions'] == real['actions']
    assert [a.split(' ', 1)[0] for a in real['actions']] == ['shut', 'define', 'start']
    entry = by_name(real)['running-private']
    assert entry['power_state'] == 'running'
    assert entry['page_fusion_live'] == 'enabled'
    assert real['restart_required'] is False


def test_odd_name_and_pattern(run_module):
    result, failed = run_module(vm.main, dict(uri=URI, name=[ODD], state='enabled'))
    assert not failed and result['changed']
    assert by_name(result)[ODD]['page_fusion'] == 'enabled'
    # The name holds glob characters: as a name it matches only itself, as a pattern it is a pattern.
    result, failed = run_module(vm.main, dict(uri=URI, pattern='off-*', state='disabled'))
    assert not failed
    assert sorted(by_name(result)) == ['off-private', 'off-shared']
    assert by_name(result)['off-shared']['changed'] is True


def test_pattern_without_match_warns(run_module):
    result, failed = run_module(vm.main, dict(uri=URI, pattern='nomatch-*', state='enabled'))
    assert not failed
    assert result['changed'] is False and result['vms'] == []
    assert any('matches no VM' in w for w in result.get('warnings', []))


def test_unknown_vm_fails_clearly(run_module):
    result, failed = run_module(vm.main, dict(uri=URI, name=['off-private', 'ghost'], state='enabled'))
    assert failed
    assert "VM 'ghost' not found" in result['msg'] and 'Nothing was changed' in result['msg']
    assert result['missing'] == ['ghost']


def test_unreachable_uri_fails_clearly(run_module):
    result, failed = run_module(vm.main, dict(uri='test:///nonexistent/node.xml', name=['x'], state='enabled',
                                              backend='libvirt'))
    assert failed
    assert "Cannot connect to libvirt at URI 'test:///nonexistent/node.xml'" in result['msg']


def test_missing_libvirt_python(run_module, monkeypatch):
    from ansible_collections.pagefusion.core.plugins.module_utils import _libvirt
    monkeypatch.setattr(_libvirt, 'HAS_LIBVIRT', False)
    result, failed = run_module(vm.main, dict(uri=URI, name=['x'], state='enabled', backend='libvirt'))
    assert failed
    assert 'libvirt-python' in result['msg']


def test_bad_arguments(run_module):
    result, failed = run_module(vm.main, dict(uri=URI, name=['a'], pattern='b', state='enabled'))
    assert failed and 'mutually exclusive' in result['msg']
    result, failed = run_module(vm.main, dict(uri=URI, name=['a'], state='enabled', shutdown_timeout=0))
    assert failed and 'shutdown_timeout' in result['msg']


def test_a_single_name_is_never_split_at_commas(run_module):
    result, failed = run_module(vm.main, dict(uri=URI, name='off-private,off-shared', state='enabled'))
    assert failed
    assert result['missing'] == ['off-private,off-shared']
    result, failed = run_module(vm.main, dict(uri=URI, name='off-private', state='enabled'))
    assert not failed and [e['name'] for e in result['vms']] == ['off-private']


def test_bad_name_values(run_module):
    result, failed = run_module(vm.main, dict(uri=URI, name=[], state='enabled'))
    assert failed and 'empty list' in result['msg']
    result, failed = run_module(vm.main, dict(uri=URI, name=[{'a': 1}], state='enabled'))
    assert failed and 'name must be a VM name' in result['msg']


TENANT_NODE = os.path.join(os.path.dirname(__file__), 'tenants-node.xml')
TENANT_URI = 'test://' + TENANT_NODE


def test_cross_tenant_enable_is_refused_and_nothing_changes(run_module):
    # bolt-1 already shares; acme-1 and acme-2 would join it.
    result, failed = run_module(vm.main, dict(uri=TENANT_URI, name=['acme-1', 'acme-2'], state='enabled'))
    assert failed
    assert "VM 'acme-1' (tenant 'acme') would let it share memory pages with VMs of other tenants" in result['msg']
    assert "tenant 'bolt': 'bolt-1'" in result['msg']
    assert 'Nothing was changed' in result['msg']
    assert all(entry['changed'] is False for entry in result['vms'])


def test_cross_tenant_enable_with_allow(run_module):
    result, failed = run_module(vm.main, dict(uri=TENANT_URI, name=['acme-1'], state='enabled', allow_cross_tenant=True))
    assert not failed and result['changed']


def test_same_tenant_and_disabling_are_not_refused(run_module):
    result, failed = run_module(vm.main, dict(uri=TENANT_URI, name=['bolt-2'], state='enabled'))
    assert not failed and result['changed']
    result, failed = run_module(vm.main, dict(uri=TENANT_URI, name=['bolt-1'], state='disabled'))
    assert not failed and result['changed']
