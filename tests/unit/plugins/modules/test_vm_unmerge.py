# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""pagefusion.core.vm refuses to restart VMs without page fusion when their merged memory does not fit.

libvirt's test driver has no QEMU processes, so the merged figures are given here; the real ``ksm_stat`` of a
real TCG guest is in the ``vm_libvirt`` integration target (unmerge_fit.yml).
"""

from __future__ import annotations

import libvirt  # noqa: F401  pylint: disable=unused-import  # the libvirt backend under test needs it

import pytest

from ansible_collections.pagefusion.core.plugins.modules import vm

MIB = 1024 * 1024
NODE = """<node>
  <domain type='kvm'><name>shared-a</name><memory>131072</memory><os><type>hvm</type></os></domain>
  <domain type='kvm'><name>shared-b</name><memory>131072</memory><os><type>hvm</type></os></domain>
</node>
"""


@pytest.fixture
def uri(tmp_path, monkeypatch):
    node = tmp_path / 'node.xml'
    node.write_text(NODE)
    monkeypatch.setattr(vm, 'read_mem_available', lambda proc_root='/proc': 2048 * MIB)
    return 'test://%s' % node


def merged(monkeypatch, figures):
    monkeypatch.setattr(vm, 'merged_bytes_by_vm', lambda backend, sysfs, warn: dict(figures))


@pytest.mark.parametrize('check_mode', [True, False])
def test_refused_with_the_figures_and_nothing_changed(run_module, uri, monkeypatch, check_mode):
    merged(monkeypatch, {'shared-a': 600 * MIB, 'shared-b': 600 * MIB})
    args = dict(uri=uri, name=['shared-a', 'shared-b'], state='disabled', when_running='restart')
    result, failed = run_module(vm.main, args, check_mode=check_mode)
    assert failed
    assert result['msg'] == (
        "Refusing: restarting VM 'shared-b' without page fusion takes back the 600.0 MiB it has merged (ksm_stat) "
        "(with the VMs before it in this run): it would take back 1200.0 MiB, but MemAvailable is 2048.0 MiB and the "
        "margin is 1024.0 MiB (1024.0 MiB may be taken back). Free memory first, lower unmerge_margin_mib, or set "
        "unmerge_when_short=true. Nothing was changed.")
    entries = dict((entry['name'], entry) for entry in result['vms'])
    assert not any(entry['changed'] for entry in entries.values())
    assert entries['shared-a']['unmerge_fit']['fits'] and not entries['shared-b']['unmerge_fit']['fits']
    assert entries['shared-b']['page_fusion'] == 'enabled'


def test_fits_with_a_smaller_margin(run_module, uri, monkeypatch):
    merged(monkeypatch, {'shared-a': 600 * MIB, 'shared-b': 600 * MIB})
    args = dict(uri=uri, name=['shared-a', 'shared-b'], state='disabled', when_running='restart', unmerge_margin_mib=512,
                shutdown_timeout=5)
    check, failed = run_module(vm.main, args, check_mode=True)
    assert not failed and check['changed']
    real, failed = run_module(vm.main, args)
    assert not failed and real['actions'] == check['actions']
    assert [entry['unmerge_fit']['take_back_bytes'] for entry in real['vms']] == [600 * MIB, 1200 * MIB]


def test_override_warns_and_restarts(run_module, uri, monkeypatch):
    merged(monkeypatch, {'shared-a': 3000 * MIB})
    args = dict(uri=uri, name='shared-a', state='disabled', when_running='restart', unmerge_when_short=True, shutdown_timeout=5)
    result, failed = run_module(vm.main, args)
    assert not failed and result['changed']
    assert any('unmerge_when_short=true' in warning for warning in result['warnings'])


def test_defer_and_enable_are_never_measured(run_module, uri, monkeypatch):
    merged(monkeypatch, {'shared-a': 3000 * MIB})
    result, failed = run_module(vm.main, dict(uri=uri, name='shared-a', state='disabled', when_running='defer'), check_mode=True)
    assert not failed and 'unmerge_fit' not in result['vms'][0]


def test_unknown_merged_figure_warns(run_module, uri):
    # The test driver has no QEMU process: the figure is unknown, and the module says so instead of guessing.
    args = dict(uri=uri, name='shared-a', state='disabled', when_running='restart', unmerge_margin_mib=10 ** 6)
    result, failed = run_module(vm.main, args, check_mode=True)
    assert not failed and result['changed']
    assert any("Cannot tell how much memory VM 'shared-a' has merged" in warning for warning in result['warnings'])


def test_negative_margin_is_refused(run_module, uri):
    result, failed = run_module(vm.main, dict(uri=uri, name='shared-a', state='disabled', unmerge_margin_mib=-1))
    assert failed and 'unmerge_margin_mib must be at least 0' in result['msg']
