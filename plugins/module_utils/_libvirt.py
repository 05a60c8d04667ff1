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

import json
import time
import xml.etree.ElementTree as ET

from ansible_collections.pagefusion.core.plugins.module_utils._backend_api import Backend
from ansible_collections.pagefusion.core.plugins.module_utils._eligibility import libvirt_vm_eligibility
from ansible_collections.pagefusion.core.plugins.module_utils._fusion import (
    STEP_SET_DEFINITION,
    STEP_SET_FUSION,
    STEP_SHUTDOWN,
    STEP_START,
    FusionError,
    VmRecord,
)
from ansible_collections.pagefusion.core.plugins.module_utils._libvirt_xml import (
    GUEST_AGENT_PORT,
    agent_channel_state,
    apply_settings,
    definition_settings,
    domain_xml_text,
    guest_os,
    has_nosharepages,
    libosinfo_id,
    memory_backing_facts,
    os_info_from_agent,
    parse_domain_xml,
    set_nosharepages,
    tenant_label,
)
from ansible_collections.pagefusion.core.plugins.module_utils import _libvirt_qemu

try:
    import libvirt
except ImportError:
    libvirt = None
    HAS_LIBVIRT = False
else:
    HAS_LIBVIRT = True

try:
    import libvirt_qemu
except ImportError:
    libvirt_qemu = None

DEFAULT_URI = 'qemu:///system'

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
# A guest in these states cannot act on a graceful shutdown, and a restart would leave it running instead.
STATES_NOT_RESTARTABLE = (3, 7)  # paused, pmsuspended

# virDomainXMLFlags: SECURE keeps secrets (e.g. VNC passwords) so a redefine does not drop them.
XML_SECURE = 1
XML_INACTIVE = 2

POLL_INTERVAL = 0.25

# Seconds to wait for a guest agent answer (guest-get-osinfo) when the fallback API is used.
AGENT_TIMEOUT = 5
# virDomainGuestInfoTypes: VIR_DOMAIN_GUEST_INFO_OS (libvirt 5.7+).
GUEST_INFO_OS = 1 << 1


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


def _describe_setting(key, value):
    """One definition change as the actions show it."""
    if key == 'page_fusion':
        return ('without <memoryBacking><nosharepages/> (page fusion enabled)' if value
                else 'with <memoryBacking><nosharepages/> (page fusion disabled)')
    if key == 'guest_agent_channel':
        return ("%s the guest agent channel <channel type='unix'><target type='virtio' name='%s'/></channel>"
                % ('with' if value else 'without', GUEST_AGENT_PORT))
    if key == 'free_page_reporting':
        return ("with free page reporting <memballoon model='virtio' freePageReporting='on'/>" if value
                else "without free page reporting (no freePageReporting='on' on <memballoon>)")
    return '%s=%r' % (key, value)  # pragma: no cover - the module only passes supported settings


def _restart_blocker(name, state):
    """Why when_running=restart must refuse a VM in this state, or None (see vm.VmManager.plan)."""
    if state not in STATES_NOT_RESTARTABLE:
        return None
    wake = 'virsh resume' if state == 3 else 'virsh dompmwakeup'
    return ("VM '%s' is %s: it cannot act on a graceful shutdown, and a restart would leave it running instead of "
            "%s. Wake it (%s) or shut it down first, or use when_running=defer (change the definition now, apply "
            "at the next cold boot)." % (name, STATE_NAMES[state], STATE_NAMES[state], wake))


# ---------------------------------------------------------------------------------------------
# Backend

