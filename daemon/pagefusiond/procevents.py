# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The kernel's own counters as a near-free signal that processes or their memory moved.

Two small files tell pagefusiond, between its sweeps of /proc, whether a closer look can find anything:

* ``/proc/loadavg``: its last field is the pid the kernel handed out last (in the reader's pid
  namespace). It moves with every fork or clone, so a new process (a QEMU started by libvirt or by
  hand) shows as a new last pid;
* ``/proc/meminfo``: ``AnonPages`` grows when processes fault in anonymous memory (a guest booting,
  a process filling what it marked mergeable) and shrinks when they exit or free it.

Reading both costs a few tens of microseconds and needs no privilege, capability or network
namespace (unlike the netlink process connector, which needs CAP_NET_ADMIN in the initial network
namespace and an AF_NETLINK socket that the hardened unit's ``RestrictAddressFamilies`` refuses, and
which wakes the reader on every fork of the host). What the counters cannot see, a process that marks
memory it already has mergeable (madvise, prctl) without faulting in more, the slow sweep finds.
"""

from __future__ import annotations

import os

LOADAVG = 'loadavg'
MEMINFO = 'meminfo'


class ProcFile(object):
    """A /proc file kept open and re-read from its start with pread: the kernel regenerates the text on each read,
    and the look costs one system call instead of open, read and close (a few microseconds a look)."""

    def __init__(self, path, size):
        self.path = path
        self.size = size
        self.fd = None

    def read(self):
        """The file's text now (bytes); raises OSError when it cannot be read."""
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0))
        try:
            return os.pread(self.fd, self.size, 0)
        except OSError:
            self.close()
            raise

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def parse_last_pid(text):
    """The last pid of ``/proc/loadavg`` text (``0.00 0.01 0.05 1/123 4567``), or None."""
    try:
        return int(text.split()[4])
    except (IndexError, ValueError):
        return None


def parse_anon_pages(text):
    """``AnonPages`` of ``/proc/meminfo`` text, in KiB, or None."""
    start = text.find(b'\nAnonPages:')
    if start < 0:
        return None
    try:
        return int(text[start + 11:text.index(b'kB', start)])
    except ValueError:
        return None


class KernelCounters(object):
    """Tells whether the last pid or the anonymous memory of the host moved since the last :meth:`moved`.

    ``threshold_kib``: how far AnonPages must move (either way) to count. ``available`` is False when
    neither file can be read (then every look counts as moved, and the watcher falls back to looking).
    """

    name = 'kernel counters (/proc/loadavg last pid, /proc/meminfo AnonPages)'

    def __init__(self, proc_root):
        self.proc_root = proc_root
        self.loadavg = ProcFile(os.path.join(proc_root, LOADAVG), 128)
        # AnonPages is in the first ~600 bytes of meminfo on every kernel since 2.6.18
        self.meminfo = ProcFile(os.path.join(proc_root, MEMINFO), 1024)
        self.last_pid = None
        self.anon_kib = None
        self.available = self.read() != (None, None)

    def read(self):
        """``(last_pid, anon_kib)`` now; None for what cannot be read."""
        try:
            last_pid = parse_last_pid(self.loadavg.read())
        except OSError:
            last_pid = None
        try:
            anon = parse_anon_pages(self.meminfo.read())
        except OSError:
            anon = None
        return last_pid, anon

    def mark(self, values=None):
        """Remember ``values`` (from :meth:`read` taken before a full look at the processes), or the counters now."""
        self.last_pid, self.anon_kib = values if values is not None else self.read()

    def moved(self, threshold_kib):
        """Why a closer look is worth it (a new pid, anonymous memory moved), or None; remembers the new values."""
        last_pid, anon = self.read()
        reasons = []
        if last_pid is None or last_pid != self.last_pid:
            reasons.append('pid')
            self.last_pid = last_pid
        if anon is None or self.anon_kib is None or abs(anon - self.anon_kib) >= max(threshold_kib, 1):
            reasons.append('memory')
            self.anon_kib = anon
        return '+'.join(reasons) or None
