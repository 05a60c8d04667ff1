# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The machine-wide KSM test lock (:data:`LOCK_PATH`, flock), re-entrant across processes.

Tests that drive the real KSM take ``flock /tmp/pagefusion-ksm.lock``. A caller may already hold
it around a whole run (``flock /tmp/pagefusion-ksm.lock ./dev integration ...``): taking it again
from a child would wait forever, so :func:`acquire` first checks /proc/locks for a holder among
this process's ancestors.

    python -m pagefusion_dev.ksm_lock --ancestor-holds [PATH]   # exit 0 when an ancestor holds the lock
    python -m pagefusion_dev.ksm_lock --path                    # print the lock's path (for shell scripts)
"""

from __future__ import annotations

import fcntl
import os
import sys

LOCK_PATH = '/tmp/pagefusion-ksm.lock'


def _ancestors():
    pid = os.getpid()
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            with open('/proc/%d/stat' % pid) as handle:
                pid = int(handle.read().rsplit(')', 1)[1].split()[1])
        except (IOError, OSError, ValueError, IndexError):
            break
    return seen


def ancestor_holds(path=LOCK_PATH):
    """True when a process among our ancestors holds a flock on ``path``."""
    try:
        st = os.stat(path)
        with open('/proc/locks') as handle:
            lines = handle.read().splitlines()
    except (IOError, OSError):
        return False
    ancestors = _ancestors()
    for line in lines:
        fields = line.split()
        if 'FLOCK' not in fields:
            continue
        try:
            index = fields.index('FLOCK')
            pid = int(fields[index + 3])
            dev_inode = fields[index + 4].split(':')
            inode = int(dev_inode[2])
        except (ValueError, IndexError):
            continue
        if inode == st.st_ino and pid in ancestors:
            return True
    return False


def acquire(path=LOCK_PATH):
    """Take the lock (blocking) unless an ancestor already holds it. Returns the open file, or None."""
    handle = open(path, 'a')
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return handle
    except (IOError, OSError):
        pass
    if ancestor_holds(path):
        handle.close()
        return None
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def main(argv):
    if len(argv) >= 1 and argv[0] == '--ancestor-holds':
        return 0 if ancestor_holds(argv[1] if len(argv) > 1 else LOCK_PATH) else 1
    if argv == ['--path']:
        print(LOCK_PATH)
        return 0
    sys.stderr.write('usage: python -m pagefusion_dev.ksm_lock --ancestor-holds [PATH] | --path\n')
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
