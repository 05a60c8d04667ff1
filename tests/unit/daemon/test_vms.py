# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""pagefusiond's VM directory: QEMU's -name option, libvirt's status files, tenants."""

from __future__ import annotations

import os

import pytest

from ansible_collections.pagefusion.core.daemon.pagefusiond.vms import (
    VmDirectory, parse_domain_status, qemu_guest_name, sharing_tenants)
from ansible_collections.pagefusion.core.plugins.module_utils._libvirt_qemu import _qemu_name_option

# The shape of /run/libvirt/qemu/<name>.xml as libvirt 9 writes it (trimmed; read on this machine).
STATUS_XML = b"""<!--
WARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE
OVERWRITTEN AND LOST.
-->

<domstatus state='running' reason='booted' pid='%(pid)d'>
  <monitor path='/var/lib/libvirt/qemu/domain-3-x/monitor.sock' type='unix'/>
  <vcpus>
    <vcpu id='0' pid='3787'/>
  </vcpus>
  <domain type='qemu' id='3'>
    <name>%(name)s</name>
    <uuid>0b1b8e4e-3c4e-4c36-9f0e-5a9a4a6b3b71</uuid>
    <metadata xmlns:pftest="https://github.com/pagefusion/core/testguest/1">
      <pftest:testguest fill-mib="8"/>
      %(tenant)s
    </metadata>
    <memory unit='KiB'>98304</memory>
  </domain>
</domstatus>
"""


def status(pid, name, tenant=None):
    label = b"<pagefusion:tenant xmlns:pagefusion='urn:pagefusion:core:1' name='%s'/>" % tenant if tenant else b''
    return STATUS_XML % {b'pid': pid, b'name': name, b'tenant': label}


@pytest.mark.parametrize('option, name', [
    (b'guest=web,debug-threads=on', 'web'),
    (b'guest=a,,b,debug-threads=on', 'a,b'),
    (b'guest=ends,,', 'ends,'),
    (b'guest=web "blue",,1\\\xc3\xa4', 'web "blue",1\\\xe4'),
    (b'plainname,process=x', 'plainname'),
    (b'debug-threads=on,guest=late', 'late'),
    (b'debug-threads=on', None),
])
def test_qemu_guest_name(option, name):
    assert qemu_guest_name([b'/usr/bin/qemu-system-x86_64', b'-S', b'-name', option, b'-m', b'64']) == name


@pytest.mark.parametrize('option', [b'guest=web,debug-threads=on', b'guest=a,,b,x=y', b'guest=ends,,', b'guest=q"\\,,z'])
def test_the_daemon_reads_guest_names_as_the_libvirt_backend_does(option):
    args = [b'qemu', b'-name', option]
    assert qemu_guest_name(args) == _qemu_name_option(args).decode('utf-8')


def test_no_name_option():
    assert qemu_guest_name([b'python3', b'x.py']) is None
    assert qemu_guest_name([b'qemu', b'-name']) is None


def test_parse_domain_status():
    assert parse_domain_status(status(3781, b'pf &amp; "x"', b'acme')) == (3781, 'pf & "x"', 'acme')
    assert parse_domain_status(status(12, b'solo')) == (12, 'solo', None)
    assert parse_domain_status(b'<domain><name>inactive</name></domain>') is None
    assert parse_domain_status(b'not xml') is None


def test_directory_prefers_libvirt_and_falls_back_to_the_command_line(tmp_path):
    run_dir, proc = tmp_path / 'run', tmp_path / 'proc'
    run_dir.mkdir()
    (run_dir / 'web.xml').write_bytes(status(11, b'web', b'acme'))
    (run_dir / 'gone.xml').write_bytes(status(99, b'gone', b'umbrella'))
    for pid, cmdline in ((11, b'qemu\0-name\0guest=web\0'), (12, b'qemu\0-name\0guest=raw,,qemu\0'), (13, b'python3\0')):
        os.makedirs(str(proc / str(pid)))
        (proc / str(pid) / 'cmdline').write_bytes(cmdline)
    directory = VmDirectory(str(proc), (str(run_dir),))
    processes = dict((pid, {'stat': {'merging_pages': pid, 'zero_pages': 1, 'process_profit': -5}}) for pid in (11, 12, 13, 14))
    vms = directory.describe(processes, 4096)
    assert vms == [
        {'vm': 'web', 'tenant': 'acme', 'pid': 11, 'merged_bytes': 11 * 4096, 'zero_page_bytes': 4096, 'profit_bytes': -5},
        {'vm': 'raw,qemu', 'tenant': None, 'pid': 12, 'merged_bytes': 12 * 4096, 'zero_page_bytes': 4096, 'profit_bytes': -5},
    ]
    assert sharing_tenants(vms) == ['acme']
    # A status file that changes is read again; one that goes away is forgotten.
    (run_dir / 'web.xml').write_bytes(status(11, b'web', b'umbrella'))
    os.utime(str(run_dir / 'web.xml'), (1, 1))
    (run_dir / 'gone.xml').unlink()
    assert directory.describe(processes, 4096)[0]['tenant'] == 'umbrella'
    assert sorted(directory.status) == [str(run_dir / 'web.xml')]
    assert directory.describe({}, 4096) == []


def test_sharing_tenants():
    vms = [{'tenant': 'b'}, {'tenant': None}, {'tenant': 'a'}, {'tenant': 'b'}]
    assert sharing_tenants(vms) == ['a', 'b']
