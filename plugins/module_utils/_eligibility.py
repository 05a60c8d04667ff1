# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Eligibility rules for page fusion, in one place for every backend.

Private module_utils of pagefusion.core. Pure functions: they take facts and return
``(eligible, reasons)`` where ``reasons`` explains every "no" in words an operator can act on.
"""

from __future__ import annotations

import re

# Machine names (os.uname().machine) of 64-bit CPUs.
_64BIT_MACHINES = frozenset(('x86_64', 'amd64', 'aarch64', 'arm64', 'ppc64', 'ppc64le', 's390x',
                             'riscv64', 'loongarch64', 'mips64', 'sparc64'))

LIBOSINFO_NS = 'http://libosinfo.org/xmlns/libvirt/domain/1.0'


def machine_bits(machine):
    """64 or 32 from a machine name such as ``x86_64`` or ``i686``."""
    return 64 if (machine or '').lower() in _64BIT_MACHINES else 32


def ksm_host_eligibility(system, ksm_present):
    """Linux KSM hosts (libvirt/KVM): Linux with /sys/kernel/mm/ksm."""
    reasons = []
    if system != 'Linux':
        reasons.append('host OS is %s: KSM page sharing exists only on Linux' % system)
    elif not ksm_present:
        reasons.append('the kernel has no KSM (/sys/kernel/mm/ksm is missing): it needs CONFIG_KSM=y')
    return not reasons, reasons


def libvirt_vm_eligibility(memory_backing):
    """A libvirt domain can have its memory merged by KSM unless its RAM is shared or file-backed.

    ``memory_backing`` is a dict read from the domain's ``<memoryBacking>`` element:
    ``hugepages`` (bool), ``source`` (memfd/file/anonymous or None), ``access`` (shared/private or None).
    KSM only merges private anonymous memory, so shared access, memfd/file sources and hugepages never merge.
    """
    reasons = []
    if memory_backing.get('hugepages'):
        reasons.append('guest RAM is backed by huge pages, which KSM does not merge')
    if memory_backing.get('access') == 'shared':
        reasons.append("guest RAM uses <access mode='shared'/> (MAP_SHARED), which KSM never merges")
    if memory_backing.get('source') in ('file', 'memfd'):
        reasons.append("guest RAM is %s-backed (<source type='%s'/>), which KSM never merges"
                       % (memory_backing['source'], memory_backing['source']))
    return not reasons, reasons


def is_windows_libosinfo(os_id):
    """libosinfo OS ids of Microsoft Windows (e.g. http://microsoft.com/win/10)."""
    return bool(os_id) and os_id.startswith('http://microsoft.com/win')


# ---------------------------------------------------------------------------------------------
# VirtualBox Page Fusion
#
# Sources (see FACTS.md section 1): the manual's guestadd-pagefusion topic (64-bit hosts, not macOS,
# Windows 2000 and later guests), include/VBox/param.h (VBOX_WITH_PAGE_SHARING only for 64-bit
# FreeBSD/Linux/Solaris/Windows hosts; trunk: AMD64 only), src/VBox/Main/src-all/Global.cpp (guest OS
# type ids) and https://github.com/VirtualBox/virtualbox/issues/268 (7.2 cannot switch it at all).

VBOX_ISSUE_72_URL = 'https://github.com/VirtualBox/virtualbox/issues/268'
# First release whose Page Fusion setting is broken; every later release is treated alike until fixed.
VBOX_BROKEN_FROM = (7, 2)
# Page Fusion appeared in VirtualBox 3.2.
VBOX_PAGE_FUSION_SINCE = (3, 2)
# platform.system() names of the host OSes VirtualBox builds page sharing for.
VBOX_HOST_SYSTEMS = frozenset(('Linux', 'Windows', 'FreeBSD', 'SunOS'))
_VBOX_AMD64_MACHINES = frozenset(('x86_64', 'amd64', 'x64'))

# Windows guest types older than Windows 2000 (Global.cpp ids -> descriptions).
VBOX_PRE_2000_WINDOWS = {
    'windows31': 'Windows 3.1',
    'windows95': 'Windows 95',
    'windows98': 'Windows 98',
    'windowsme': 'Windows ME',
    'windowsnt3x': 'Windows NT 3.x',
    'windowsnt4': 'Windows NT 4',
}


def vbox_version_tuple(value):
    """``(major, minor, build)`` from ``7.1.12r169651``, ``6.1.50_Debianr161033``, a tuple, or None.

    Lines before the version (VBoxManage sometimes prints warnings first) are skipped.
    """
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        try:
            numbers = tuple(int(part) for part in value)
        except (TypeError, ValueError):
            return None
        return (numbers + (0, 0, 0))[:3] if len(numbers) >= 2 else None
    found = None
    for line in str(value).splitlines():
        match = re.match(r'\s*(\d+)\.(\d+)(?:\.(\d+))?', line)
        if match:
            found = (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))
    return found


