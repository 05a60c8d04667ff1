# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pagefusion.core.vm with backend=virtualbox, run through main() against the VBoxManage stand-in in
tests/vbox (NOT VirtualBox: it keeps its VMs in a JSON file named by PF_VBOX_STATE)."""

from __future__ import annotations

import json
import os
import shlex

import libvirt  # noqa: F401  pylint: disable=unused-import  # backend=auto must find libvirt here
import pytest

from ansible_collections.pagefusion.core.plugins.module_utils import _backends, _vbox
from ansible_collections.pagefusion.core.plugins.modules import vm

NODE = os.path.join(os.path.dirname(__file__), 'node.xml')

V61 = '6.1.50_Debianr161033'
V71 = '7.1.12r169651'
V72 = '7.2.2r170484'

WIN10 = '6a1c0f2e-1111-4a2b-9c3d-000000000001'
WINRUN = '6a1c0f2e-1111-4a2b-9c3d-000000000002'
WINSAVED = '6a1c0f2e-1111-4a2b-9c3d-000000000003'
STUBBORN = '6a1c0f2e-1111-4a2b-9c3d-000000000004'
UBUNTU = '6a1c0f2e-1111-4a2b-9c3d-000000000005'
ODD = '6a1c0f2e-1111-4a2b-9c3d-000000000006'
ODD_NAME = u'win "odd" \u00fc $x;& *[1] \'q\''


def vbox_vm(name, uuid, ostype='Windows10_64', state='poweroff', pagefusion=False, **extra):
    entry = {'name': name, 'uuid': uuid, 'ostype': ostype, 'state': state, 'pagefusion': pagefusion}
    entry.update(extra)
    return entry


def default_vms():
    return [
        vbox_vm('win10', WIN10),
        vbox_vm('win run', WINRUN, state='running'),
        vbox_vm('win saved', WINSAVED, state='saved'),
        vbox_vm('win stubborn', STUBBORN, state='running', ignores_acpi=True),
        vbox_vm('ubuntu', UBUNTU, ostype='Ubuntu_64'),
        vbox_vm(ODD_NAME, ODD, ostype='WindowsXP'),
    ]


class StandIn(object):
    """The stand-in's state file."""

    def __init__(self, path, bin_dir):
        self.path = path
        self.bin_dir = bin_dir
        self.binary = os.path.join(bin_dir, 'VBoxManage')

    def write(self, version=V71, vms=None, keep=None, **extra):
        """A new state; ``keep`` picks VMs of :func:`default_vms` by name (fewer VMs, fewer VBoxManage calls)."""
        if vms is None:
            vms = [entry for entry in default_vms() if keep is None or entry['name'] in keep]
        data = {'version': version, 'acpi_delay': 0, 'vms': vms}
        data.update(extra)
        with open(self.path, 'w', encoding='utf-8') as handle:
            json.dump(data, handle)

    def raw(self):
        with open(self.path, 'rb') as handle:
            return handle.read()

    def vm(self, uuid):
        return next(entry for entry in json.loads(self.raw())['vms'] if entry['uuid'] == uuid)

    def cmd(self, *args):
        return shlex.join([self.binary] + list(args))


@pytest.fixture
def standin(tmp_path, vbox_standin):
    """The stand-in on PATH as ``VBoxManage``, run by this interpreter, with a fresh state file."""
    wrapper, state_path = vbox_standin(tmp_path)
    state = StandIn(state_path, os.path.dirname(wrapper))
    state.write()
    return state


@pytest.fixture
def fast(standin, monkeypatch):
    """Short poll and retry delays, and a 64-bit Linux host whatever runs the tests. Returns the stand-in."""
    real = _vbox.VirtualBoxBackend
    options = dict(poll_interval=0.02, lock_retry_delay=0.01, host_machine='x86_64', host_system='Linux',
                   read_tenant=False)
    monkeypatch.setattr(_backends, '_open_virtualbox', lambda module: real(module, **options))
    standin.options = options
    return standin


