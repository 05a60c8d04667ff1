# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""libvirt domain XML, read and edited: page fusion (<nosharepages/>), the guest agent channel, free page
reporting of the virtio balloon, metadata.

Private module_utils of pagefusion.core; its API may change at any time.

Pure functions over parsed definitions (xml.etree); they import without libvirt-python. Every edit
leaves the elements it does not manage as they were. The backend that talks to libvirt is in ``_libvirt``.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

from ansible_collections.pagefusion.core.plugins.module_utils._eligibility import LIBOSINFO_NS
from ansible_collections.pagefusion.core.plugins.module_utils._fusion import FusionError

# Namespace of pagefusion.core's own domain metadata, e.g. the tenant label:
#   virsh metadata DOMAIN --uri urn:pagefusion:core:1 --key pagefusion --set "<tenant name='acme'/>"
TENANT_NS = 'urn:pagefusion:core:1'

# The QEMU guest agent's virtio-serial port name (qemu-guest-agent listens on it inside the guest).
GUEST_AGENT_PORT = 'org.qemu.guest_agent.0'


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


def _agent_channels(root):
    found = []
    devices = root.find('./devices')
    if devices is None:
        return devices, found
    for channel in devices.findall('./channel'):
        target = channel.find('./target')
        if target is not None and target.get('type') == 'virtio' and target.get('name') == GUEST_AGENT_PORT:
            found.append(channel)
    return devices, found


def has_agent_channel(root):
    """Whether the domain has the QEMU guest agent's virtio-serial channel."""
    return bool(_agent_channels(root)[1])


def agent_channel_state(root):
    """'connected' or 'disconnected' as libvirt reports it in the live XML; None when unknown or absent."""
    for channel in _agent_channels(root)[1]:
        return channel.find('./target').get('state')
    return None


def set_agent_channel(root, present):
    """Add or remove ``<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>``.

    libvirt picks the socket path and adds the virtio-serial controller itself. Every other element is left
    alone. Returns True when the tree changed.
    """
    devices, channels = _agent_channels(root)
    if present:
        if channels:
            return False
        if devices is None:
            devices = ET.SubElement(root, 'devices')
        channel = ET.SubElement(devices, 'channel', {'type': 'unix'})
        ET.SubElement(channel, 'target', {'type': 'virtio', 'name': GUEST_AGENT_PORT})
        return True
    for channel in channels:
        devices.remove(channel)
    return bool(channels)


def _balloons(root):
    devices = root.find('./devices')
    return devices, ([] if devices is None else devices.findall('./memballoon'))


def _is_virtio_balloon(balloon):
    # virtio, virtio-transitional, virtio-non-transitional: all carry free page reporting (libvirt 6.9+).
    return (balloon.get('model') or '').startswith('virtio')


def has_free_page_reporting(root):
    """Whether the domain's virtio balloon has ``freePageReporting='on'`` (libvirt's default is off)."""
    return any(_is_virtio_balloon(b) and b.get('freePageReporting') == 'on' for b in _balloons(root)[1])


def set_free_page_reporting(root, enabled):
    """Switch ``<memballoon model='virtio' freePageReporting='on'/>``. Returns True when the tree changed.

    On: a VM without a balloon (or with ``model='none'``) gets a virtio one; the balloon's other attributes and
    children (its address, stats period) stay as they were. Off: the attribute goes (libvirt's default is off),
    the balloon stays.
    """
    if has_free_page_reporting(root) == enabled:
        return False
    devices, balloons = _balloons(root)
    if not enabled:
        for balloon in balloons:
            balloon.attrib.pop('freePageReporting', None)
        return True
    if devices is None:
        devices = ET.SubElement(root, 'devices')
    if not balloons:
        balloons = [ET.SubElement(devices, 'memballoon')]
    balloon = balloons[0]
    if not _is_virtio_balloon(balloon):
        balloon.set('model', 'virtio')
    balloon.set('freePageReporting', 'on')
    return True


# The definition settings besides page fusion, how each is read and how each is set.
SETTINGS = {
    'guest_agent_channel': (has_agent_channel, set_agent_channel),
    'free_page_reporting': (has_free_page_reporting, set_free_page_reporting),
}


def definition_settings(root):
    """The definition settings besides page fusion that this backend manages (see _fusion.plan_vm)."""
    return dict((key, read(root)) for key, (read, _write) in SETTINGS.items())


def apply_settings(root, changes):
    """Apply ``{setting: value}`` to a parsed domain definition. Returns True when the tree changed.

    ``page_fusion`` may be among them, so that one redefine carries every change of a plan.
    """
    changed = False
    for key, value in changes.items():
        if key == 'page_fusion':
            changed = set_nosharepages(root, not value) or changed
        elif key in SETTINGS:
            changed = SETTINGS[key][1](root, value) or changed
        else:  # pragma: no cover - the module only passes supported settings
            raise FusionError('the libvirt backend cannot set %s' % key)
    return changed


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


def os_info_from_agent(info):
    """Normalize the agent's guest-get-osinfo answer (virDomainGuestInfo ``os.*`` or the raw QMP reply)."""
    if not info:
        return None
    keys = ('id', 'name', 'pretty-name', 'version', 'version-id', 'kernel-release', 'machine')
    result = dict((key.replace('-', '_'), info.get(key) or None) for key in keys)
    if not any(result.values()):
        return None
    return result


def guest_os(agent_info, libosinfo):
    """Where the guest OS comes from: the agent first, then the libosinfo metadata, else unknown.

    Returns ``(os_id, os_source, os_name)``; never guesses: with neither source all three are None.
    """
    if agent_info and agent_info.get('id'):
        return agent_info['id'], 'agent', agent_info.get('pretty_name') or agent_info.get('name')
    if libosinfo:
        return libosinfo, 'libosinfo', None
    return None, None, None
