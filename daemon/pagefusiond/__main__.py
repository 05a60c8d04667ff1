# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The launcher of pagefusiond: ``python3 <dir>/pagefusiond [options]`` runs this file.

Python runs a directory that holds a ``__main__.py`` with that directory first on ``sys.path``
and without a package. This launcher, the only place that touches ``sys.path``, makes two things
importable before it hands over to :func:`pagefusiond.cli.main`:

* the package itself, by its name: the directory that holds the package directory goes first
  on ``sys.path`` (and the package directory goes off it, so that its modules are not also
  importable as top-level modules);
* the collection's ``_ksm.py``, ``_daemon_state.py``, ``_unmerge_fit.py`` and ``_thp.py`` (imported in :mod:`.collection` only):
  installed by the role ``pagefusion.core.host_daemon``, they sit next to the package
  (``/usr/lib/pagefusiond/{pagefusiond/,_ksm.py,_daemon_state.py,_unmerge_fit.py,_thp.py}``); in a checkout of the
  collection they are in ``../plugins/module_utils`` seen from ``daemon/``.
"""

from __future__ import annotations

import importlib
import os
import sys

COLLECTION_FILES = ('_ksm.py', '_daemon_state.py', '_unmerge_fit.py', '_thp.py')


def _find_collection_modules(parent):
    """The directory holding the collection's files the daemon imports, or None."""
    for candidate in (parent, os.path.join(parent, os.pardir, 'plugins', 'module_utils')):
        if all(os.path.isfile(os.path.join(candidate, name)) for name in COLLECTION_FILES):
            return os.path.abspath(candidate)
    return None


def _make_importable():
    """Put the package's parent directory and the collection's modules on ``sys.path``; returns the package name."""
    package_dir = os.path.dirname(os.path.realpath(__file__))
    parent = os.path.dirname(package_dir)
    modules = _find_collection_modules(parent)
    if modules is None:
        sys.stderr.write('pagefusiond: cannot find %s next to %s or in ../plugins/module_utils\n'
                         % (' and '.join(COLLECTION_FILES), package_dir))
        sys.exit(1)
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != package_dir]
    for path in (modules, parent):
        if path not in sys.path:
            sys.path.insert(0, path)
    return os.path.basename(package_dir)


if __name__ == '__main__':
    cli = importlib.import_module(_make_importable() + '.cli')
    sys.exit(cli.main())
