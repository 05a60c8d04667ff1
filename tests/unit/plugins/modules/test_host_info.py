# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pagefusion.core.host_info through main(): libvirt on the real test:/// driver (node.xml) and VirtualBox on
the VBoxManage stand-in in tests/vbox (NOT VirtualBox: it keeps its VMs in the JSON file named by PF_VBOX_STATE)."""

from __future__ import annotations

import json
import os

import libvirt  # noqa: F401  pylint: disable=unused-import  # the libvirt backend under test needs it
import pytest

from ansible_collections.pagefusion.core.plugins.modules import host_info

NODE = os.path.join(os.path.dirname(__file__), 'node.xml')
URI = 'test://' + NODE
NO_URI = 'test:///nonexistent/node.xml'

V71 = '7.1.12r169651'
V72 = '7.2.2r170484'

VBOX_VMS = [
    {'name': 'win10', 'uuid': '7b2d1e3f-2222-4b3c-8d4e-000000000001', 'ostype': 'Windows10_64', 'state': 'poweroff',
     'pagefusion': False},
    {'name': 'win xp "old"', 'uuid': '7b2d1e3f-2222-4b3c-8d4e-000000000002', 'ostype': 'WindowsXP',
     'state': 'running', 'pagefusion': True},
    {'name': u'win98 \u00fc', 'uuid': '7b2d1e3f-2222-4b3c-8d4e-000000000003', 'ostype': 'Windows98',
     'state': 'poweroff', 'pagefusion': False},
    {'name': 'ubuntu', 'uuid': '7b2d1e3f-2222-4b3c-8d4e-000000000004', 'ostype': 'Ubuntu_64', 'state': 'saved',
     'pagefusion': False},
]


@pytest.fixture
def vbox(tmp_path, vbox_standin):
    """The stand-in on PATH as ``VBoxManage`` with VBOX_VMS on VirtualBox 7.1; returns a state writer."""
    wrapper, state = vbox_standin(tmp_path)

    def write(version=V71, vms=None):
        with open(state, 'w', encoding='utf-8') as handle:
            json.dump({'version': version, 'vms': VBOX_VMS if vms is None else vms}, handle)
        return str(wrapper)

    write()
    return write


@pytest.fixture
def linux_x86_64(monkeypatch):
    """Report a 64-bit x86 Linux host whatever runs the tests; the test may change it."""
    facts = {'machine': 'x86_64', 'bits': 64, 'system': 'Linux', 'os': 'Debian GNU/Linux 12 (bookworm)'}
    monkeypatch.setattr(host_info, 'host_facts', lambda: dict(facts))
    return facts


def vms_by_name(result, backend):
    return dict((vm['name'], vm) for vm in result['vms'] if vm['backend'] == backend)


# ---------------------------------------------------------------------------------------------
# VirtualBox


def test_virtualbox_host_and_vms(vbox, linux_x86_64, run_module):
    result, failed = run_module(host_info.main, dict(backend='virtualbox'))
    assert not failed and result['changed'] is False
    assert list(result['backends']) == ['virtualbox']
    report = result['backends']['virtualbox']
    assert report == {
        'present': True, 'available': True, 'path': vbox(), 'version': '7.1.12', 'version_full': V71,
        'supported': True, 'eligible': True, 'reasons': [], 'error': None,
        'cross_tenant_sharing': False, 'sharing_tenants': {},
    }
    assert result['eligible'] is True
    vms = vms_by_name(result, 'virtualbox')
    assert sorted(vms) == sorted(vm['name'] for vm in VBOX_VMS)

    win10 = vms['win10']
    assert (win10['eligible'], win10['reasons'], win10['os_id']) == (True, [], 'Windows10_64')
    assert (win10['power_state'], win10['page_fusion'], win10['page_fusion_live']) == ('poweroff', 'disabled', None)
    assert win10['uuid'] == VBOX_VMS[0]['uuid']

    xp = vms['win xp "old"']
    assert xp['eligible'] is True and xp['os_id'] == 'WindowsXP'
    assert (xp['power_state'], xp['page_fusion'], xp['page_fusion_live']) == ('running', 'enabled', 'enabled')

    win98 = vms[u'win98 \u00fc']
    assert win98['eligible'] is False
    assert win98['reasons'] == ["guest OS type 'Windows98' (Windows 98) is older than Windows 2000, which VirtualBox "
                                "Page Fusion needs"]

    ubuntu = vms['ubuntu']
    assert ubuntu['eligible'] is False and ubuntu['power_state'] == 'saved'
    assert len(ubuntu['reasons']) == 1 and "guest OS type 'Ubuntu_64' is not Windows" in ubuntu['reasons'][0]


def test_virtualbox_72_is_unsupported_not_failed(vbox, linux_x86_64, run_module):
    vbox(version=V72)
    result, failed = run_module(host_info.main, dict(backend='virtualbox'))
    assert not failed
    report = result['backends']['virtualbox']
    assert report['available'] is True and report['version'] == '7.2.2'
    assert report['supported'] is False and report['eligible'] is False
    assert len(report['reasons']) == 1
    assert 'VirtualBox 7.2.2 cannot switch Page Fusion' in report['reasons'][0]
    assert 'https://github.com/VirtualBox/virtualbox/issues/268' in report['reasons'][0]
    assert result['eligible'] is False
    # The VMs are still listed; none is eligible on this release, each says why.
    vms = vms_by_name(result, 'virtualbox')
    assert len(vms) == 4
    assert vms['win10']['eligible'] is False and vms['win10']['reasons'] == report['reasons']
    assert vms['ubuntu']['reasons'][0] == report['reasons'][0] and 'is not Windows' in vms['ubuntu']['reasons'][1]


@pytest.mark.parametrize('machine, system, words', [
    ('x86_64', 'Darwin', 'macOS hosts cannot use VirtualBox Page Fusion'),
    ('i686', 'Linux', 'host CPU is i686 (32-bit): VirtualBox Page Fusion is only supported on 64-bit hosts'),
])
def test_macos_and_32bit_hosts_are_not_eligible(vbox, linux_x86_64, run_module, machine, system, words):
    linux_x86_64.update(machine=machine, system=system, bits=64 if machine == 'x86_64' else 32)
    result, failed = run_module(host_info.main, dict(backend='virtualbox'))
    assert not failed
    report = result['backends']['virtualbox']
    assert report['available'] and report['supported']
    assert report['eligible'] is False
    assert any(words in reason for reason in report['reasons']), report['reasons']
    assert not any(vm['eligible'] for vm in result['vms'])
    assert any(words in reason for reason in vms_by_name(result, 'virtualbox')['win10']['reasons'])


def test_virtualbox_explicit_without_vboxmanage_fails_clearly(vbox, run_module, monkeypatch, tmp_path):
    monkeypatch.setenv('PATH', str(tmp_path / 'empty'))
    result, failed = run_module(host_info.main, dict(backend='virtualbox'))
    assert failed
    assert result['msg'] == 'VBoxManage not found on PATH; install VirtualBox or use backend=libvirt'


def test_virtualbox_that_does_not_answer_fails_clearly_when_explicit(vbox, run_module, monkeypatch):
    monkeypatch.delenv('PF_VBOX_STATE')   # the stand-in then exits 2, like a broken installation
    result, failed = run_module(host_info.main, dict(backend='virtualbox'))
    assert failed
    assert 'VBoxManage --version failed (exit code 2)' in result['msg']
    result, failed = run_module(host_info.main, dict(backend='auto', uri=NO_URI))
    assert not failed
    report = result['backends']['virtualbox']
    assert report['present'] is True and report['available'] is False and report['eligible'] is False
    assert 'exit code 2' in report['error']


# ---------------------------------------------------------------------------------------------
# backend=auto and libvirt


def test_auto_reports_an_absent_vboxmanage_without_failing(run_module, monkeypatch, tmp_path, linux_x86_64):
    assert libvirt
    monkeypatch.setenv('PATH', str(tmp_path / 'empty'))
    result, failed = run_module(host_info.main, dict(backend='auto', uri=URI))
    assert not failed
    report = result['backends']['virtualbox']
    assert report['present'] is False and report['available'] is False and report['path'] is None
    assert report['eligible'] is False and report['supported'] is False
    assert report['error'] == 'VBoxManage not found on PATH; install VirtualBox or use backend=libvirt'
    assert any('VirtualBox is not usable: VBoxManage not found' in reason for reason in report['reasons'])
    assert result['backends']['libvirt']['reachable'] is True
    assert all(vm['backend'] == 'libvirt' for vm in result['vms'])


def test_auto_reports_both_backends(vbox, linux_x86_64, run_module):
    result, failed = run_module(host_info.main, dict(uri=URI))
    assert not failed
    assert sorted(result['backends']) == ['libvirt', 'virtualbox']
    assert sorted(vms_by_name(result, 'libvirt')) == sorted(['off-shared', 'off-private', 'running-private',
                                                             u'odd "q" \u00fc $x;& *[1]'])
    assert len(vms_by_name(result, 'virtualbox')) == 4
    assert result['backends']['virtualbox']['eligible'] is True


def test_auto_with_libvirt_unreachable_still_reports_virtualbox(vbox, linux_x86_64, run_module):
    result, failed = run_module(host_info.main, dict(uri=NO_URI))
    assert not failed
    assert result['backends']['libvirt']['reachable'] is False
    assert result['backends']['virtualbox']['eligible'] is True
    assert result['eligible'] is True
    assert all(vm['backend'] == 'virtualbox' for vm in result['vms'])


def test_libvirt_only(vbox, run_module):
    result, failed = run_module(host_info.main, dict(backend='libvirt', uri=URI))
    assert not failed
    assert list(result['backends']) == ['libvirt']
    report = result['backends']['libvirt']
    assert report['reachable'] is True and report['hypervisor'] == 'TEST' and report['uri'] == URI
    vms = vms_by_name(result, 'libvirt')
    assert sorted(vms) == sorted(['off-shared', 'off-private', 'running-private', u'odd "q" \u00fc $x;& *[1]'])
    assert vms['off-shared']['page_fusion'] == 'enabled' and vms['off-private']['page_fusion'] == 'disabled'
    assert vms['running-private']['power_state'] == 'running'
    assert vms[u'odd "q" \u00fc $x;& *[1]']['os_id'] == 'http://microsoft.com/win/10'
    assert result['host']['bits'] in (32, 64)
    # KSM is this machine's real one: the VMs are eligible exactly when the kernel has KSM.
    assert report['eligible'] is result['ksm']['present'] is result['eligible']
    assert all(vm['eligible'] is result['ksm']['present'] for vm in vms.values())


def test_libvirt_explicit_unreachable_fails(run_module):
    result, failed = run_module(host_info.main, dict(backend='libvirt', uri=NO_URI))
    assert failed
    assert "Cannot connect to libvirt at URI '%s'" % NO_URI in result['msg']


def test_tenant_labels_are_reported(run_module):
    node = os.path.join(os.path.dirname(__file__), 'tenants-node.xml')
    result, failed = run_module(host_info.main, dict(backend='libvirt', uri='test://' + node))
    assert not failed
    report = result['backends']['libvirt']
    # Only bolt-1 has page fusion enabled: one tenant open to sharing, no cross-tenant sharing yet.
    assert report['sharing_tenants'] == {'bolt': ['bolt-1']}
    assert report['cross_tenant_sharing'] is False and result['cross_tenant_sharing'] is False
    assert dict((vm['name'], vm['tenant']) for vm in result['vms']) == {
        'acme-1': 'acme', 'acme-2': 'acme', 'bolt-1': 'bolt', 'bolt-2': 'bolt'}