def by_name(result):
    return dict((entry['name'], entry) for entry in result['vms'])


def args(**kwargs):
    kwargs.setdefault('backend', 'virtualbox')
    return kwargs


# ---------------------------------------------------------------------------------------------
# Shut-off VMs


@pytest.mark.parametrize('state, before, after', [('enabled', False, True), ('disabled', True, False)])
def test_shut_off_vm_check_real_check_real(fast, run_module, state, before, after):
    fast.write(vms=[vbox_vm('win10', WIN10, pagefusion=before), vbox_vm('ubuntu', UBUNTU, ostype='Ubuntu_64')])
    task = args(name='win10', state=state)
    untouched = fast.raw()

    check, failed = run_module(vm.main, task, check_mode=True, diff=True)
    assert not failed
    assert fast.raw() == untouched, 'check mode must not change the VM'

    real, failed = run_module(vm.main, task, diff=True)
    assert not failed
    assert fast.vm(WIN10)['pagefusion'] is after

    wanted = [fast.cmd('modifyvm', WIN10, '--page-fusion', 'on' if after else 'off')]
    assert check['changed'] is real['changed'] is True
    assert check['actions'] == real['actions'] == wanted
    assert check['vms'][0]['actions'] == wanted
    assert check['diff'] == real['diff']
    assert real['diff']['before']['win10']['page_fusion'] == state_word(before)
    assert real['diff']['after']['win10']['page_fusion'] == state
    assert real['backend'] == 'virtualbox'
    entry = real['vms'][0]
    assert (entry['page_fusion'], entry['page_fusion_before'], entry['page_fusion_after']) == (
        state, state_word(before), state)
    assert (entry['power_state'], entry['uuid'], entry['applied']) == ('poweroff', WIN10, True)
    assert entry['page_fusion_live'] is None
    assert check['vms'][0]['applied'] is False
    assert real['unsupported'] is False and real['restart_required'] is False

    settled = fast.raw()
    check2, failed = run_module(vm.main, task, check_mode=True)
    assert not failed and check2['changed'] is False and check2['actions'] == []
    real2, failed = run_module(vm.main, task)
    assert not failed and real2['changed'] is False and real2['actions'] == []
    assert fast.raw() == settled


def state_word(enabled):
    return 'enabled' if enabled else 'disabled'


def test_version_61_uses_the_old_option(fast, run_module):
    fast.write(version=V61, keep=['win10'])
    result, failed = run_module(vm.main, args(name='win10', state='enabled'))
    assert not failed and result['changed']
    assert result['actions'] == [fast.cmd('modifyvm', WIN10, '--pagefusion', 'on')]
    assert fast.vm(WIN10)['pagefusion'] is True


def test_odd_name_is_addressed_by_uuid(fast, run_module):
    fast.write(keep=['win10', ODD_NAME])
    result, failed = run_module(vm.main, args(name=[ODD_NAME], state='enabled'))
    assert not failed and result['changed']
    assert result['vms'][0]['name'] == ODD_NAME
    assert result['actions'] == [fast.cmd('modifyvm', ODD, '--page-fusion', 'on')]
    assert fast.vm(ODD)['pagefusion'] is True
    # The name holds glob characters: as a name it matches only itself.
    result, failed = run_module(vm.main, args(name=[ODD_NAME], state='enabled'))
    assert not failed and not result['changed']


def test_pattern_selects_shut_off_vms(fast, run_module):
    fast.write(keep=['win10', 'ubuntu', ODD_NAME])
    result, failed = run_module(vm.main, args(pattern='win1*', state='enabled'))
    assert not failed
    assert [entry['name'] for entry in result['vms']] == ['win10']


# ---------------------------------------------------------------------------------------------
# Refusals


def test_running_vm_is_refused_and_nothing_changes(fast, run_module):
    fast.write(keep=['win10', 'win run'])
    before = fast.raw()
    result, failed = run_module(vm.main, args(name=['win10', 'win run'], state='enabled'))
    assert failed
    assert "VM 'win run' is running" in result['msg'] and 'Nothing was changed' in result['msg']
    assert all(entry['changed'] is False for entry in result['vms'])
    assert fast.raw() == before


