# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Unit tests of the VirtualBox backend: pure readers on real-format fixtures, the eligibility
rules, and the backend against the VBoxManage stand-in in tests/vbox (NOT VirtualBox)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from ansible_collections.pagefusion.core.plugins.module_utils import _vbox, _vbox_parse, _vbox_runner
from ansible_collections.pagefusion.core.plugins.module_utils._eligibility import (
    vbox_guest_eligibility,
    vbox_host_eligibility,
    vbox_version_support,
    vbox_version_tuple,
)
from ansible_collections.pagefusion.core.plugins.module_utils._fusion import (
    FusionError,
    UnsupportedError,
    apply_plan,
    describe_plan,
    plan_vm,
)

STANDIN_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', 'vbox'))

UUID_A = '5d3ec6c7-0a1b-4c2d-8e3f-000000000001'
UUID_B = '5d3ec6c7-0a1b-4c2d-8e3f-000000000002'
UUID_C = '5d3ec6c7-0a1b-4c2d-8e3f-000000000003'

V61 = '6.1.50_Debianr161033'
V70 = '7.0.20r163906'
V71 = '7.1.12r169651'
V72 = '7.2.2r170484'


# ---------------------------------------------------------------------------------------------
# Fixtures in the real formats (FACTS.md section 1)

SHOWVMINFO_71 = r'''name="win \"10\" = pro \\ x"
Encryption="disabled"
groups="/"
ostype="Windows 10 (64-bit)"
UUID="5d3ec6c7-0a1b-4c2d-8e3f-000000000001"
CfgFile="/nonexistent/VirtualBox VMs/win/win.vbox"
SnapFldr="/nonexistent/VirtualBox VMs/win/Snapshots"
hardwareuuid="5d3ec6c7-0a1b-4c2d-8e3f-000000000001"
memory=2048
pagefusion="on"
vram=128
cpuexecutioncap=100
platformArchitecture="x86"
VMState="poweroff"
VMStateChangeTime="2026-01-02T03:04:05.678000000Z"
"IDE Controller-0-0"="none"
"SATA-ImageUUID-0-0"="0f0e0d0c-0b0a-4909-8807-060504030201"
"key=with=equals"="v=1"
Forwarding(0)="ssh,tcp,127.0.0.1,2222,,22"
teleporteraddress=""
description="first line
second \"quoted\" line"
GuestAdditionsRunLevel=2
'''


@pytest.mark.parametrize('newline', ['\n', '\r\n'])
def test_parse_machinereadable_real_format(newline):
    info = _vbox_parse.parse_machinereadable(SHOWVMINFO_71.replace('\n', newline))
    assert info['name'] == 'win "10" = pro \\ x'
    assert info['ostype'] == 'Windows 10 (64-bit)'
    assert info['memory'] == '2048'
    assert info['pagefusion'] == 'on'
    assert info['VMState'] == 'poweroff'
    assert info['IDE Controller-0-0'] == 'none'
    assert info['SATA-ImageUUID-0-0'] == '0f0e0d0c-0b0a-4909-8807-060504030201'
    assert info['key=with=equals'] == 'v=1'
    assert info['Forwarding(0)'] == 'ssh,tcp,127.0.0.1,2222,,22'
    assert info['teleporteraddress'] == ''
    assert info['description'] == 'first line%ssecond "quoted" line' % newline
    assert info['GuestAdditionsRunLevel'] == '2'


def test_parse_machinereadable_unicode_and_odd_lines():
    text = ('name="ünïcødé 名前 {x}"\nnot a key value line\n\ncpuid=00000001,00000000,00000001\n'
            'VMState="running"\n"escaped \\"key\\""="v"\nunterminated="abc')
    info = _vbox_parse.parse_machinereadable(text)
    assert info['name'] == 'ünïcødé 名前 {x}'
    assert info['cpuid'] == '00000001,00000000,00000001'
    assert info['VMState'] == 'running'
    assert info['escaped "key"'] == 'v'
    assert info['unterminated'] == 'abc'
    assert 'not a key value line' not in info


def test_parse_machinereadable_inaccessible():
    info = _vbox_parse.parse_machinereadable('name="<inaccessible>"\nUUID="%s"\n' % UUID_A)
    assert _vbox_parse.vm_state(info) == _vbox_parse.INACCESSIBLE


def test_parse_list_vms_tricky_names():
    text = ('"plain" {%s}\n'
            '"with "quotes" and spaces" {%s}\n'
            '"braces {a} } {b}" {%s}\n'
            '"<inaccessible>" {5D3EC6C7-0A1B-4C2D-8E3F-00000000000A}\n'
            '"ünï = 名前" {5d3ec6c7-0a1b-4c2d-8e3f-00000000000b}\n'
            'garbage line\n' % (UUID_A, UUID_B, UUID_C))
    assert _vbox_parse.parse_list_vms(text) == [
        ('plain', UUID_A),
        ('with "quotes" and spaces', UUID_B),
        ('braces {a} } {b}', UUID_C),
        ('<inaccessible>', '5d3ec6c7-0a1b-4c2d-8e3f-00000000000a'),
        ('ünï = 名前', '5d3ec6c7-0a1b-4c2d-8e3f-00000000000b'),
    ]
    assert _vbox_parse.parse_list_vms('') == []


