# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):

    # Options shared by every module that talks to a hypervisor.
    DOCUMENTATION = r'''
options:
  backend:
    description:
      - Which hypervisor API to use.
      - V(auto) uses libvirt when libvirt-python is installed and O(uri) answers, otherwise VirtualBox
        when C(VBoxManage) is on the PATH.
    type: str
    choices: [auto, libvirt, virtualbox]
    default: auto
  uri:
    description:
      - libvirt connection URI, for example V(qemu:///system), V(qemu+ssh://root@host/system) or
        V(test:///default).
      - Ignored by the VirtualBox backend.
    type: str
    default: qemu:///system
requirements:
  - libvirt-python (for the libvirt backend), on the managed host
  - VirtualBox's C(VBoxManage) (for the VirtualBox backend), on the managed host
'''

    # The attributes every pagefusion.core module documents.
    ATTRIBUTES = r'''
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
'''