def test_defer_is_refused_for_virtualbox(fast, run_module):
    fast.write(keep=['win10', 'win run'])
    before = fast.raw()
    result, failed = run_module(vm.main, args(name=['win run'], state='enabled', when_running='defer'))
    assert failed
    assert 'when_running=defer is libvirt only' in result['msg']
    assert "VM 'win run' is running and the virtualbox backend cannot change a running VM's definition" in result['msg']
    assert fast.raw() == before
    # defer on a VM that is already right, or shut off, is fine.
    result, failed = run_module(vm.main, args(name=['win run'], state='disabled', when_running='defer'))
    assert not failed and not result['changed']
    result, failed = run_module(vm.main, args(name=['win10'], state='enabled', when_running='defer'))
    assert not failed and result['changed']


@pytest.mark.parametrize('when_running', ['fail', 'restart'])
def test_saved_vm_is_refused_with_the_saved_state_message(fast, run_module, when_running):
    fast.write(keep=['win saved'])
    before = fast.raw()
    result, failed = run_module(vm.main, args(name=['win saved'], state='enabled', when_running=when_running,
                                              force_off=True))
    assert failed
    assert "VM 'win saved' is saved: it holds a saved execution state" in result['msg']
    assert 'discardstate' in result['msg'] and result['msg'].count('Nothing was changed') == 1
    assert fast.raw() == before


def test_unknown_vm(fast, run_module):
    fast.write(keep=['win10', 'ubuntu'])
    result, failed = run_module(vm.main, args(name=['win10', 'ghost'], state='enabled'))
    assert failed
    assert "VM 'ghost' not found on the virtualbox backend. Nothing was changed." in result['msg']
    assert result['missing'] == ['ghost']
    assert fast.vm(WIN10)['pagefusion'] is False


def test_missing_vboxmanage_fails_clearly(standin, run_module, monkeypatch, tmp_path):
    monkeypatch.setenv('PATH', str(tmp_path / 'empty'))
    result, failed = run_module(vm.main, args(name=['win10'], state='enabled'))
    assert failed
    assert result['msg'] == 'VBoxManage not found on PATH; install VirtualBox or use backend=libvirt'


def test_linux_guest_is_switched_with_a_warning(fast, run_module):
    fast.write(keep=['ubuntu'])
    result, failed = run_module(vm.main, args(name=['ubuntu'], state='enabled'), check_mode=True)
    assert not failed and result['changed']
    assert any("VM 'ubuntu' is not eligible for page fusion" in w and 'is not Windows' in w
               for w in result['warnings'])
    result, failed = run_module(vm.main, args(name=['ubuntu'], state='disabled'))
    assert not failed and not result['changed'] and 'warnings' not in result


# ---------------------------------------------------------------------------------------------
# Restarts


def test_restart_path(fast, run_module):
    fast.write(keep=['win run'])
    task = args(name=['win run'], state='enabled', when_running='restart', shutdown_timeout=30)
    before = fast.raw()
    check, failed = run_module(vm.main, task, check_mode=True)
    assert not failed and check['changed']
    assert fast.raw() == before
    real, failed = run_module(vm.main, task)
    assert not failed and real['changed']
    assert check['actions'] == real['actions']
    commands = [action.split('  # ')[0] for action in real['actions']]
    assert commands == [
        fast.cmd('controlvm', WINRUN, 'acpipowerbutton'),
        fast.cmd('modifyvm', WINRUN, '--page-fusion', 'on'),
        fast.cmd('startvm', WINRUN, '--type', 'headless'),
    ]
    assert 'until VMState is poweroff, at most 30s' in real['actions'][0]
    assert 'if it still runs: fail, VM left running and unchanged' in real['actions'][0]
    entry = real['vms'][0]
    assert (entry['power_state'], entry['page_fusion'], entry['page_fusion_live']) == ('running', 'enabled', 'enabled')
    now = fast.vm(WINRUN)
    assert now['state'] == 'running' and now['pagefusion'] is True and 'state_since' in now
    again, failed = run_module(vm.main, task)
    assert not failed and not again['changed'] and again['actions'] == []