METRICS_QUERY = (
    'Object          Metric                                   Values\n'
    '--------------- ---------------------------------------- --------------------------------------------\n'
    'host            RAM/VMM/Shared                           123456 kB\n'
    'host            RAM/VMM/Shared:avg                       123456 kB\n'
    'win 10          Guest/RAM/Usage/Shared                   2048 kB, 4096 kB\n'
    'a very long vm name with spaces Guest/RAM/Usage/Shared   77 kB\n'
    'vm Guest/RAM/Usage/Shared x Guest/RAM/Usage/Shared       5 kB\n'
    'net vm          Guest/Network/Rate/Rx                    12 B/s, 13 B/s\n'
    'cpu vm          CPU/Load/User                            12.34%\n'
    'idle vm         Guest/RAM/Usage/Shared                   \n'
)


def test_parse_metrics_query_known_metrics():
    rows = _vbox_parse.parse_metrics_query(METRICS_QUERY, ['RAM/VMM/Shared', 'Guest/RAM/Usage/Shared'])
    by = {(row['object'], row['metric']): row for row in rows}
    assert by[('host', 'RAM/VMM/Shared')]['values'] == [123456]
    assert by[('host', 'RAM/VMM/Shared')]['unit'] == 'kB'
    assert by[('host', 'RAM/VMM/Shared:avg')]['values'] == [123456]
    assert by[('win 10', 'Guest/RAM/Usage/Shared')]['values'] == [2048, 4096]
    assert by[('a very long vm name with spaces', 'Guest/RAM/Usage/Shared')]['values'] == [77]
    assert by[('vm Guest/RAM/Usage/Shared x', 'Guest/RAM/Usage/Shared')]['values'] == [5]
    assert by[('idle vm', 'Guest/RAM/Usage/Shared')]['values'] == []
    assert ('net vm', 'Guest/Network/Rate/Rx') not in by
    assert _vbox_parse.metric_value(rows, 'win 10', 'Guest/RAM/Usage/Shared') == 4096
    assert _vbox_parse.metric_value(rows, 'idle vm', 'Guest/RAM/Usage/Shared') is None
    assert _vbox_parse.metric_value(rows, 'nope', 'RAM/VMM/Shared') is None


def test_parse_metrics_query_generic():
    rows = _vbox_parse.parse_metrics_query(METRICS_QUERY)
    by = {(row['object'], row['metric']): row for row in rows}
    assert by[('net vm', 'Guest/Network/Rate/Rx')]['values'] == [12, 13]
    assert by[('net vm', 'Guest/Network/Rate/Rx')]['unit'] == 'B/s'
    assert by[('cpu vm', 'CPU/Load/User')]['values'] == [12.34]
    assert by[('cpu vm', 'CPU/Load/User')]['unit'] == '%'
    assert by[('win 10', 'Guest/RAM/Usage/Shared')]['values'] == [2048, 4096]


def test_parse_metrics_query_header_only():
    assert _vbox_parse.parse_metrics_query(METRICS_QUERY.split('host', 1)[0], ['RAM/VMM/Shared']) == []


@pytest.mark.parametrize('text, value', [
    ('Value: blue\n', 'blue'),
    ('Value: with spaces: and colons\n', 'with spaces: and colons'),
    ('Value: two\nlines\n', 'two\nlines'),
    ('WARNING: something\nValue: x\n', 'x'),
    ('No value set!\n', None),
    ('', None),
])
def test_parse_extradata(text, value):
    assert _vbox_parse.parse_extradata(text) == value


def test_every_vm_state_name():
    assert len(_vbox_parse.VM_STATES) == 23
    for state in _vbox_parse.VM_STATES:
        assert _vbox_parse.is_off_state(state) == (state in ('poweroff', 'aborted', 'teleported')), state
    assert not _vbox_parse.is_off_state('saved')
    assert not _vbox_parse.is_off_state('aborted-saved')
    assert not _vbox_parse.is_off_state('unknown')
    assert not _vbox_parse.has_process('poweroff')
    assert not _vbox_parse.has_process('saved')
    assert _vbox_parse.has_process('running')
    assert _vbox_parse.has_process('paused')


def test_saved_state_message():
    text = _vbox_parse.saved_state_message('win 10', 'saved')
    assert "'win 10'" in text
    assert 'discard' in text.lower()
    assert 'start the VM and shut it down' in text
    assert 'Nothing was changed' in text


