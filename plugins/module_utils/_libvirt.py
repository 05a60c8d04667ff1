# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The libvirt backend: page fusion is the absence of <memoryBacking><nosharepages/> in a domain.

Private module_utils of pagefusion.core; its API may change at any time.

QEMU marks guest RAM mergeable (MADV_MERGEABLE) unless it runs with ``-machine mem-merge=off``,
which libvirt emits for ``<nosharepages/>``. The flag is read at QEMU start, so a change only
takes effect at the next cold boot: the persistent definition is what this backend edits.
"""

from __future__ import annotations

import io
import os
import re
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape as xml_escape

from ansible_collections.pagefusion.core.plugins.module_utils._eligibility import (
    LIBOSINFO_NS,
    libvirt_vm_eligibility,
)
from ansible_collections.pagefusion.core.plugins.module_utils._fusion import (
    STEP_SET_FUSION,
    STEP_SHUTDOWN,
    STEP_START,
    FusionError,
    VmRecord,
)

try:
    import libvirt
except ImportError:
    libvirt = None
    HAS_LIBVIRT = False
else:
    HAS_LIBVIRT = True

DEFAULT_URI = 'qemu:///system'
TENANT_NS = 'https://pagefusion.invalid/xmlns/libvirt/domain/1.0'

# virDomainState values (include/libvirt/libvirt-domain.h), named as virsh prints them.
STATE_NAMES = {
    0: 'no state',
    1: 'running',
    2: 'idle',
    3: 'paused',
    4: 'in shutdown',
    5: 'shut off',
    6: 'crashed',
    7: 'pmsuspended',
}
STATE_RUNNING = 1
STATE_SHUTOFF = 5

# virDomainXMLFlags: SECURE keeps secrets (e.g. VNC passwords) so a redefine does not drop them.
XML_SECURE = 1
XML_INACTIVE = 2

POLL_INTERVAL = 0.25


def _silence_libvirt_errors():
    # libvirt-python prints every error to stderr by default; we report errors ourselves.
    if HAS_LIBVIRT:
        libvirt.registerErrorHandler(lambda ctx, err: None, None)


def version_string(number):
    """libvirt encodes versions as major * 1,000,000 + minor * 1,000 + release."""
    if not number:
        return None
    return '%d.%d.%d' % (number // 1000000, (number // 1000) % 1000, number % 1000)


def connect(uri):
    """Open a read-write connection or raise a FusionError that says what to check."""
    if not HAS_LIBVIRT:
        raise FusionError('libvirt-python is not installed')
    _silence_libvirt_errors()
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise FusionError(
            "Cannot connect to libvirt at URI '%s': %s. Check that the URI is right, that libvirtd (or the "
            "modular virtqemud) is running on the host and that this user may use it." % (uri, _err(exc)))


def _err(exc):
    msg = exc.get_error_message() if hasattr(exc, 'get_error_message') else None
    return msg or str(exc)


# ---------------------------------------------------------------------------------------------
# Domain XML

def _register_namespaces(xml_text):
    """Keep the document's own namespace prefixes (e.g. libosinfo:) when it is written back."""
    for _event, (prefix, uri) in ET.iterparse(io.BytesIO(xml_text.encode('utf-8')), events=('start-ns',)):
        if prefix and not re.match(r'ns\d+$', prefix):
            try:
                ET.register_namespace(prefix, uri)
            except ValueError:
                pass


def parse_domain_xml(xml_text):
    _register_namespaces(xml_text)
    return ET.fromstring(xml_text)


def has_nosharepages(root):
    return root.find('./memoryBacking/nosharepages') is not None


def set_nosharepages(root, present):
    """Add or remove <memoryBacking><nosharepages/>, leaving every other element alone.

    Returns True when the tree changed.
    """
    backing = root.find('./memoryBacking')
    if present:
        if backing is None:
            backing = ET.SubElement(root, 'memoryBacking')
        if backing.find('./nosharepages') is not None:
            return False
        ET.SubElement(backing, 'nosharepages')
        return True
    if backing is None:
        return False
    nodes = backing.findall('./nosharepages')
    if not nodes:
        return False
    for node in nodes:
        backing.remove(node)
    if len(backing) == 0 and not backing.attrib and not (backing.text or '').strip():
        root.remove(backing)
    return True


