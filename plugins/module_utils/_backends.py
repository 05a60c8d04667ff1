# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Picks and opens a backend for a module, in one place. Private module_utils of pagefusion.core.

What a backend offers once it is open is written down in ``_backend_api.Backend``.
"""

from __future__ import annotations

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.pagefusion.core.plugins.module_utils._fusion import FusionError
from ansible_collections.pagefusion.core.plugins.module_utils import _libvirt

BACKEND_CHOICES = ('auto', 'libvirt', 'virtualbox')

BACKEND_ARGS = dict(
    backend=dict(type='str', default='auto', choices=list(BACKEND_CHOICES)),
    uri=dict(type='str', default=_libvirt.DEFAULT_URI),
)

# How problems name each backend; backend=auto tries them in this order (KVM hosts are the common case).
LABELS = (('libvirt', 'libvirt'), ('virtualbox', 'VirtualBox'))


def libvirt_installed():
    """Whether libvirt-python can be imported on this host."""
    return _libvirt.HAS_LIBVIRT


def _open_virtualbox(module, **options):
    # Imported here so libvirt-only hosts never load the VirtualBox code.
    from ansible_collections.pagefusion.core.plugins.module_utils._vbox import VirtualBoxBackend
    return VirtualBoxBackend(module, **options)


def _try_open(module, name, host):
    """``(backend, None)``, or ``(None, why it cannot be opened)``."""
    try:
        if name == 'libvirt':
            if not _libvirt.HAS_LIBVIRT:
                return None, 'libvirt-python is not installed'
            return _libvirt.LibvirtBackend(module.params['uri']), None
        options = {} if host is None else {'host_machine': host['machine'], 'host_system': host['system']}
        return _open_virtualbox(module, **options), None
    except FusionError as exc:
        return None, str(exc)


def _fail(module, name, problems):
    if name == 'auto':
        module.fail_json(msg='backend=auto found no usable hypervisor backend: %s'
                             % ' | '.join(reason for _label, reason in problems))
    if name == 'libvirt' and not _libvirt.HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib('libvirt-python', reason='for backend=libvirt'))
    module.fail_json(msg=problems[0][1])


def open_backend(module, name=None, required=True, host=None):
    """Open the backend ``name`` (default: the module's ``backend`` option) for its ``uri``.

    ``auto`` tries libvirt, then VirtualBox; ``none`` opens nothing. ``host`` is the platform
    (``machine``, ``system``) that VirtualBox's host rules check, this host when None.
    Returns ``(backend, [])``, or ``(None, problems)`` with ``problems`` a list of
    ``(label, reason)``. When ``required``, a backend that cannot be opened fails the module
    clearly instead (``missing_required_lib`` when libvirt-python is missing for backend=libvirt).
    """
    name = name or module.params['backend']
    if name == 'none':
        return None, []
    problems = []
    for candidate, label in LABELS:
        if name in ('auto', candidate):
            backend, reason = _try_open(module, candidate, host)
            if backend is not None:
                return backend, []
            problems.append((label, reason))
    if required:
        _fail(module, name, problems)
    return None, problems