@pytest.mark.parametrize('value, expected', [('on', True), ('off', False), (None, None)])
def test_page_fusion_enabled(value, expected):
    info = {} if value is None else {'pagefusion': value}
    assert _vbox_parse.page_fusion_enabled(info) is expected


VBOX_FILE = '''<?xml version="1.0"?>
<!-- ** DO NOT EDIT THIS FILE. -->
<VirtualBox xmlns="http://www.virtualbox.org/" version="1.19-linux">
  <Machine uuid="{%s}" name="win &quot;10&quot;" OSType="Windows10_64" snapshotFolder="Snapshots">
    <Hardware><Memory RAMSize="2048" PageFusion="true"/></Hardware>
  </Machine>
</VirtualBox>
''' % UUID_A


def test_read_vbox_os_type(tmp_path):
    with_ns = tmp_path / 'a.vbox'
    with_ns.write_text(VBOX_FILE, encoding='utf-8')
    assert _vbox_parse.read_vbox_os_type(str(with_ns)) == 'Windows10_64'
    no_ns = tmp_path / 'b.vbox'
    no_ns.write_text(VBOX_FILE.replace(' xmlns="http://www.virtualbox.org/"', ''), encoding='utf-8')
    assert _vbox_parse.read_vbox_os_type(str(no_ns)) == 'Windows10_64'
    bad = tmp_path / 'c.vbox'
    bad.write_text('<VirtualBox', encoding='utf-8')
    assert _vbox_parse.read_vbox_os_type(str(bad)) is None
    assert _vbox_parse.read_vbox_os_type(str(tmp_path / 'missing.vbox')) is None
    assert _vbox_parse.read_vbox_os_type(None) is None


def test_guest_os_type_sources(tmp_path):
    cfg = tmp_path / 'win.vbox'
    cfg.write_text(VBOX_FILE.replace('Windows10_64', 'Windows2019_64'), encoding='utf-8')
    # The settings file wins over the description.
    assert _vbox_parse.guest_os_type({'CfgFile': str(cfg), 'ostype': 'Windows 10 (64-bit)'}) == ('Windows2019_64', 'settings')
    missing = str(tmp_path / 'gone.vbox')
    assert _vbox_parse.guest_os_type({'CfgFile': missing, 'ostype': 'Windows 10 (64-bit)'}) == ('Windows10_64', 'description')
    assert _vbox_parse.guest_os_type({'ostype': 'Windows 2000'}) == ('Windows2000', 'description')
    assert _vbox_parse.guest_os_type({'ostype': 'Other Windows (64-bit)'}) == ('WindowsNT_64', 'description')
    # 4.x printed ids; unknown descriptions pass through.
    assert _vbox_parse.guest_os_type({'ostype': 'RedHat'}) == ('RedHat', 'raw')
    assert _vbox_parse.guest_os_type({'ostype': 'Ubuntu (64-bit)'}) == ('Ubuntu (64-bit)', 'raw')
    assert _vbox_parse.guest_os_type({}) == (None, None)


@pytest.mark.parametrize('text, expected', [
    ('7.1.12r169651', (7, 1, 12)),
    ('6.1.50_Debianr161033', (6, 1, 50)),
    ('7.2.2r170484', (7, 2, 2)),
    ('7.0.0_BETA1r155000\n', (7, 0, 0)),
    ('WARNING: The vboxdrv kernel module is not loaded.\n5.2.44r139111\n', (5, 2, 44)),
    ('4.3', (4, 3, 0)),
    ('garbage', None),
    ('', None),
])
def test_parse_version(text, expected):
    assert _vbox_parse.parse_version(text) == expected


def test_error_text():
    stderr = ("VBoxManage: error: The machine is not mutable (state is Saved)\n"
              "VBoxManage: error: Details: code VBOX_E_INVALID_VM_STATE (0x80bb0002), component SessionMachine, "
              "interface IMachine, callee nsISupports\n"
              'VBoxManage: error: Context: "COMSETTER(PageFusionEnabled)(ValueUnion.f)" at line 1 of file x.cpp\n')
    text = _vbox_parse.error_text(stderr)
    assert text.startswith('The machine is not mutable (state is Saved) Details: code VBOX_E_INVALID_VM_STATE')
    assert 'Context' not in text
    assert _vbox_parse.error_text('plain failure\n') == 'plain failure'


# ---------------------------------------------------------------------------------------------
# Eligibility rules

ELIGIBLE_IDS = ['Windows2000', 'WindowsXP', 'Windows2003', 'WindowsVista', 'Windows2008', 'Windows7', 'Windows8',
                'Windows81', 'Windows10', 'WindowsNT', 'WindowsXP_64', 'Windows2003_64', 'WindowsVista_64',
                'Windows2008_64', 'Windows7_64', 'Windows8_64', 'Windows81_64', 'Windows2012_64', 'Windows10_64',
                'Windows2016_64', 'Windows2019_64', 'Windows11_64', 'Windows2022_64', 'WindowsNT_64']