def _version_text(version):
    if isinstance(version, (tuple, list)):
        return '.'.join(str(part) for part in version)
    return str(version).strip()


def vbox_version_support(version):
    """Can this VirtualBox release switch Page Fusion? ``(supported, reason or None)``."""
    numbers = vbox_version_tuple(version)
    if numbers is None:
        return False, 'the VirtualBox version could not be read (VBoxManage --version printed %r)' % (version,)
    shown = '%d.%d.%d' % numbers
    if numbers[:2] >= VBOX_BROKEN_FROM:
        return False, ('VirtualBox %s cannot switch Page Fusion: "VBoxManage modifyvm --page-fusion" fails with '
                       '"Page fusion is only supported on 64-bit hosts" (NS_ERROR_NOT_IMPLEMENTED) even on 64-bit '
                       'hosts, a known regression of VirtualBox 7.2 (%s); VirtualBox 7.1 works. '
                       'The setting is reported, not changed.' % (shown, VBOX_ISSUE_72_URL))
    if numbers[:2] < VBOX_PAGE_FUSION_SINCE:
        return False, 'VirtualBox %s predates Page Fusion, which appeared in VirtualBox 3.2' % shown
    return True, None


def vbox_host_eligibility(machine, system):
    """Can VirtualBox on this host use Page Fusion at all? ``(eligible, reasons)``.

    ``machine`` and ``system`` are ``platform.machine()`` and ``platform.system()`` of the host.
    """
    reasons = []
    machine_name = (machine or '').lower()
    if system == 'Darwin':
        reasons.append('macOS hosts cannot use VirtualBox Page Fusion: VirtualBox builds page sharing only for '
                       '64-bit FreeBSD, Linux, Solaris and Windows hosts')
    elif system not in VBOX_HOST_SYSTEMS:
        reasons.append('host OS is %s: VirtualBox builds Page Fusion only for 64-bit FreeBSD, Linux, Solaris and '
                       'Windows hosts' % (system or 'unknown'))
    if machine_bits(machine_name) == 32:
        reasons.append('host CPU is %s (32-bit): VirtualBox Page Fusion is only supported on 64-bit hosts'
                       % (machine or 'unknown'))
    elif machine_name not in _VBOX_AMD64_MACHINES:
        reasons.append('host CPU is %s: VirtualBox builds Page Fusion only for x86-64 (AMD64) hosts' % machine)
    return not reasons, reasons


def vbox_guest_eligibility(os_type_id):
    """Can this VirtualBox guest OS type share pages? ``(eligible, reasons)``.

    Page Fusion needs Windows 2000 or later: the Guest Additions' page sharing service that
    registers the guest's modules with the host exists only for Windows.
    """
    if not os_type_id:
        return False, ['the guest OS type is unknown; VirtualBox Page Fusion works only with Windows 2000 or later '
                       'guests']
    type_id = str(os_type_id)
    lowered = type_id.lower()
    arm64 = lowered.endswith('_arm64')
    base = lowered[:-len('_arm64')] if arm64 else (lowered[:-len('_64')] if lowered.endswith('_64') else lowered)
    if not base.startswith('windows'):
        return False, ["guest OS type '%s' is not Windows: VirtualBox Page Fusion only works with Windows 2000 or "
                       "later guests (the Guest Additions' page sharing service exists only for Windows)" % type_id]
    if base in VBOX_PRE_2000_WINDOWS:
        return False, ["guest OS type '%s' (%s) is older than Windows 2000, which VirtualBox Page Fusion needs"
                       % (type_id, VBOX_PRE_2000_WINDOWS[base])]
    if arm64:
        return False, ["guest OS type '%s' is an ARM64 guest: VirtualBox builds Page Fusion only for x86-64 hosts "
                       "and guests" % type_id]
    return True, []