def test_vm_that_ignores_acpi_is_left_running_then_force_off(fast, run_module):
    fast.write(keep=['win stubborn'])
    task = args(name=['win stubborn'], state='enabled', when_running='restart', shutdown_timeout=1)
    result, failed = run_module(vm.main, task)
    assert failed
    assert "VM 'win stubborn' did not shut down within shutdown_timeout=1 s" in result['msg']
    assert 'it is still running and page fusion was not changed' in result['msg']
    assert fast.vm(STUBBORN)['state'] == 'running' and fast.vm(STUBBORN)['pagefusion'] is False
    assert result['changed'] is False
    entry = result['vms'][0]
    assert (entry['changed'], entry['applied'], entry['power_state'], entry['page_fusion']) == (
        False, False, 'running', 'disabled')

    task['force_off'] = True
    check, failed = run_module(vm.main, task, check_mode=True)
    real, failed = run_module(vm.main, task)
    assert not failed and real['changed']
    assert check['actions'] == real['actions']
    assert real['actions'][0].endswith('if it still runs: %s' % fast.cmd('controlvm', STUBBORN, 'poweroff'))
    assert fast.vm(STUBBORN)['state'] == 'running' and fast.vm(STUBBORN)['pagefusion'] is True


def test_start_failure_names_the_command(fast, run_module):
    fast.write(vms=[vbox_vm('win run', WINRUN, state='running', start_fails=True)])
    result, failed = run_module(vm.main, args(name=['win run'], state='enabled', when_running='restart',
                                              shutdown_timeout=5))
    assert failed
    assert "VM 'win run' did not start again" in result['msg']
    assert fast.cmd('startvm', WINRUN, '--type', 'headless') in result['msg']
    assert fast.vm(WINRUN)['pagefusion'] is True and fast.vm(WINRUN)['state'] == 'poweroff'
    # The result says so too: switched, but left off.
    assert result['changed'] is True
    entry = result['vms'][0]
    assert (entry['changed'], entry['power_state'], entry['page_fusion']) == (True, 'poweroff', 'enabled')


# ---------------------------------------------------------------------------------------------
# Lock races and unsupported hosts


def test_lock_races_are_retried(fast, run_module):
    fast.write(vms=[vbox_vm('win10', WIN10, lock_races=2)])
    result, failed = run_module(vm.main, args(name=['win10'], state='enabled'))
    assert not failed and result['changed']
    assert result['actions'] == [fast.cmd('modifyvm', WIN10, '--page-fusion', 'on')]
    assert fast.vm(WIN10)['pagefusion'] is True and fast.vm(WIN10)['lock_races'] == 0


def test_a_lock_that_stays_fails_clearly(fast, run_module):
    fast.write(vms=[vbox_vm('win10', WIN10, lock_races=10)])
    result, failed = run_module(vm.main, args(name=['win10'], state='enabled'))
    assert failed
    assert "VM 'win10' stayed locked by another VirtualBox session through 5 attempts" in result['msg']
    assert fast.vm(WIN10)['pagefusion'] is False


@pytest.mark.parametrize('names, when_running', [
    (['win10'], 'fail'),
    (['win10', 'win run', 'win saved'], 'fail'),
    (['win run'], 'restart'),
])
def test_version_72_is_reported_unsupported_not_failed(fast, run_module, names, when_running):
    fast.write(version=V72, keep=['win10', 'win run', 'win saved'])
    before = fast.raw()
    task = args(name=names, state='enabled', when_running=when_running)
    check, failed = run_module(vm.main, task, check_mode=True)
    assert not failed
    real, failed = run_module(vm.main, task)
    assert not failed
    assert fast.raw() == before, 'nothing may change on 7.2, not even a restart'
    for result in (check, real):
        assert result['changed'] is False and result['unsupported'] is True
        assert result['actions'] == []
        for entry in result['vms']:
            assert 'VirtualBox 7.2.2 cannot switch Page Fusion' in entry['unsupported']
            assert entry['page_fusion'] == 'disabled' and entry['applied'] is False
        assert len(result['warnings']) == 1
        assert 'Page fusion cannot be switched on this host' in result['warnings'][0]
        assert 'https://github.com/VirtualBox/virtualbox/issues/268' in result['warnings'][0]