PRE_2000_IDS = ['Windows31', 'Windows95', 'Windows98', 'WindowsMe', 'WindowsNT3x', 'WindowsNT4']


@pytest.mark.parametrize('os_id', ELIGIBLE_IDS)
def test_vbox_guest_eligible(os_id):
    assert vbox_guest_eligibility(os_id) == (True, [])


@pytest.mark.parametrize('os_id', PRE_2000_IDS)
def test_vbox_guest_too_old(os_id):
    eligible, reasons = vbox_guest_eligibility(os_id)
    assert not eligible
    assert 'older than Windows 2000' in reasons[0]
    assert os_id in reasons[0]


@pytest.mark.parametrize('os_id', ['Ubuntu_64', 'RedHat', 'Other', 'MacOS_64', 'OS2Warp45', 'DOS'])
def test_vbox_guest_not_windows(os_id):
    eligible, reasons = vbox_guest_eligibility(os_id)
    assert not eligible
    assert 'not Windows' in reasons[0]


def test_vbox_guest_unknown_and_arm():
    assert vbox_guest_eligibility(None)[0] is False
    assert 'unknown' in vbox_guest_eligibility('')[1][0]
    eligible, reasons = vbox_guest_eligibility('Windows11_arm64')
    assert not eligible and 'ARM64' in reasons[0]


@pytest.mark.parametrize('version, supported', [
    ('7.1.12r169651', True),
    ((7, 1, 12), True),
    ('6.1.50_Debianr161033', True),
    ('7.0.20r163906', True),
    ('3.2.0r1', True),
    ('3.1.8r1', False),
    ('7.2.0r170228', False),
    ('7.2.2r170484', False),
    ((7, 2), False),
    ('8.0.0r1', False),
    ('nonsense', False),
    (None, False),
])
def test_vbox_version_support(version, supported):
    ok, reason = vbox_version_support(version)
    assert ok is supported
    if supported:
        assert reason is None
    else:
        assert reason
    if not supported and vbox_version_tuple(version) and vbox_version_tuple(version) >= (7, 2, 0):
        assert 'https://github.com/VirtualBox/virtualbox/issues/268' in reason
        assert 'Page fusion is only supported on 64-bit hosts' in reason


@pytest.mark.parametrize('machine, system, eligible, words', [
    ('x86_64', 'Linux', True, None),
    ('AMD64', 'Windows', True, None),
    ('amd64', 'FreeBSD', True, None),
    ('x86_64', 'SunOS', True, None),
    ('i686', 'Linux', False, '32-bit'),
    ('i386', 'Windows', False, '32-bit'),
    ('armv7l', 'Linux', False, '32-bit'),
    ('x86_64', 'Darwin', False, 'macOS'),
    ('arm64', 'Darwin', False, 'macOS'),
    ('aarch64', 'Linux', False, 'x86-64'),
    ('x86_64', 'OpenBSD', False, 'OpenBSD'),
])
def test_vbox_host_eligibility(machine, system, eligible, words):
    ok, reasons = vbox_host_eligibility(machine, system)
    assert ok is eligible
    if eligible:
        assert reasons == []
    else:
        assert any(words in reason for reason in reasons), reasons


# ---------------------------------------------------------------------------------------------
# The backend against the stand-in

class FakeModule(object):
    """The two AnsibleModule methods the runner uses, implemented with subprocess and argv lists."""

    def __init__(self):
        self.environ_updates = []

    def get_bin_path(self, arg, required=False, opt_dirs=None):
        path = shutil.which(arg)
        if required and not path:
            raise AssertionError('required binary %s missing' % arg)
        return path

    def run_command(self, args, check_rc=False, environ_update=None, **kwargs):
        assert isinstance(args, list), 'argument lists only, never shell strings'
        self.environ_updates.append(environ_update)
        env = dict(os.environ)
        env.update(environ_update or {})
        proc = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding='utf-8',
                              check=False)
        return proc.returncode, proc.stdout, proc.stderr


class StandIn(object):
    def __init__(self, path):
        self.path = path

    def write(self, version=V71, vms=(), **extra):
        data = {'version': version, 'vms': [dict(vm) for vm in vms]}
        data.update(extra)
        with open(self.path, 'w', encoding='utf-8') as handle:
            json.dump(data, handle)

    def read(self):
        with open(self.path, encoding='utf-8') as handle:
            return json.load(handle)

    def vm(self, uuid):
        return next(vm for vm in self.read()['vms'] if vm['uuid'] == uuid)

    def run(self, *args, **kwargs):
        command = [os.path.join(STANDIN_DIR, 'VBoxManage')]
        if not kwargs.get('shebang'):
            command.insert(0, sys.executable)
        proc = subprocess.run(command + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, encoding='utf-8', check=False)
        return proc.returncode, proc.stdout, proc.stderr

    def backend(self, module=None, **kwargs):
        options = dict(poll_interval=0.02, lock_retries=3, lock_retry_delay=0.01, host_machine='x86_64',
                       host_system='Linux')
        options.update(kwargs)
        return _vbox.VirtualBoxBackend(module or FakeModule(), **options)