def memory_backing_facts(root):
    backing = root.find('./memoryBacking')
    if backing is None:
        return {'hugepages': False, 'source': None, 'access': None}
    source = backing.find('./source')
    access = backing.find('./access')
    return {
        'hugepages': backing.find('./hugepages') is not None,
        'source': source.get('type') if source is not None else None,
        'access': access.get('mode') if access is not None else None,
    }


def libosinfo_id(root):
    node = root.find('./metadata/{%s}libosinfo/{%s}os' % (LIBOSINFO_NS, LIBOSINFO_NS))
    return node.get('id') if node is not None else None


def tenant_label(root):
    node = root.find('./metadata/{%s}tenant' % TENANT_NS)
    if node is None:
        return None
    return (node.get('name') or node.text or '').strip() or None


def domain_xml_text(root):
    return ET.tostring(root, encoding='unicode')


# ---------------------------------------------------------------------------------------------
# Host processes

def qemu_pid(name, run_dirs=('/run/libvirt/qemu', '/var/run/libvirt/qemu'), proc_root='/proc'):
    """PID of a running domain's QEMU process, or None.

    libvirt writes ``<stateDir>/<name>.pid`` for privileged daemons; there is no API for it.
    The fallback matches ``-name guest=<name>`` (QEMU doubles commas in option values).
    """
    # libvirt 9 XML-escapes the name in the pid file name (a "b" -> a &quot;b&quot;.pid); older ones do not.
    candidates = [name, xml_escape(name, {'"': '&quot;', "'": '&apos;'})]
    for run_dir in run_dirs:
        for candidate in candidates:
            try:
                with open(os.path.join(run_dir, '%s.pid' % candidate)) as handle:
                    pid = int(handle.read().strip())
            except (OSError, ValueError):
                continue
            if os.path.exists(os.path.join(proc_root, str(pid))):
                return pid
    wanted = ('guest=%s' % name.replace(',', ',,')).encode('utf-8')
    try:
        entries = os.listdir(proc_root)
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc_root, entry, 'cmdline'), 'rb') as handle:
                args = handle.read().split(b'\0')
        except OSError:
            continue
        for index, arg in enumerate(args[:-1]):
            if arg == b'-name' and (args[index + 1] == wanted or args[index + 1].startswith(wanted + b',')):
                return int(entry)
    return None


# ---------------------------------------------------------------------------------------------
# Backend

