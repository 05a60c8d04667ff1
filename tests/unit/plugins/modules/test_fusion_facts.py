# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pagefusion.core.fusion_facts: KSM from a temporary sysfs/proc tree shaped like the 6.18 kernel's, VMs from
libvirt's real test driver (test:///<node file>) and from the VBoxManage stand-in in tests/vbox (NOT VirtualBox)."""

from __future__ import annotations

import json
import os

import libvirt  # noqa: F401  pylint: disable=unused-import  # the libvirt backend under test needs it
import pytest

from ansible_collections.pagefusion.core.plugins.modules import fusion_facts  # noqa: E402
from ansible_collections.pagefusion.core.plugins.module_utils import _daemon_state  # noqa: E402
from ansible_collections.pagefusion.core.plugins.module_utils import _libvirt_qemu, _vbox_metrics, _vbox_parse  # noqa: E402
from ansible_collections.pagefusion.core.plugins.module_utils._fusion import VmRecord  # noqa: E402
from ansible_collections.pagefusion.core.plugins.module_utils._ksm import KsmSysfs  # noqa: E402

HERE = os.path.dirname(__file__)
NODE = os.path.join(HERE, 'node.xml')
URI = 'test://' + NODE
ODD = u'odd "q" \u00fc $x;& *[1]'
PAGE = os.sysconf('SC_PAGE_SIZE')

# /sys/kernel/mm/ksm of the 6.18 development kernel while two guests are merged.
KSM_FILES = {
    'advisor_max_cpu': '70',
    'advisor_max_pages_to_scan': '30000',
    'advisor_min_pages_to_scan': '500',
    'advisor_mode': '[none] scan-time',
    'advisor_target_scan_time': '200',
    'full_scans': '7',
    'general_profit': '52000000',
    'ksm_zero_pages': '25',
    'max_page_sharing': '256',
    'merge_across_nodes': '1',
    'pages_scanned': '998877',
    'pages_shared': '12000',
    'pages_sharing': '13000',
    'pages_skipped': '100',
    'pages_to_scan': '4000',
    'pages_unshared': '3000',
    'pages_volatile': '10',
    'run': '1',
    'sleep_millisecs': '10',
    'smart_scan': '1',
    'stable_node_chains': '0',
    'stable_node_chains_prune_millisecs': '2000',
    'stable_node_dups': '0',
    'use_zero_pages': '0',
}

KSM_STAT_MERGED = ('ksm_rmap_items 30000\nksm_zero_pages 3\nksm_merging_pages 12500\nksm_process_profit 49270000\n'
                   'ksm_merge_any: no\nksm_mergeable: yes\n')
KSM_STAT_PRIVATE = ('ksm_rmap_items 0\nksm_zero_pages 0\nksm_merging_pages 0\nksm_process_profit 0\n'
                    'ksm_merge_any: no\nksm_mergeable: no\n')


def stat_line(pid, comm, ppid, flags, utime=0, stime=0):
    return '%d (%s) S %d 0 0 0 -1 %d 0 0 0 0 %d %d 0 0 20 0 1 0 15 0 0\n' % (pid, comm, ppid, flags, utime, stime)