@pytest.fixture
def standin(tmp_path, monkeypatch):
    """The stand-in on PATH, run by this interpreter directly (a pyenv-style ``python`` shim costs
    ~0.2 s per call). ``StandIn.run`` and ``test_standin_*`` run the file itself, shebang and all."""
    path = str(tmp_path / 'vbox-state.json')
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    wrapper = bin_dir / 'VBoxManage'
    command = shlex.join([sys.executable, os.path.join(STANDIN_DIR, 'VBoxManage')])
    wrapper.write_text('#!/bin/sh\nexec %s "$@"\n' % command)
    wrapper.chmod(0o755)
    monkeypatch.setenv('PF_VBOX_STATE', path)
    monkeypatch.setenv('PATH', str(bin_dir) + os.pathsep + os.environ.get('PATH', ''))
    return StandIn(path)


def win(uuid=UUID_A, name='win 10', **extra):
    vm = {'name': name, 'uuid': uuid, 'ostype': 'Windows10_64', 'state': 'poweroff', 'pagefusion': False}
    vm.update(extra)
    return vm


def by_name(records):
    return dict((vm.name, vm) for vm in records)


def test_standin_is_executable_and_says_what_it_is(standin):
    assert os.access(os.path.join(STANDIN_DIR, 'VBoxManage'), os.X_OK)
    assert standin.run('--version', shebang=True) == (0, V71 + '\n', '')
    with open(os.path.join(STANDIN_DIR, 'VBoxManage'), encoding='utf-8') as handle:
        head = handle.read(2000)
    assert 'STAND-IN' in head and 'NOT VIRTUALBOX' in head


def test_missing_vboxmanage(monkeypatch, tmp_path):
    monkeypatch.setenv('PATH', str(tmp_path))
    with pytest.raises(FusionError) as exc:
        _vbox.VirtualBoxBackend(FakeModule())
    assert str(exc.value) == 'VBoxManage not found on PATH; install VirtualBox or use backend=libvirt'
    runner = _vbox_runner.VBoxManageRunner(FakeModule())
    assert runner.available is False and _vbox_runner.NOT_FOUND_MSG == str(exc.value)


def test_runner_uses_c_locale_argv_lists_and_records_actions(standin):
    standin.write()
    module = FakeModule()
    runner = _vbox_runner.VBoxManageRunner(module)
    assert runner.version() == (7, 1, 12)
    assert runner.version_output() == V71
    runner.run(['list', 'vms'])
    assert runner.actions == [[runner.binary, '--version'], [runner.binary, 'list', 'vms']]
    assert all(update == {'LC_ALL': 'C', 'LANG': 'C', 'LANGUAGE': 'C'} for update in module.environ_updates)
    with pytest.raises(_vbox_runner.VBoxManageError) as exc:
        runner.run(['showvminfo', 'no such vm'])
    assert "Could not find a registered machine named 'no such vm'" in str(exc.value)
    assert exc.value.rc == 1
    backend = _vbox.VirtualBoxBackend(FakeModule())
    assert backend.path == runner.binary
    assert backend.versions() == {'vboxmanage': runner.binary, 'version': '7.1.12', 'version_full': V71}


@pytest.mark.parametrize('version', [V61, V70, V71, V72])
def test_list_vms(standin, version):
    standin.write(version=version, vms=[
        win(extradata={'pagefusion/tenant': 'blue'}),
        win(UUID_B, name='srv "2019" = {x} \\ ünï', ostype='Windows2019_64', state='running', pagefusion=True),
        win(UUID_C, name='linux box', ostype='Ubuntu_64', state='saved'),
    ])
    backend = standin.backend()
    vms = by_name(backend.list_vms())
    assert set(vms) == {'win 10', 'srv "2019" = {x} \\ ünï', 'linux box'}
    first = vms['win 10']
    assert (first.uuid, first.power_state, first.is_off, first.fusion, first.fusion_live) == (
        UUID_A, 'poweroff', True, False, None)
    assert first.os_id == 'Windows10_64' and first.details['os_type_source'] == 'settings'
    assert first.tenant == 'blue'
    assert first.backend == 'virtualbox'
    second = vms['srv "2019" = {x} \\ ünï']
    assert (second.power_state, second.is_off, second.fusion, second.fusion_live) == ('running', False, True, True)
    assert second.os_id == 'Windows2019_64'
    assert second.tenant is None
    third = vms['linux box']
    assert (third.power_state, third.is_off, third.fusion_live) == ('saved', False, None)
    assert 'saved execution state' in third.details['blocker']
    assert backend.eligibility(first) == (True, [])
    assert backend.eligibility(third)[0] is False
    # VMs are addressed by UUID in every command.
    assert [UUID_A, '--machinereadable'] in [action[2:] for action in backend.actions]


