# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one place where the daemon reaches the collection's own modules.

``_ksm`` is the KSM model the Ansible modules use too; ``_daemon_state`` the state-file path and
reader that ``fusion_facts`` shares; ``_unmerge_fit`` whether an unmerge fits in MemAvailable.
Imported as part of the collection (the unit tests under ansible-test), they come from its
module_utils; run by the launcher (``__main__.py``), they are top-level modules that the launcher found next to the package or in ``../plugins/module_utils``.
"""

from __future__ import annotations

try:
    from ansible_collections.pagefusion.core.plugins.module_utils import _daemon_state, _ksm, _thp, _unmerge_fit
except ImportError:  # run by the launcher: __main__.py put their directory on sys.path
    import _daemon_state  # type: ignore[no-redef]
    import _ksm  # type: ignore[no-redef]
    import _thp  # type: ignore[no-redef]
    import _unmerge_fit  # type: ignore[no-redef]

__all__ = ['_daemon_state', '_ksm', '_thp', '_unmerge_fit']
