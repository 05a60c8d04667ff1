# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Picks and opens a backend for a module. Private module_utils of pagefusion.core."""

from __future__ import annotations

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.pagefusion.core.plugins.module_utils._fusion import FusionError
from ansible_collections.pagefusion.core.plugins.module_utils import _libvirt

BACKEND_CHOICES = ('auto', 'libvirt', 'virtualbox')

BACKEND_ARGS = dict(
    backend=dict(type='str', default='auto', choices=list(BACKEND_CHOICES)),
    uri=dict(type='str', default=_libvirt.DEFAULT_URI),
)


def _open_virtualbox(module):
    # Imported here so libvirt-only hosts never load the VirtualBox code.
    from ansible_collections.pagefusion.core.plugins.module_utils._vbox import VirtualBoxBackend
    return VirtualBoxBackend(module)


def open_backend(module):
    """Return an opened backend for the module's ``backend``/``uri`` options, or fail_json clearly."""
    wanted = module.params['backend']
    uri = module.params['uri']
    if wanted == 'libvirt':
        if not _libvirt.HAS_LIBVIRT:
            module.fail_json(msg=missing_required_lib('libvirt-python', reason='for backend=libvirt'))
        try:
            return _libvirt.LibvirtBackend(uri)
        except FusionError as exc:
            module.fail_json(msg=str(exc))
    if wanted == 'virtualbox':
        try:
            return _open_virtualbox(module)
        except FusionError as exc:
            module.fail_json(msg=str(exc))
    # auto: libvirt first (KVM hosts are the common case), then VirtualBox.
    problems = []
    if _libvirt.HAS_LIBVIRT:
        try:
            return _libvirt.LibvirtBackend(uri)
        except FusionError as exc:
            problems.append(str(exc))
    else:
        problems.append('libvirt-python is not installed')
    try:
        return _open_virtualbox(module)
    except FusionError as exc:
        problems.append(str(exc))
    module.fail_json(msg='backend=auto found no usable hypervisor backend: %s' % ' | '.join(problems))