def qemu_cmdline(name):
    return '\0'.join(['/usr/bin/qemu-system-x86_64', '-name', 'guest=%s,debug-threads=on' % name.replace(',', ',,'),
                      '-machine', 'pc,usb=off', '']).encode('utf-8')


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A KSM tree, a /proc with ksmd and two QEMU processes, and an empty libvirt run dir, used by the module."""
    ksm = tmp_path / 'ksm'
    ksm.mkdir()
    for name, value in KSM_FILES.items():
        (ksm / name).write_text(value + '\n')
    proc = tmp_path / 'proc'
    processes = {
        36: {'comm': 'ksmd\n', 'stat': stat_line(36, 'ksmd', 2, 2097216), 'schedstat': '2500000000 20 7\n'},
        500: {'comm': 'qemu-system-x86\n', 'cmdline': qemu_cmdline('test'), 'ksm_stat': KSM_STAT_MERGED},
        600: {'comm': 'qemu-system-x86\n', 'cmdline': qemu_cmdline('running-private'), 'ksm_stat': KSM_STAT_PRIVATE},
    }
    for pid, files in processes.items():
        base = proc / str(pid)
        base.mkdir(parents=True)
        for name, text in files.items():
            (base / name).write_bytes(text if isinstance(text, bytes) else text.encode('utf-8'))
    run_dir = tmp_path / 'run-libvirt-qemu'
    run_dir.mkdir()
    monkeypatch.setattr(fusion_facts, 'KSM_ROOT', str(ksm))
    monkeypatch.setattr(fusion_facts, 'PROC_ROOT', str(proc))
    monkeypatch.setattr(_libvirt_qemu, 'QEMU_RUN_DIRS', (str(run_dir),))
    # No VBoxManage unless a test puts the stand-in on the PATH.
    empty_bin = tmp_path / 'empty-bin'
    empty_bin.mkdir()
    monkeypatch.setenv('PATH', str(empty_bin))
    return tmp_path


def args(host, **kwargs):
    kwargs.setdefault('daemon_state_path', str(host / 'no-daemon' / 'state.json'))
    return kwargs


def facts_of(result):
    return result['ansible_facts']['pagefusion']


# ---------------------------------------------------------------------------------------------
# Host: KSM and the daemon


def test_host_ksm_figures(run_module, host):
    result, failed = run_module(fusion_facts.main, args(host, backend='none'))
    assert not failed
    assert result['changed'] is False
    assert 'warnings' not in result
    facts = facts_of(result)
    assert facts['backend'] is None and facts['vms'] == {}
    ksm = facts['host']
    assert ksm['ksm_present'] is True and ksm['ksm_running'] is True
    assert ksm['knobs']['pages_to_scan'] == 4000 and ksm['knobs']['advisor_mode'] == 'none'
    assert ksm['counters']['pages_sharing'] == 13000 and ksm['counters']['full_scans'] == 7
    assert 'pages_to_scan' not in ksm['counters'] and 'pages_sharing' not in ksm['knobs']
    assert ksm['page_size'] == PAGE
    assert ksm['saved_bytes'] == (13000 + 25) * PAGE
    assert ksm['shared_bytes'] == 12000 * PAGE
    assert ksm['general_profit'] == 52000000
    assert ksm['ksmd_cpu_seconds'] == pytest.approx(2.5)
    assert ksm['daemon'] is None


def test_old_kernel_without_zero_pages_and_profit(run_module, host):
    for name in ('ksm_zero_pages', 'general_profit'):
        os.unlink(str(host / 'ksm' / name))
    result, failed = run_module(fusion_facts.main, args(host, backend='none'))
    assert not failed
    ksm = facts_of(result)['host']
    assert ksm['saved_bytes'] == 13000 * PAGE
    assert ksm['general_profit'] is None


def test_host_without_ksm_warns_and_still_reports(run_module, host, monkeypatch):
    monkeypatch.setattr(fusion_facts, 'KSM_ROOT', str(host / 'no-ksm'))
    result, failed = run_module(fusion_facts.main, args(host, backend='libvirt', uri=URI))
    assert not failed
    facts = facts_of(result)
    assert facts['host']['ksm_present'] is False and facts['host']['ksm_running'] is False
    assert facts['host']['knobs'] == {} and facts['host']['saved_bytes'] == 0
    assert facts['host']['general_profit'] is None
    assert len(facts['vms']) == 4
    assert len(result['warnings']) == 1 and 'KSM is not available' in result['warnings'][0]


def test_daemon_state_present(run_module, host):
    state = {'phase': 'maintain', 'knobs': {'run': 1, 'pages_to_scan': 300}, 'saved_bytes': 123 * PAGE,
             'ksmd_cpu_percent': 1.5, 'updated': '2026-01-02T03:04:05Z', 'something_new': [1, 2]}
    path = host / 'state.json'
    path.write_text(json.dumps(state))
    result, failed = run_module(fusion_facts.main, args(host, backend='none', daemon_state_path=str(path)))
    assert not failed
    assert facts_of(result)['host']['daemon'] == state
    assert facts_of(result)['host']['real_saved_bytes'] is None  # this daemon sampled no real saving
    assert 'warnings' not in result


def test_real_saving_next_to_the_counters(run_module, host):
    state = {'phase': 'steady', 'saved_bytes': 900 * PAGE, 'real_saved_bytes': 850 * PAGE, 'real_saved_sampled': 1767322800.5}
    path = host / 'state.json'
    path.write_text(json.dumps(state))
    result, failed = run_module(fusion_facts.main, args(host, backend='none', daemon_state_path=str(path)))
    facts = facts_of(result)['host']
    assert not failed
    assert (facts['real_saved_bytes'], facts['real_saved_sampled']) == (850 * PAGE, 1767322800.5)
    assert _daemon_state.real_saving({'real_saved_bytes': True}) == (None, None)
    assert _daemon_state.real_saving(None) == (None, None)


@pytest.mark.parametrize('content, words', [
    ('{"phase": "scan", ', 'not valid JSON'),
    ('', 'not valid JSON'),
    ('[1, 2]', 'holds a JSON list, not an object'),
    (b'\xff\xfe{}', 'not valid JSON'),
])
def test_daemon_state_invalid_is_a_warning(run_module, host, content, words):
    path = host / 'state.json'
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    result, failed = run_module(fusion_facts.main, args(host, backend='none', daemon_state_path=str(path)))
    assert not failed
    assert facts_of(result)['host']['daemon'] is None
    assert len(result['warnings']) == 1
    assert words in result['warnings'][0] and str(path) in result['warnings'][0]
    # The rest is still there.
    assert facts_of(result)['host']['saved_bytes'] == (13000 + 25) * PAGE


def test_daemon_state_unreadable_is_a_warning(run_module, host):
    path = host / 'state-dir'
    path.mkdir()  # reading a directory fails like an unreadable file
    result, failed = run_module(fusion_facts.main, args(host, backend='none', daemon_state_path=str(path)))
    assert not failed
    assert facts_of(result)['host']['daemon'] is None
    assert 'Cannot read the pagefusiond state file' in result['warnings'][0]


def test_read_daemon_state_absent(tmp_path):
    assert _daemon_state.read_state(str(tmp_path / 'missing.json')) == (None, None)


# ---------------------------------------------------------------------------------------------
# libvirt


def test_libvirt_test_driver_vms(run_module, host):
    result, failed = run_module(fusion_facts.main, args(host, backend='libvirt', uri=URI))
    assert not failed
    assert 'warnings' not in result
    facts = facts_of(result)
    assert facts['backend'] == 'libvirt'
    vms = facts['vms']
    assert sorted(vms) == sorted(['off-shared', 'off-private', 'running-private', ODD])
    assert vms['off-shared']['power_state'] == 'shut off'
    assert vms['off-shared']['page_fusion'] == 'enabled' and vms['off-shared']['page_fusion_live'] is None
    assert vms['off-private']['page_fusion'] == 'disabled'
    assert vms['running-private']['power_state'] == 'running'
    assert vms['running-private']['page_fusion_live'] == 'disabled'
    assert vms[ODD]['backend'] == 'libvirt' and vms[ODD]['uuid']
    # The test driver has no QEMU processes: a QEMU process of the same name on this host is never used.
    for entry in vms.values():
        assert entry['qemu_pid'] is None
        assert entry['mergeable'] is None and entry['merged_bytes'] is None
        assert entry['zero_page_bytes'] is None and entry['profit_bytes'] is None


def test_libvirt_per_vm_ksm_from_the_qemu_process(run_module, host, monkeypatch):
    # Treat the test driver like QEMU, so running domains are looked up in the fake /proc.
    monkeypatch.setattr(_libvirt_qemu, 'QEMU_HYPERVISORS', ('TEST',))
    result, failed = run_module(fusion_facts.main, args(host, backend='libvirt', uri='test:///default'))
    assert not failed
    entry = facts_of(result)['vms']['test']
    assert entry['qemu_pid'] == 500
    assert entry['mergeable'] is True
    assert entry['merged_bytes'] == 12500 * PAGE
    assert entry['zero_page_bytes'] == 3 * PAGE
    assert entry['profit_bytes'] == 49270000

    result, failed = run_module(fusion_facts.main, args(host, backend='libvirt', uri=URI))
    assert not failed
    vms = facts_of(result)['vms']
    assert vms['running-private']['qemu_pid'] == 600
    assert vms['running-private']['mergeable'] is False
    assert vms['running-private']['merged_bytes'] == 0 and vms['running-private']['profit_bytes'] == 0
    # Shut-off VMs are not looked up at all.
    assert vms['off-shared']['qemu_pid'] is None and vms['off-shared']['mergeable'] is None


def test_libvirt_stale_pid_file_is_ignored_and_a_vanished_process_gives_nulls(run_module, host, monkeypatch):
    monkeypatch.setattr(_libvirt_qemu, 'QEMU_HYPERVISORS', ('TEST',))
    # A stale pid file naming another domain's QEMU (600 runs running-private) must not be believed.
    (host / 'run-libvirt-qemu' / 'test.pid').write_text('600\n')
    result, failed = run_module(fusion_facts.main, args(host, backend='libvirt', uri='test:///default'))
    assert not failed
    assert facts_of(result)['vms']['test']['qemu_pid'] == 500
    (host / 'run-libvirt-qemu' / 'test.pid').write_text('500\n')
    # The process without any KSM file (e.g. it just exited): the pid is known, the figures are not.
    os.unlink(str(host / 'proc' / '500' / 'ksm_stat'))
    result, failed = run_module(fusion_facts.main, args(host, backend='libvirt', uri='test:///default'))
    entry = facts_of(result)['vms']['test']
    assert entry['qemu_pid'] == 500 and entry['merged_bytes'] is None and entry['mergeable'] is None


def test_check_mode_reports_the_same(run_module, host):
    real, failed = run_module(fusion_facts.main, args(host, uri=URI))
    assert not failed
    check, failed = run_module(fusion_facts.main, args(host, uri=URI), check_mode=True)
    assert not failed
    assert check['changed'] is False
    real_facts, check_facts = facts_of(real), facts_of(check)
    for facts in (real_facts, check_facts):
        facts['host'].pop('ksmd_cpu_seconds')
        for entry in facts['vms'].values():
            entry.pop('uuid')  # the test driver makes up new UUIDs for every connection
    assert check_facts == real_facts


def test_backend_libvirt_unreachable_fails(run_module, host):
    result, failed = run_module(fusion_facts.main, args(host, backend='libvirt', uri='test:///nonexistent/node.xml'))
    assert failed
    assert "Cannot connect to libvirt at URI 'test:///nonexistent/node.xml'" in result['msg']


def test_auto_without_any_backend_warns_and_reports_the_host(run_module, host):
    result, failed = run_module(fusion_facts.main, args(host, uri='test:///nonexistent/node.xml'))
    assert not failed
    facts = facts_of(result)
    assert facts['backend'] is None and facts['vms'] == {}
    assert facts['host']['saved_bytes'] == (13000 + 25) * PAGE
    assert len(result['warnings']) == 1
    warning = result['warnings'][0]
    assert 'No hypervisor backend is usable' in warning
    assert 'libvirt: Cannot connect' in warning and 'VirtualBox: VBoxManage not found' in warning


def test_auto_picks_libvirt(run_module, host):
    result, failed = run_module(fusion_facts.main, args(host, uri=URI))
    assert not failed
    assert facts_of(result)['backend'] == 'libvirt' and 'warnings' not in result


class FakeConn(object):
    def __init__(self, hostname):
        self.hostname = hostname

    def getHostname(self):
        if self.hostname is None:
            raise RuntimeError('connection lost')
        return self.hostname


def test_is_remote_uri():
    import socket
    here = socket.gethostname()
    assert _libvirt_qemu.is_remote_uri('qemu:///system', FakeConn('elsewhere')) is False
    assert _libvirt_qemu.is_remote_uri('qemu+ssh://root@kvm-07/system', FakeConn('kvm-07')) is True
    assert _libvirt_qemu.is_remote_uri('qemu+ssh://root@localhost/system', FakeConn(here)) is False
    assert _libvirt_qemu.is_remote_uri('qemu+tcp://kvm-07/system', FakeConn(None)) is True
    assert _libvirt_qemu.is_remote_uri('test:///default', FakeConn(None)) is False


def test_libvirt_vm_facts_without_process(tmp_path):
    vm = VmRecord('web', 'libvirt', 'running', False, True, fusion_live=True, uuid='u-1')
    sysfs = KsmSysfs(str(tmp_path), proc_root=str(tmp_path), page_size=4096)
    assert _libvirt_qemu.vm_ksm_facts(vm, None, sysfs) == {
        'backend': 'libvirt', 'uuid': 'u-1', 'power_state': 'running', 'page_fusion': 'enabled',
        'page_fusion_live': 'enabled', 'mergeable': None, 'merged_bytes': None, 'zero_page_bytes': None,
        'profit_bytes': None, 'qemu_pid': None, 'free_page_reporting': None, 'free_page_reporting_live': None}


# ---------------------------------------------------------------------------------------------
# VirtualBox (the stand-in in tests/vbox, not VirtualBox)

UUID_A = '5d3ec6c7-0a1b-4c2d-8e3f-000000000001'
UUID_B = '5d3ec6c7-0a1b-4c2d-8e3f-000000000002'
UUID_C = '5d3ec6c7-0a1b-4c2d-8e3f-000000000003'


@pytest.fixture
def vbox(host, monkeypatch, vbox_standin):
    """Puts the stand-in on the PATH (run by this interpreter) and returns a writer of its state file."""
    state = vbox_standin(host)[1]
    monkeypatch.setattr(_vbox_metrics, 'SETTLE_SECONDS', 0.2)
    monkeypatch.setattr(_vbox_metrics, 'SETTLE_POLL', 0.05)

    def write(vms, **extra):
        data = {'version': '7.1.12r169651', 'vms': vms}
        data.update(extra)
        with open(state, 'w') as handle:
            json.dump(data, handle)
    return write


def win(uuid, name, **extra):
    vm = {'name': name, 'uuid': uuid, 'ostype': 'Windows10_64', 'state': 'poweroff', 'pagefusion': False}
    vm.update(extra)
    return vm


def test_virtualbox_sets_metrics_up_once_then_reads_them(run_module, host, vbox):
    vbox([win(UUID_A, 'win 10 "a"', state='running', pagefusion=True, metrics={'Guest/RAM/Usage/Shared': 2048}),
          win(UUID_B, 'win off', pagefusion=True, metrics={'Guest/RAM/Usage/Shared': 999})],
         host_metrics={'RAM/VMM/Shared': 4096})
    result, failed = run_module(fusion_facts.main, args(host, backend='virtualbox'), check_mode=True)
    assert not failed, result
    facts = facts_of(result)
    assert facts['backend'] == 'virtualbox'
    box = facts['host']['virtualbox']
    assert box['shared_bytes'] == 4096 * 1024
    assert box['metrics_setup'] == ['host', UUID_A]
    assert 'note' not in box
    running = facts['vms']['win 10 "a"']
    assert running['shared_bytes'] == 2048 * 1024
    assert (running['power_state'], running['page_fusion'], running['page_fusion_live']) == ('running', 'enabled', 'enabled')
    off = facts['vms']['win off']
    assert off['shared_bytes'] is None and off['page_fusion_live'] is None and off['power_state'] == 'poweroff'
    assert 'mergeable' not in running and 'qemu_pid' not in running
    # Setup names the base metrics (VirtualBox's setup filter matches base metrics only), per object.
    setups = [c for c in result['commands'] if ' metrics setup ' in c]
    assert [c.split(' metrics setup ', 1)[1] for c in setups] == [
        '--period 1 --samples 1 host RAM/VMM', '--period 1 --samples 1 %s Guest/RAM/Usage' % UUID_A]
    # KSM figures are still the host's.
    assert facts['host']['saved_bytes'] == (13000 + 25) * PAGE

    again, failed = run_module(fusion_facts.main, args(host, backend='virtualbox'))
    assert not failed
    assert facts_of(again)['host']['virtualbox']['metrics_setup'] == []
    assert not [c for c in again['commands'] if ' metrics setup ' in c]
    assert facts_of(again)['vms']['win 10 "a"']['shared_bytes'] == 2048 * 1024


def test_virtualbox_vm_without_guest_additions_reports_null_with_a_note(run_module, host, vbox):
    vbox([win(UUID_A, 'linux box', state='running', ostype='Debian_64'),
          win(UUID_C, 'win', state='running', metrics={'Guest/RAM/Usage/Shared': 10})],
         host_metrics={'RAM/VMM/Shared': 10})
    result, failed = run_module(fusion_facts.main, args(host, backend='virtualbox'))
    assert not failed
    facts = facts_of(result)
    assert facts['vms']['linux box']['shared_bytes'] is None
    assert facts['vms']['win']['shared_bytes'] == 10 * 1024
    note = facts['host']['virtualbox']['note']
    assert "'linux box'" in note and 'first read after it may be empty' in note
    assert "'win'" not in note


def test_virtualbox_backend_missing_fails(run_module, host):
    result, failed = run_module(fusion_facts.main, args(host, backend='virtualbox'))
    assert failed
    assert 'VBoxManage not found' in result['msg']


def test_auto_falls_back_to_virtualbox(run_module, host, vbox):
    vbox([], host_metrics={'RAM/VMM/Shared': 0})
    result, failed = run_module(fusion_facts.main, args(host, uri='test:///nonexistent/node.xml'))
    assert not failed
    facts = facts_of(result)
    assert facts['backend'] == 'virtualbox' and facts['vms'] == {}
    assert facts['host']['virtualbox']['shared_bytes'] == 0
    assert 'warnings' not in result


def test_virtualbox_host_without_ksm_does_not_warn_about_ksm(run_module, host, vbox, monkeypatch):
    monkeypatch.setattr(fusion_facts, 'KSM_ROOT', str(host / 'no-ksm'))
    vbox([], host_metrics={'RAM/VMM/Shared': 1})
    result, failed = run_module(fusion_facts.main, args(host, backend='virtualbox'))
    assert not failed
    assert 'warnings' not in result
    assert facts_of(result)['host']['ksm_present'] is False


def test_vbox_bytes_units():
    rows = [{'object': 'host', 'metric': 'RAM/VMM/Shared', 'values': [3], 'unit': 'MB'},
            {'object': 'vm', 'metric': 'Guest/RAM/Usage/Shared', 'values': [], 'unit': None}]
    assert _vbox_parse.metric_bytes(rows, 'host', 'RAM/VMM/Shared') == 3 * 1024 * 1024
    assert _vbox_parse.metric_bytes(rows, 'vm', 'Guest/RAM/Usage/Shared') is None
    assert _vbox_parse.metric_bytes(rows, 'nope', 'RAM/VMM/Shared') is None


# ---------------------------------------------------------------------------------------------
# KSM that costs more than it saves; free page reporting per VM


def test_negative_general_profit_is_a_fact_and_a_warning(run_module, host):
    (host / 'ksm' / 'general_profit').write_text('-1228800\n')
    result, failed = run_module(fusion_facts.main, args(host, backend='none'))
    assert not failed
    assert facts_of(result)['host']['general_profit_negative'] is True
    assert len(result['warnings']) == 1
    assert 'KSM costs this host more memory than it saves: general_profit is -1228800 bytes' in result['warnings'][0]


def test_positive_or_unknown_general_profit_gives_no_warning(run_module, host):
    result, failed = run_module(fusion_facts.main, args(host, backend='none'))
    assert not failed and 'warnings' not in result
    assert facts_of(result)['host']['general_profit_negative'] is False
    os.unlink(str(host / 'ksm' / 'general_profit'))
    result, failed = run_module(fusion_facts.main, args(host, backend='none'))
    assert not failed and 'warnings' not in result
    assert facts_of(result)['host']['general_profit_negative'] is None


def test_libvirt_free_page_reporting_per_vm(run_module, host):
    balloons = 'test://' + os.path.abspath(os.path.join(HERE, '..', 'module_utils', 'balloon-node.xml'))
    result, failed = run_module(fusion_facts.main, args(host, backend='libvirt', uri=balloons))
    assert not failed
    vms = facts_of(result)['vms']
    assert vms['reporting-on']['free_page_reporting'] is True
    assert vms['reporting-on']['free_page_reporting_live'] is None
    assert vms['balloon-none']['free_page_reporting'] is False
    assert vms['running-no-reporting']['free_page_reporting'] is False
    assert vms['running-no-reporting']['free_page_reporting_live'] is False
