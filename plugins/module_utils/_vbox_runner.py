# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Runs VBoxManage: argument lists (never a shell), the C locale, the exact argv of every command kept.

Private module_utils of pagefusion.core; its API may change at any time.
"""

from __future__ import annotations

import shlex

from ansible_collections.pagefusion.core.plugins.module_utils._fusion import FusionError
from ansible_collections.pagefusion.core.plugins.module_utils._vbox_parse import error_text, parse_version

VBOXMANAGE = 'VBoxManage'
NOT_FOUND_MSG = 'VBoxManage not found on PATH; install VirtualBox or use backend=libvirt'
LOCALE_ENV = {'LC_ALL': 'C', 'LANG': 'C', 'LANGUAGE': 'C'}


class VBoxManageError(FusionError):
    """A VBoxManage command failed. Carries the argv, exit code and output."""

    def __init__(self, msg, argv=None, rc=None, stdout='', stderr=''):
        super(VBoxManageError, self).__init__(msg)
        self.argv = argv
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr


class VBoxManageRunner(object):
    """Runs VBoxManage argument lists through the module, under the C locale.

    ``actions`` is the exact argv of every command that ran, in order; ``changes`` only those
    that change something (modifyvm, controlvm, startvm, ...).
    """

    def __init__(self, module, binary=None):
        self.module = module
        self.binary = binary or module.get_bin_path(VBOXMANAGE, required=False)
        self.actions = []
        self.changes = []
        self._version_output = None

    @property
    def available(self):
        return bool(self.binary)

    def require(self):
        if not self.binary:
            raise FusionError(NOT_FOUND_MSG)

    def argv(self, args):
        self.require()
        return [self.binary] + [str(arg) for arg in args]

    def run(self, args, check=True, changes=False):
        """Run ``VBoxManage <args>``; returns ``(rc, stdout, stderr)``.

        With ``check`` a non-zero exit raises :class:`VBoxManageError` naming the command.
        """
        argv = self.argv(args)
        self.actions.append(argv)
        if changes:
            self.changes.append(argv)
        rc, out, err = self.module.run_command(argv, environ_update=dict(LOCALE_ENV))
        if check and rc != 0:
            raise VBoxManageError('%s failed (exit code %s): %s' % (shlex.join(argv), rc, error_text(err or out)),
                                  argv=argv, rc=rc, stdout=out, stderr=err)
        return rc, out, err

    def version_output(self):
        if self._version_output is None:
            _rc, out, _err = self.run(['--version'])
            self._version_output = out.strip()
        return self._version_output

    def version(self):
        """``(major, minor, build)`` of the installed VirtualBox, or None when unreadable."""
        return parse_version(self.version_output())