class LibvirtBackend(Backend):
    """Reads every domain once, then edits persistent definitions through one connection."""

    name = 'libvirt'
    can_defer = True
    supported_settings = ('guest_agent_channel', 'free_page_reporting')

    def __init__(self, uri=DEFAULT_URI, conn=None, sleep=time.sleep, clock=time.monotonic):
        self.uri = uri
        self.conn = conn if conn is not None else connect(uri)
        self._sleep = sleep
        self._clock = clock
        # free_page_reporting_support of this host, read once when needed.
        self._free_page_reporting = None

    def close(self):
        try:
            self.conn.close()
        except Exception:  # pylint: disable=broad-except
            pass

    def versions(self):
        info = {'uri': self.uri, 'libvirt_version': None, 'hypervisor': None, 'hypervisor_version': None}
        try:
            info['libvirt_version'] = version_string(self.conn.getLibVersion())
            info['hypervisor'] = self.conn.getType()
            info['hypervisor_version'] = version_string(self.conn.getVersion())
        except libvirt.libvirtError:
            pass
        info['free_page_reporting'] = _libvirt_qemu.free_page_reporting_support(
            info['libvirt_version'], info['hypervisor'], info['hypervisor_version'])
        return info

    def setting_refusal(self, key, value):
        """Why this host cannot take ``key=value`` (libvirt or QEMU too old), or None."""
        if key != 'free_page_reporting' or not value:
            return None
        if self._free_page_reporting is None:
            self._free_page_reporting = self.versions()['free_page_reporting']
        support = self._free_page_reporting
        if support['libvirt'] is False or support['qemu'] is False:
            return '; '.join(support['reasons'])
        return None

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
            settings=definition_settings(root),
            settings_live=None if live_root is None else definition_settings(live_root),
            details={'live_root': live_root, 'dom': dom, 'root': root, 'state': state, 'memory_backing': memory_backing_facts(root),
                     'domain_type': root.get('type'), 'restart_blocker': _restart_blocker(name, state)},
        )

    def eligibility(self, vm):
        return libvirt_vm_eligibility(vm.details['memory_backing'])

    def guest_os(self, vm):
        """The guest agent first, then the libosinfo metadata; never guessed."""
        return guest_os(self.agent_os_info(vm), vm.os_id)

    def usage_facts(self, sysfs, warn):
        """Per VM, what KSM does with its QEMU process on this host (null figures for a remote URI)."""
        local = _libvirt_qemu.local_qemu_processes(self.uri, self.conn, warn)
        return None, _libvirt_qemu.vms_ksm_facts(self.list_vms(), local, sysfs)

    # -- describing -----------------------------------------------------------------------------

    def describe_step(self, vm, step, arg, shutdown_timeout=None, force_off=False):
        if step == STEP_SHUTDOWN:
            text = "shut down '%s' gracefully (ACPI), wait up to %s s" % (vm.name, shutdown_timeout)
            return text + (', then power it off hard if it still runs' if force_off else '')
        if step == STEP_SET_FUSION:
            if arg:
                return "define '%s' without <memoryBacking><nosharepages/> (page fusion enabled)" % vm.name
            return "define '%s' with <memoryBacking><nosharepages/> (page fusion disabled)" % vm.name
        if step == STEP_SET_DEFINITION:
            keys = sorted(arg, key=lambda key: (key != 'page_fusion', key))  # page fusion first
            return "define '%s' %s" % (vm.name, ', '.join(_describe_setting(key, arg[key]) for key in keys))
        if step == STEP_START:
            return "start '%s' and wait until it runs" % vm.name
        raise ValueError(step)

    # -- changing -------------------------------------------------------------------------------

    def _redefine(self, vm, edit, not_kept):
        """Edit the persistent definition, define it, read it back and prove the edit held.

        ``edit(root)`` changes the parsed definition; ``not_kept(reread)`` says what libvirt did not keep
        (None when all is there). The read-back copy (with secrets, XML_SECURE) is what later edits start from.
        """
        root = vm.details['root']
        edit(root)
        try:
            self.conn.defineXML(domain_xml_text(root))
            reread = parse_domain_xml(vm.details['dom'].XMLDesc(XML_INACTIVE | XML_SECURE))
        except libvirt.libvirtError as exc:
            raise FusionError("libvirt refused the new definition of VM '%s' at '%s': %s. Its definition is unchanged."
                              % (vm.name, self.uri, _err(exc)))
        # A silently ignored re-define is a known libvirt pitfall.
        problem = not_kept(reread)
        if problem:
            raise FusionError("libvirt accepted the new definition of VM '%s' but %s" % (vm.name, problem))
        vm.details['root'] = reread

    def set_fusion(self, vm, enabled):
        self._redefine(
            vm, lambda root: set_nosharepages(root, not enabled),
            lambda reread: ("does not keep <nosharepages/> as asked; page fusion is still %s."
                            % ('disabled' if enabled else 'enabled')) if has_nosharepages(reread) == enabled else None)
        vm.fusion = enabled

    def set_definition(self, vm, changes):
        """Apply other definition settings (see _fusion.plan_vm), and ``page_fusion`` when the plan changes it too,
        to the persistent definition in one redefine."""
        def not_kept(reread):
            now = dict(definition_settings(reread), page_fusion=not has_nosharepages(reread))
            wrong = sorted(key for key, value in changes.items() if now.get(key) != value)
            return 'does not keep %s as asked.' % ', '.join(wrong) if wrong else None

        self._redefine(vm, lambda root: apply_settings(root, changes), not_kept)
        if 'page_fusion' in changes:
            vm.fusion = changes['page_fusion']
        vm.settings.update((key, value) for key, value in changes.items() if key != 'page_fusion')

    # -- the guest agent ------------------------------------------------------------------------

    def agent_os_info(self, vm):
        """The guest OS as the QEMU guest agent reports it, or None when no agent answers.

        Asked only of running domains whose live XML shows a connected agent channel, so a missing or silent
        agent costs nothing. Returns a dict with ``id``, ``name``, ``pretty_name``, ``version``,
        ``version_id``, ``kernel_release``, ``machine`` (missing ones are None).
        """
        live_root = vm.details.get('live_root')
        if live_root is None or agent_channel_state(live_root) != 'connected':
            return None
        dom = vm.details['dom']
        info = None
        if hasattr(dom, 'guestInfo'):
            try:
                raw = dom.guestInfo(GUEST_INFO_OS, 0)
            except libvirt.libvirtError:
                raw = None
            if raw:
                info = dict((key[3:], value) for key, value in raw.items() if key.startswith('os.'))
        if info is None and libvirt_qemu is not None:
            try:
                answer = libvirt_qemu.qemuAgentCommand(dom, '{"execute": "guest-get-osinfo"}', AGENT_TIMEOUT, 0)
                info = json.loads(answer).get('return') or None
            except (libvirt.libvirtError, ValueError, AttributeError):
                info = None
        return os_info_from_agent(info)

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