def test_version_72_vm_already_right_is_just_unchanged(fast, run_module):
    fast.write(version=V72, keep=['win10'])
    result, failed = run_module(vm.main, args(name=['win10'], state='disabled'))
    assert not failed and not result['changed'] and not result['unsupported'] and 'warnings' not in result


def test_32bit_host_build_is_unsupported_at_run_time(fast, run_module):
    # The host looks 64-bit, but VBoxManage itself says "only supported on 64-bit hosts" when asked.
    fast.write(host_bits=32, keep=['win10'])
    result, failed = run_module(vm.main, args(name=['win10'], state='enabled'))
    assert not failed
    assert result['unsupported'] is True and result['changed'] is False
    assert 'Page fusion is only supported on 64-bit hosts' in result['vms'][0]['unsupported']
    assert fast.vm(WIN10)['pagefusion'] is False


@pytest.mark.parametrize('machine, system, words', [
    ('x86_64', 'Darwin', 'macOS hosts cannot use VirtualBox Page Fusion'),
    ('i686', 'Linux', '(32-bit): VirtualBox Page Fusion is only supported on 64-bit hosts'),
])
def test_ineligible_hosts_are_unsupported(standin, run_module, monkeypatch, machine, system, words):
    real = _vbox.VirtualBoxBackend
    monkeypatch.setattr(_backends, '_open_virtualbox', lambda module: real(
        module, poll_interval=0.02, host_machine=machine, host_system=system))
    standin.write(keep=['win10'])
    before = standin.raw()
    result, failed = run_module(vm.main, args(name=['win10'], state='enabled'))
    assert not failed and result['unsupported'] and not result['changed']
    assert words in result['vms'][0]['unsupported']
    assert standin.raw() == before


# ---------------------------------------------------------------------------------------------
# backend=auto


def test_auto_falls_back_to_virtualbox_when_libvirt_does_not_answer(standin, run_module):
    # The real factory and backend defaults; libvirt (if installed) cannot open this URI.
    standin.write(keep=['win10'])
    result, failed = run_module(vm.main, dict(backend='auto', uri='test:///nonexistent/node.xml', name=['win10'],
                                              state='enabled'))
    assert not failed
    assert result['backend'] == 'virtualbox' and result['vms'][0]['backend'] == 'virtualbox'
    assert standin.vm(WIN10)['pagefusion'] is True


def test_auto_prefers_libvirt_when_it_answers(standin, run_module):
    result, failed = run_module(vm.main, dict(backend='auto', uri='test://' + NODE, name=['off-shared'],
                                              state='enabled'))
    assert not failed and result['backend'] == 'libvirt'


def test_auto_without_any_backend_says_why(standin, run_module, monkeypatch, tmp_path):
    monkeypatch.setenv('PATH', str(tmp_path / 'empty'))
    result, failed = run_module(vm.main, dict(backend='auto', uri='test:///nonexistent/node.xml', name=['win10'],
                                              state='enabled'))
    assert failed
    assert result['msg'].startswith('backend=auto found no usable hypervisor backend: ')
    assert 'VBoxManage not found on PATH' in result['msg']


def test_free_page_reporting_is_not_supported_by_this_backend(fast, run_module):
    before = fast.raw()
    result, failed = run_module(vm.main, args(name='win10', state='enabled', free_page_reporting=True))
    assert failed
    assert result['msg'].startswith('free_page_reporting: not supported by this backend (virtualbox)')
    assert 'Nothing was changed.' in result['msg']
    assert fast.raw() == before
