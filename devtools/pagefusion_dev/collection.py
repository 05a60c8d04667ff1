# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The collection checkout these helpers serve: its one KSM model and the paths of its programs.

The paths follow whichever copy of ``ansible_collections.pagefusion.core`` Python imported (./dev setup makes
the work tree importable under that name in .venv), so a tool always runs the daemon of the code it measures.
"""

import os

from ansible_collections.pagefusion.core.plugins.module_utils import _ksm

ROOT = os.path.realpath(os.path.join(os.path.dirname(_ksm.__file__), os.pardir, os.pardir))
DAEMON = os.path.join(ROOT, 'daemon', 'pagefusiond')
PF_TESTGUEST = os.path.join(ROOT, 'tests', 'setup', 'pf_testguest.py')