def test_list_vms_falls_back_to_description_when_settings_unreadable(standin, monkeypatch):
    standin.write(vms=[win(ostype='Windows7_64')])
    monkeypatch.setattr(_vbox_parse, 'read_vbox_os_type', lambda path: None)
    vm = standin.backend().list_vms()[0]
    assert (vm.os_id, vm.details['os_type_source']) == ('Windows7_64', 'description')


def test_list_vms_inaccessible(standin):
    standin.write(vms=[win(accessible=False), win(UUID_B, name='ok')])
    vms = by_name(standin.backend().list_vms())
    assert vms['<inaccessible>'].power_state == 'inaccessible'
    assert vms['<inaccessible>'].is_off is False
    assert 'inaccessible' in vms['<inaccessible>'].details['blocker']
    assert vms['ok'].is_off


@pytest.mark.parametrize('version, option', [(V61, '--pagefusion'), (V70, '--page-fusion'), (V71, '--page-fusion')])
def test_set_fusion_on_and_off(standin, version, option):
    standin.write(version=version, vms=[win()])
    backend = standin.backend()
    vm = backend.list_vms()[0]
    described = backend.describe_step(vm, 'set_fusion', True)
    backend.set_fusion(vm, True)
    assert vm.fusion is True
    assert standin.vm(UUID_A)['pagefusion'] is True
    modify = [a for a in backend.actions if a[1] == 'modifyvm']
    assert modify == [[backend.runner.binary, 'modifyvm', UUID_A, option, 'on']]
    assert described == shlex.join(modify[0])
    assert backend.runner.changes == modify
    backend.set_fusion(vm, False)
    assert vm.fusion is False
    assert standin.vm(UUID_A)['pagefusion'] is False


def test_standin_61_rejects_new_option_spelling(standin):
    standin.write(version=V61, vms=[win()])
    rc, _out, err = standin.run('modifyvm', UUID_A, '--page-fusion', 'on')
    assert rc == 1
    assert 'VBoxManage: error: Unknown option: --page-fusion' in err
    assert '[--pagefusion on|off]' in err
    assert standin.vm(UUID_A)['pagefusion'] is False
    rc, _out, _err = standin.run('modifyvm', UUID_A, '--pagefusion', 'on')
    assert rc == 0


def test_standin_error_texts(standin):
    standin.write(vms=[win(state='running')])
    rc, _out, err = standin.run('showvminfo', 'ghost', '--machinereadable')
    assert rc == 1
    assert err.splitlines()[0] == "VBoxManage: error: Could not find a registered machine named 'ghost'"
    assert 'VBOX_E_OBJECT_NOT_FOUND (0x80bb0001)' in err
    rc, _out, err = standin.run('modifyvm', 'win 10', '--page-fusion', 'on')
    assert rc == 1
    assert "The machine 'win 10' is already locked for a session (or being unlocked)" in err
    assert 'VBOX_E_INVALID_OBJECT_STATE (0x80bb0007)' in err
    rc, out, _err = standin.run('controlvm', 'win 10', 'poweroff')
    assert rc == 0
    rc, out, _err = standin.run('startvm', 'win 10', '--type', 'headless')
    assert rc == 0
    assert out.splitlines() == ['Waiting for VM "win 10" to power on...', 'VM "win 10" has been successfully started.']
    standin.run('controlvm', 'win 10', 'poweroff')
    rc, _out, err = standin.run('controlvm', 'win 10', 'acpipowerbutton')
    assert (rc, err.strip()) == (1, "VBoxManage: error: Machine 'win 10' is not currently running.")


def test_set_fusion_72_is_unsupported(standin):
    standin.write(version=V72, vms=[win()])
    backend = standin.backend()
    reason = backend.unsupported_reason()
    assert 'VirtualBox 7.2.2' in reason and 'issues/268' in reason
    vm = backend.list_vms()[0]
    for wanted in (True, False):
        with pytest.raises(UnsupportedError) as exc:
            backend.set_fusion(vm, wanted)
        assert 'issues/268' in str(exc.value)
    assert standin.vm(UUID_A)['pagefusion'] is False
    rc, _out, err = standin.run('modifyvm', UUID_A, '--page-fusion', 'on')
    assert rc == 1
    assert err.splitlines()[:2] == [
        'VBoxManage: error: Page fusion is only supported on 64-bit hosts',
        'VBoxManage: error: Details: code NS_ERROR_NOT_IMPLEMENTED (0x80004001), component SessionMachine, '
        'interface IMachine, callee nsISupports',
    ]


