# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Eligibility rules for page fusion, in one place for every backend.

Private module_utils of pagefusion.core. Pure functions: they take facts and return
``(eligible, reasons)`` where ``reasons`` explains every "no" in words an operator can act on.
"""

from __future__ import annotations

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
