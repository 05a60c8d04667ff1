# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The QEMU processes of libvirt VMs on this host, and what KSM does with their memory.

Private module_utils of pagefusion.core; its API may change at any time.

libvirt has no API for a domain's QEMU pid, so it is read from libvirt's pid file or found by QEMU's
``-name guest=<name>`` argument; the per-VM KSM figures come from ``/proc/<pid>/ksm_stat`` through
the KSM model (``_ksm``). Imports without libvirt-python.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit
from xml.sax.saxutils import escape as xml_escape

from ansible_collections.pagefusion.core.plugins.module_utils._backend_api import vm_facts_entry

# Where libvirt's QEMU driver writes <name>.pid (its stateDir for privileged daemons).
QEMU_RUN_DIRS = ('/run/libvirt/qemu', '/var/run/libvirt/qemu')
# libvirt drivers (conn.getType()) whose VMs are QEMU processes on the libvirt host.
QEMU_HYPERVISORS = ('QEMU',)
# The first releases with virtio balloon free page reporting: libvirt's freePageReporting attribute (6.9.0) and
# QEMU's virtio-balloon free-page-reporting property (5.1.0).
FREE_PAGE_REPORTING_LIBVIRT = (6, 9, 0)
FREE_PAGE_REPORTING_QEMU = (5, 1, 0)


def _qemu_name_option(args):
    """The ``guest=`` value of QEMU's ``-name`` option in an argv list, or None.

    QEMU writes a literal comma in an option value as ``,,``; a single comma ends the value.
    """
    for index, arg in enumerate(args[:-1]):
        if arg != b'-name':
            continue
        text = args[index + 1]
        if not text.startswith(b'guest='):
            return None
        value, pos = bytearray(), len(b'guest=')
        while pos < len(text):
            char = text[pos:pos + 1]
            if char == b',':
                if text[pos + 1:pos + 2] != b',':
                    break
                pos += 1
            value += char
            pos += 1
        return bytes(value)
    return None


def _process_guest_name(pid, proc_root):
    try:
        with open(os.path.join(proc_root, str(pid), 'cmdline'), 'rb') as handle:
            return _qemu_name_option(handle.read().split(b'\0'))
    except OSError:
        return None


def qemu_pid(name, run_dirs=QEMU_RUN_DIRS, proc_root='/proc'):
    """PID of a running domain's QEMU process, or None.

    libvirt writes ``<stateDir>/<name>.pid`` for privileged daemons; there is no API for it. A pid
    from that file counts only if that process runs QEMU with ``-name guest=<name>`` (a stale file
    can name a reused pid). The fallback scans every process's ``-name guest=<name>``.
    """
    wanted = name.encode('utf-8')
    # libvirt 9 XML-escapes the name in the pid file name (a "b" -> a &quot;b&quot;.pid); older ones do not.
    candidates = [name, xml_escape(name, {'"': '&quot;', "'": '&apos;'})]
    for run_dir in run_dirs:
        for candidate in candidates:
            try:
                with open(os.path.join(run_dir, '%s.pid' % candidate)) as handle:
                    pid = int(handle.read().strip())
            except (OSError, ValueError):
                continue
            if _process_guest_name(pid, proc_root) == wanted:
                return pid
    try:
        entries = os.listdir(proc_root)
    except OSError:
        return None
    for entry in entries:
        if entry.isdigit() and _process_guest_name(entry, proc_root) == wanted:
            return int(entry)
    return None


def is_remote_uri(uri, conn):
    """True when the libvirt connection reaches another machine (its QEMU processes are not here)."""
    try:
        netloc = urlsplit(uri).netloc
    except ValueError:
        return False
    if not netloc:
        return False
    try:
        return conn.getHostname() != socket.gethostname()
    except Exception:  # pylint: disable=broad-except
        return True


def _version_tuple(text):
    try:
        return tuple(int(part) for part in text.split('.'))
    except (AttributeError, ValueError):
        return None


def _at_least(text, minimum):
    version = _version_tuple(text)
    return None if version is None else version >= minimum


def free_page_reporting_support(libvirt_version, hypervisor, hypervisor_version):
    """Whether libvirt and QEMU can give a VM a balloon with free page reporting, from their version strings.

    ``libvirt`` and ``qemu`` are True/False, or None when unknown (``qemu`` is None when the hypervisor is not
    QEMU); ``supported`` is True only when both are; ``reasons`` explains every False or None.
    """
    lib_ok = _at_least(libvirt_version, FREE_PAGE_REPORTING_LIBVIRT)
    qemu_ok = _at_least(hypervisor_version, FREE_PAGE_REPORTING_QEMU) if hypervisor in QEMU_HYPERVISORS else None
    reasons = []
    if lib_ok is not True:
        reasons.append('free page reporting needs libvirt 6.9.0 or later; this libvirt is %s'
                       % (libvirt_version or 'of unknown version'))
    if hypervisor not in QEMU_HYPERVISORS:
        reasons.append("free page reporting needs the QEMU hypervisor; this connection's is %s" % (hypervisor or 'unknown'))
    elif qemu_ok is not True:
        reasons.append('free page reporting needs QEMU 5.1.0 or later; this QEMU is %s'
                       % (hypervisor_version or 'of unknown version'))
    return {'supported': bool(lib_ok and qemu_ok), 'libvirt': lib_ok, 'qemu': qemu_ok, 'reasons': reasons}


def _bytes(pages, page_size):
    return None if pages is None else pages * page_size


def vm_ksm_facts(vm, pid, sysfs):
    """The ``fusion_facts`` entry of one libvirt VM; ``pid`` is its QEMU pid or None."""
    entry = vm_facts_entry(vm)
    entry['free_page_reporting'] = vm.settings.get('free_page_reporting')
    entry['free_page_reporting_live'] = None if vm.settings_live is None else vm.settings_live.get('free_page_reporting')
    stat = sysfs.process_ksm(pid) if pid is not None else None
    if stat is None:
        entry.update({'mergeable': None, 'merged_bytes': None, 'zero_page_bytes': None, 'profit_bytes': None,
                      'qemu_pid': pid})
        return entry
    entry.update({
        'mergeable': stat['mergeable'],
        'merged_bytes': _bytes(stat['merging_pages'], sysfs.page_size),
        'zero_page_bytes': _bytes(stat['zero_pages'], sysfs.page_size),
        'profit_bytes': stat['process_profit'],
        'qemu_pid': pid,
    })
    return entry


def local_qemu_processes(uri, conn, warn):
    """Whether the VMs of this connection are QEMU processes on this host (warns about a remote URI)."""
    try:
        hypervisor = conn.getType()
    except Exception:  # pylint: disable=broad-except
        hypervisor = None
    if hypervisor not in QEMU_HYPERVISORS:
        return False
    if is_remote_uri(uri, conn):
        warn("libvirt URI '%s' is on another host: per-VM KSM figures are null (the QEMU processes are not on "
             "this host) and the host figures are this host's. Run fusion_facts on the hypervisor host with a "
             "local URI." % uri)
        return False
    return True


def vms_ksm_facts(records, local, sysfs):
    """``{name: entry}`` of libvirt VMs; running ones are looked up in ``sysfs.proc_root`` when ``local``."""
    vms = {}
    for vm in records:
        pid = None
        if local and not vm.is_off:
            pid = qemu_pid(vm.name, run_dirs=QEMU_RUN_DIRS, proc_root=sysfs.proc_root)
        vms[vm.name] = vm_ksm_facts(vm, pid, sysfs)
    return vms