def test_32bit_and_macos_hosts(standin):
    standin.write(vms=[win()], host_bits=32)
    backend = standin.backend(host_machine='i686')
    assert '32-bit' in backend.unsupported_reason()
    vm = backend.list_vms()[0]
    with pytest.raises(UnsupportedError) as exc:
        backend.set_fusion(vm, True)
    assert '32-bit' in str(exc.value)
    assert 'macOS' in standin.backend(host_system='Darwin').unsupported_reason()
    assert standin.backend().unsupported_reason() is None


def test_saved_vm_is_refused_with_guidance(standin):
    standin.write(vms=[win(state='saved')])
    backend = standin.backend()
    vm = backend.list_vms()[0]
    with pytest.raises(FusionError) as exc:
        backend.set_fusion(vm, True)
    assert 'saved execution state' in str(exc.value)
    assert 'Discard the saved state' in str(exc.value)
    assert 'start the VM and shut it down' in str(exc.value)
    with pytest.raises(FusionError) as exc:
        backend.shutdown(vm, timeout=1)
    assert 'saved execution state' in str(exc.value)
    assert standin.vm(UUID_A)['state'] == 'saved'
    assert backend.describe_step(vm, 'shutdown', None, shutdown_timeout=5).startswith('# cannot shut down')


def test_lock_race_is_retried(standin):
    standin.write(vms=[win(lock_races=2)])
    backend = standin.backend(lock_retries=3)
    vm = backend.list_vms()[0]
    backend.set_fusion(vm, True)
    assert standin.vm(UUID_A)['pagefusion'] is True
    assert len([a for a in backend.actions if a[1] == 'modifyvm']) == 3


def test_lock_race_gives_up(standin):
    standin.write(vms=[win(lock_races=10)])
    backend = standin.backend(lock_retries=3)
    vm = backend.list_vms()[0]
    with pytest.raises(FusionError) as exc:
        backend.set_fusion(vm, True)
    assert 'stayed locked by another VirtualBox session through 3 attempts' in str(exc.value)
    assert 'lock request pending' in str(exc.value)
    assert standin.vm(UUID_A)['pagefusion'] is False


def test_vm_started_behind_our_back(standin):
    standin.write(vms=[win()])
    backend = standin.backend()
    vm = backend.list_vms()[0]
    standin.run('startvm', UUID_A, '--type', 'headless')
    with pytest.raises(FusionError) as exc:
        backend.set_fusion(vm, True)
    assert "VM 'win 10' is running now" in str(exc.value)


def test_graceful_shutdown_and_start(standin):
    standin.write(vms=[win(state='running', acpi_delay=0.1)])
    backend = standin.backend()
    vm = backend.list_vms()[0]
    backend.shutdown(vm, timeout=10)
    assert (vm.power_state, vm.is_off, vm.fusion_live) == ('poweroff', True, None)
    assert standin.vm(UUID_A)['state'] == 'poweroff'
    assert [backend.runner.binary, 'controlvm', UUID_A, 'acpipowerbutton'] in backend.actions
    assert [backend.runner.binary, 'controlvm', UUID_A, 'poweroff'] not in backend.actions
    backend.start(vm, timeout=10)
    assert (vm.power_state, vm.is_off) == ('running', False)
    assert [backend.runner.binary, 'startvm', UUID_A, '--type', 'headless'] in backend.actions


def test_shutdown_timeout_leaves_vm_running(standin):
    standin.write(vms=[win(state='running', ignores_acpi=True)])
    backend = standin.backend()
    vm = backend.list_vms()[0]
    with pytest.raises(FusionError) as exc:
        backend.shutdown(vm, timeout=0.2, force_off=False)
    assert 'still running and page fusion was not changed' in str(exc.value)
    assert 'force_off=true' in str(exc.value)
    assert standin.vm(UUID_A)['state'] == 'running'
    assert [backend.runner.binary, 'controlvm', UUID_A, 'poweroff'] not in backend.actions


def test_shutdown_timeout_with_force_off(standin):
    standin.write(vms=[win(state='running', ignores_acpi=True)])
    backend = standin.backend()
    vm = backend.list_vms()[0]
    backend.shutdown(vm, timeout=0.2, force_off=True)
    assert standin.vm(UUID_A)['state'] == 'poweroff'
    assert vm.is_off
    assert [backend.runner.binary, 'controlvm', UUID_A, 'poweroff'] in backend.actions


def test_paused_vm_needs_force_off(standin):
    standin.write(vms=[win(state='paused')])
    backend = standin.backend()
    vm = backend.list_vms()[0]
    with pytest.raises(FusionError) as exc:
        backend.shutdown(vm, timeout=1)
    assert 'is paused' in str(exc.value)
    assert standin.vm(UUID_A)['state'] == 'paused'
    assert 'force_off=true would run' in backend.describe_step(vm, 'shutdown', None, shutdown_timeout=1)
    backend.shutdown(vm, timeout=1, force_off=True)
    assert standin.vm(UUID_A)['state'] == 'poweroff'


