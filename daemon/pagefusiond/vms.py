# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Which VM a mergeable process is, its tenant, and what KSM merged of its memory.

A libvirt host's QEMU processes are named by libvirt's status files (``/run/libvirt/qemu/<name>.xml``:
``<domstatus pid='...'><domain><name>`` and the tenant label in the domain's metadata), read without
libvirt-python. A QEMU process that libvirt does not know is named by its ``-name guest=NAME,...``
argument. Other mergeable processes are no VM and are not listed.
"""

from __future__ import annotations

import glob
import os
import xml.etree.ElementTree as ET

# libvirt's QEMU driver state directories (privileged daemon); the same list as _libvirt_qemu.QEMU_RUN_DIRS.
QEMU_RUN_DIRS = ('/run/libvirt/qemu', '/var/run/libvirt/qemu')
# The tenant label's metadata namespace (_libvirt_xml.TENANT_NS): <pagefusion:tenant name='acme'/>.
TENANT_NS = 'urn:pagefusion:core:1'


def _option_parts(text):
    """QEMU's ``key=value,key=value`` option text split at single commas (``,,`` is a literal comma)."""
    return [part.replace(b'\0', b',') for part in text.replace(b',,', b'\0').split(b',')]


def qemu_guest_name(args):
    """The guest name of QEMU's ``-name`` option in an argv list of bytes, as text, or None.

    ``-name guest=NAME,...`` (what libvirt writes) or ``-name NAME,...``; QEMU writes a literal comma in
    an option value as ``,,`` (the rule of ``_libvirt_qemu._qemu_name_option``; a unit test keeps the two in step).
    """
    for index, arg in enumerate(args[:-1]):
        if arg != b'-name':
            continue
        parts = _option_parts(args[index + 1])
        for number, part in enumerate(parts):
            if part.startswith(b'guest='):
                return part[len(b'guest='):].decode('utf-8', 'replace')
            if number == 0 and b'=' not in part:
                return part.decode('utf-8', 'replace')
        return None
    return None


def parse_domain_status(text):
    """``(pid, name, tenant)`` from a libvirt QEMU status XML, or None when it is not one."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None
    domain = root.find('./domain') if root.tag == 'domstatus' else None
    name = domain.findtext('./name') if domain is not None else None
    try:
        pid = int(root.get('pid', ''))
    except ValueError:
        return None
    if not name:
        return None
    tenant = domain.find('./metadata/{%s}tenant' % TENANT_NS)
    return pid, name, (tenant.get('name') or None) if tenant is not None else None


class VmDirectory(object):
    """Names the VMs behind mergeable pids; libvirt's status files are re-parsed only when they change."""

    def __init__(self, proc_root='/proc', run_dirs=QEMU_RUN_DIRS):
        self.proc_root = proc_root
        self.run_dirs = run_dirs
        self.status = {}  # path -> (mtime, (pid, name, tenant) or None)
        self.cmdline_names = {}  # pid -> name or None

    def _libvirt_domains(self):
        """``{pid: (name, tenant)}`` of the domains libvirt's QEMU driver runs here."""
        fresh = {}
        for run_dir in self.run_dirs:
            for path in glob.glob(os.path.join(run_dir, '*.xml')):
                try:
                    mtime = os.stat(path).st_mtime
                    cached = self.status.get(path)
                    if cached is None or cached[0] != mtime:
                        with open(path, 'rb') as handle:
                            cached = (mtime, parse_domain_status(handle.read()))
                except OSError:
                    continue
                fresh[path] = cached
        self.status = fresh
        return dict((info[0], info[1:]) for _mtime, info in fresh.values() if info is not None)

    def _cmdline_name(self, pid):
        if pid not in self.cmdline_names:
            try:
                with open(os.path.join(self.proc_root, str(pid), 'cmdline'), 'rb') as handle:
                    self.cmdline_names[pid] = qemu_guest_name(handle.read().split(b'\0'))
            except OSError:
                return None
        return self.cmdline_names[pid]

    def describe(self, processes, page_size):
        """``[{vm, tenant, pid, merged_bytes, zero_page_bytes, profit_bytes}]`` of the mergeable processes that are VMs.

        ``processes`` is the watcher's ``{pid: {'stat': read_process_ksm(pid), ...}}``.
        """
        domains = self._libvirt_domains() if processes else {}
        self.cmdline_names = dict((pid, name) for pid, name in self.cmdline_names.items() if pid in processes)
        vms = []
        for pid in sorted(processes):
            name, tenant = domains.get(pid) or (self._cmdline_name(pid), None)
            if name is None:
                continue
            stat = processes[pid].get('stat') or {}
            vms.append({
                'vm': name,
                'tenant': tenant,
                'pid': pid,
                'merged_bytes': (stat.get('merging_pages') or 0) * page_size,
                'zero_page_bytes': (stat.get('zero_pages') or 0) * page_size,
                'profit_bytes': stat.get('process_profit'),
            })
        return vms


def sharing_tenants(vms):
    """The tenant labels of the VMs whose memory is open to sharing (_tenancy.sharing_tenants' rule, live side)."""
    return sorted(set(vm['tenant'] for vm in vms if vm.get('tenant')))