class LibvirtBackend(object):
    """Reads every domain once, then edits persistent definitions through one connection."""

    name = 'libvirt'
    can_defer = True

    def __init__(self, uri=DEFAULT_URI, conn=None, sleep=time.sleep, clock=time.monotonic):
        self.uri = uri
        self.conn = conn if conn is not None else connect(uri)
        self._sleep = sleep
        self._clock = clock

    def close(self):
        try:
            self.conn.close()
        except Exception:  # pylint: disable=broad-except
            pass

    def unsupported_reason(self):
        return None

    def versions(self):
        info = {'uri': self.uri, 'libvirt_version': None, 'hypervisor': None, 'hypervisor_version': None}
        try:
            info['libvirt_version'] = version_string(self.conn.getLibVersion())
            info['hypervisor'] = self.conn.getType()
            info['hypervisor_version'] = version_string(self.conn.getVersion())
        except libvirt.libvirtError:
            pass
        return info

    # -- reading --------------------------------------------------------------------------------

    def list_vms(self):
        try:
            domains = self.conn.listAllDomains(0)
        except libvirt.libvirtError as exc:
            raise FusionError("Cannot list the VMs at libvirt URI '%s': %s" % (self.uri, _err(exc)))
        return [self._record(dom) for dom in domains]

    def _record(self, dom):
        name = dom.name()
        try:
            state = dom.state()[0]
            persistent = bool(dom.isPersistent())
            active = bool(dom.isActive())
            definition = dom.XMLDesc(XML_INACTIVE | XML_SECURE) if persistent else dom.XMLDesc(XML_SECURE)
            root = parse_domain_xml(definition)
            live_root = parse_domain_xml(dom.XMLDesc(0)) if (active and persistent) else (root if active else None)
        except libvirt.libvirtError as exc:
            raise FusionError("Cannot read VM '%s' at libvirt URI '%s': %s" % (name, self.uri, _err(exc)))
        except ET.ParseError as exc:
            raise FusionError("libvirt returned a definition of VM '%s' that is not valid XML: %s" % (name, exc))
        return VmRecord(
            name=name,
            backend=self.name,
            power_state=STATE_NAMES.get(state, 'unknown (%s)' % state),
            is_off=state == STATE_SHUTOFF,
            fusion=not has_nosharepages(root),
            fusion_live=None if live_root is None else not has_nosharepages(live_root),
            uuid=dom.UUIDString(),
            os_id=libosinfo_id(root),
            persistent=persistent,
            tenant=tenant_label(root),
            details={'dom': dom, 'root': root, 'state': state, 'memory_backing': memory_backing_facts(root),
                     'domain_type': root.get('type')},
        )

    def eligibility(self, vm):
        return libvirt_vm_eligibility(vm.details['memory_backing'])

    # -- describing -----------------------------------------------------------------------------

    def describe_step(self, vm, step, arg, shutdown_timeout=None, force_off=False):
        if step == STEP_SHUTDOWN:
            text = "shut down '%s' gracefully (ACPI), wait up to %s s" % (vm.name, shutdown_timeout)
            return text + (', then power it off hard if it still runs' if force_off else '')
        if step == STEP_SET_FUSION:
            if arg:
                return "define '%s' without <memoryBacking><nosharepages/> (page fusion enabled)" % vm.name
            return "define '%s' with <memoryBacking><nosharepages/> (page fusion disabled)" % vm.name
        if step == STEP_START:
            return "start '%s' and wait until it runs" % vm.name
        raise ValueError(step)

    # -- changing -------------------------------------------------------------------------------

    def set_fusion(self, vm, enabled):
        root = vm.details['root']
        set_nosharepages(root, not enabled)
        try:
            self.conn.defineXML(domain_xml_text(root))
            reread = parse_domain_xml(vm.details['dom'].XMLDesc(XML_INACTIVE))
        except libvirt.libvirtError as exc:
            raise FusionError("libvirt refused the new definition of VM '%s' at '%s': %s. The VM is unchanged."
                              % (vm.name, self.uri, _err(exc)))
        # A silently ignored re-define is a known libvirt pitfall: prove the change is there.
        if has_nosharepages(reread) == enabled:
            raise FusionError("libvirt accepted the new definition of VM '%s' but does not keep <nosharepages/> "
                              "as asked; page fusion is still %s." % (vm.name, 'disabled' if enabled else 'enabled'))
        vm.details['root'] = reread
        vm.fusion = enabled

    def _wait_state(self, vm, wanted, timeout):
        deadline = self._clock() + timeout
        while True:
            try:
                state = vm.details['dom'].state()[0]
            except libvirt.libvirtError as exc:
                raise FusionError("Cannot read the state of VM '%s': %s" % (vm.name, _err(exc)))
            if state == wanted:
                return True
            if self._clock() >= deadline:
                return False
            self._sleep(POLL_INTERVAL)

    def shutdown(self, vm, timeout, force_off=False):
        dom = vm.details['dom']
        try:
            dom.shutdown()
        except libvirt.libvirtError as exc:
            if not force_off:
                raise FusionError("VM '%s' refused a graceful shutdown: %s. It is still %s and unchanged; set "
                                  "force_off=true to power it off hard." % (vm.name, _err(exc), vm.power_state))
        if not self._wait_state(vm, STATE_SHUTOFF, timeout):
            if not force_off:
                raise FusionError(
                    "VM '%s' did not shut down within shutdown_timeout=%s s; it is still running and unchanged. "
                    "Raise shutdown_timeout, shut it down yourself, or set force_off=true to power it off hard."
                    % (vm.name, timeout))
            try:
                dom.destroy()
            except libvirt.libvirtError as exc:
                raise FusionError("Cannot power off VM '%s': %s" % (vm.name, _err(exc)))
            if not self._wait_state(vm, STATE_SHUTOFF, 30):
                raise FusionError("VM '%s' is still not shut off after a hard power-off." % vm.name)
        vm.is_off = True
        vm.power_state = STATE_NAMES[STATE_SHUTOFF]
        vm.fusion_live = None

    def start(self, vm, timeout):
        dom = vm.details['dom']
        try:
            dom.create()
        except libvirt.libvirtError as exc:
            raise FusionError("VM '%s' was changed but did not start again: %s" % (vm.name, _err(exc)))
        if not self._wait_state(vm, STATE_RUNNING, timeout):
            raise FusionError("VM '%s' was started but is not running after %s s." % (vm.name, timeout))
        vm.is_off = False
        vm.power_state = STATE_NAMES[STATE_RUNNING]
        vm.fusion_live = vm.fusion