def test_start_failure_is_clear(standin):
    standin.write(vms=[win(start_fails=True)])
    backend = standin.backend()
    vm = backend.list_vms()[0]
    with pytest.raises(FusionError) as exc:
        backend.start(vm, timeout=1)
    assert "VM 'win 10' did not start again" in str(exc.value)
    assert 'terminated unexpectedly' in str(exc.value)
    assert 'startvm %s --type headless' % UUID_A in str(exc.value)


def test_describe_steps_are_exact_commands(standin):
    standin.write(vms=[win(state='running')])
    backend = standin.backend()
    vm = backend.list_vms()[0]
    binary = backend.runner.binary
    shutdown = backend.describe_step(vm, 'shutdown', None, shutdown_timeout=30, force_off=False)
    assert shutdown.startswith(shlex.join([binary, 'controlvm', UUID_A, 'acpipowerbutton']) + '  # ')
    assert 'at most 30s' in shutdown and 'fail' in shutdown
    forced = backend.describe_step(vm, 'shutdown', None, shutdown_timeout=30, force_off=True)
    assert forced.endswith(shlex.join([binary, 'controlvm', UUID_A, 'poweroff']))
    modify = shlex.join([binary, 'modifyvm', UUID_A, '--page-fusion', 'off'])
    assert backend.describe_step(vm, 'set_fusion', False) == modify
    assert backend.describe_step(vm, 'start', None, shutdown_timeout=30).startswith(
        shlex.join([binary, 'startvm', UUID_A, '--type', 'headless']))


def test_restart_plan_end_to_end(standin):
    standin.write(vms=[win(state='running', acpi_delay=0.05), win(UUID_B, name='off vm', pagefusion=True)])
    backend = standin.backend()
    vms = by_name(backend.list_vms())
    plan = plan_vm(vms['win 10'], True, 'restart', can_defer=backend.can_defer)
    assert [step for step, _arg in plan.steps] == ['shutdown', 'set_fusion', 'start']
    described = describe_plan(backend, plan, 10, False)
    assert len(described) == 3
    apply_plan(backend, plan, 10, False)
    state = standin.vm(UUID_A)
    assert (state['state'], state['pagefusion']) == ('running', True)
    assert (vms['win 10'].fusion, vms['win 10'].fusion_live) == (True, True)
    ran = [shlex.join(a) for a in backend.runner.changes]
    assert ran[0] == described[0].split('  #')[0]
    assert ran[1] == described[1]
    assert ran[2] == described[2].split('  #')[0]
    # Idempotent: the other VM already has it, nothing to do.
    assert not plan_vm(vms['off vm'], True, 'fail').steps
    # defer is libvirt only.
    assert plan_vm(backend.list_vms()[0], False, 'defer', can_defer=backend.can_defer).error


def test_metrics(standin):
    standin.write(vms=[win(state='running', metrics={'Guest/RAM/Usage/Shared': 2048})],
                  host_metrics={'RAM/VMM/Shared': 4096})
    backend = standin.backend()
    assert backend.query_metrics('host', ['RAM/VMM/Shared']) == []
    # Like VirtualBox, a setup that names sub-metrics collects nothing; base metric names are needed.
    backend.setup_metrics('*', ['RAM/VMM/Shared', 'Guest/RAM/Usage/Shared'])
    assert backend.query_metrics('host', ['RAM/VMM/Shared']) == []
    backend.setup_metrics('*', ['RAM/VMM', 'Guest/RAM/Usage'])
    rows = backend.query_metrics('*', ['RAM/VMM/Shared', 'Guest/RAM/Usage/Shared'])
    assert _vbox_parse.metric_value(rows, 'host', 'RAM/VMM/Shared') == 4096
    assert _vbox_parse.metric_value(rows, 'win 10', 'Guest/RAM/Usage/Shared') == 2048
    assert _vbox_parse.metric_value(rows, 'host', 'RAM/VMM/Shared:avg') == 4096


def test_versions_and_extradata(standin):
    standin.write(version=V61, vms=[win()], global_extradata={'pagefusion/tenant': 'g'})
    backend = standin.backend()
    assert backend.versions() == {'vboxmanage': backend.runner.binary, 'version': '6.1.50', 'version_full': V61}
    assert backend.fusion_option() == '--pagefusion'
    assert backend.get_extradata(UUID_A, _vbox.TENANT_KEY) is None
    standin.run('setextradata', UUID_A, _vbox.TENANT_KEY, 'red team')
    assert backend.get_extradata(UUID_A, _vbox.TENANT_KEY) == 'red team'
    assert backend.get_extradata('global', _vbox.TENANT_KEY) == 'g'
    assert backend.get_extradata('ghost', _vbox.TENANT_KEY) is None
    assert backend.list_vms()[0].tenant == 'red team'
    assert standin.backend(read_tenant=False).list_vms()[0].tenant is None
