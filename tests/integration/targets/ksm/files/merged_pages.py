# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Hold MIB MiB of identical, mergeable (MADV_MERGEABLE) pages in a detached child process: real pages for KSM to merge.

Usage: python3 merged_pages.py MIB [SECONDS]. Prints the child's pid once its memory is filled, then returns; the
child holds the memory until SIGTERM or SECONDS (default 1800, a bound for a test that died before its cleanup).
"""

from __future__ import annotations

import mmap
import os
import signal
import sys
import time


def hold(mib, seconds, report_fd):
    size = mib * 1024 * 1024
    # MAP_PRIVATE: KSM never merges shared mappings (Python's default).
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf.madvise(mmap.MADV_MERGEABLE)
    page = b'pagefusion-unmerge-test ' * (mmap.PAGESIZE // 24) + b'x' * (mmap.PAGESIZE % 24)
    for offset in range(0, size, mmap.PAGESIZE):
        buf[offset:offset + mmap.PAGESIZE] = page
    signal.signal(signal.SIGTERM, lambda *args: os._exit(0))
    os.write(report_fd, b'%d\n' % os.getpid())
    os.close(report_fd)
    time.sleep(seconds)
    os._exit(0)


def main():
    mib = int(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 1800.0
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)  # the caller waits for its output to close, not for the child
        try:
            hold(mib, seconds, write_fd)
        finally:
            os._exit(1)
    os.close(write_fd)
    with os.fdopen(read_fd, 'rb') as pipe:
        line = pipe.read().strip()
    if not line:
        sys.stderr.write('the child that holds the pages died before it was ready\n')
        sys.exit(1)
    print(line.decode('ascii'))


if __name__ == '__main__':
    main()
