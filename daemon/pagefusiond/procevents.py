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
namespace. What the counters cannot see, a process that marks memory it already has mergeable
(madvise, prctl) without faulting in more, the slow sweep finds.

The kernel process connector (:class:`ProcConnector`, a netlink socket) tells the daemon when a process
starts, so a host at rest needs no look at all to notice one; it needs CAP_NET_ADMIN in the initial user and
network namespaces (refused in containers), and on a host that forks all the time it would wake the daemon
too often, so it gives way to the timed looks there.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
import time

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


# The kernel process connector (linux/connector.h, linux/cn_proc.h): netlink messages on every fork, exec and exit.
NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
NLMSG_DONE = 3
PROC_EVENT_FORK = 0x00000001
PROC_EVENT_EXEC = 0x00000002
_NLMSG = struct.Struct('=IHHII')       # len, type, flags, seq, pid
_CN_MSG = struct.Struct('=IIIIHH')     # idx, val, seq, ack, len, flags
_EVENT = struct.Struct('=IIQ')         # what, cpu, timestamp_ns
_FORK = struct.Struct('=IIII')         # parent pid, parent tgid, child pid, child tgid
# A host that forks more than this many processes in ``RATE_WINDOW`` seconds is cheaper to look at on a timer.
RATE_LIMIT = 500
RATE_WINDOW = 10.0


def count_new_processes(data):
    """New processes (forks of a whole process, not threads; execs) in one netlink datagram of the connector."""
    count = 0
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length = _NLMSG.unpack_from(data, offset)[0]
        event = offset + _NLMSG.size + _CN_MSG.size
        if length < _NLMSG.size or event + _EVENT.size > len(data):
            break
        what = _EVENT.unpack_from(data, event)[0]
        if what == PROC_EVENT_EXEC:
            count += 1
        elif what == PROC_EVENT_FORK and event + _EVENT.size + _FORK.size <= len(data):
            child_pid, child_tgid = _FORK.unpack_from(data, event + _EVENT.size)[2:]
            count += child_pid == child_tgid  # a thread (QEMU starts many) shares its process's memory
        offset += (length + 3) & ~3  # NLMSG_ALIGN
    return count


class ProcConnector(object):
    """Wakes the daemon when a process starts, through the kernel process connector: no look until one does.

    Needs CAP_NET_ADMIN in the initial user and network namespaces and an AF_NETLINK socket (the unit allows
    both); elsewhere (a container, an unprivileged run) :meth:`open` says why not and the daemon keeps its timed
    looks. ``on_new`` runs in the connector's thread, at most once every ``gap`` seconds; a host that starts more
    than ``RATE_LIMIT`` processes in ``RATE_WINDOW`` seconds is looked at on the timer instead (the thread stops).
    """

    name = 'the kernel process connector (fork and exec)'

    def __init__(self, on_new, log, gap=0.25, clock=time.monotonic):
        self.on_new = on_new
        self.log = log
        self.gap = gap
        self.clock = clock
        self.sock = None
        self.error = None
        self.stopped = False

    def open(self):
        """Subscribe to the connector; False (``error`` says why) when the kernel or the sandbox refuses."""
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        except (OSError, AttributeError, ValueError) as err:
            self.error = 'no netlink connector socket (%s)' % err
            return False
        try:
            sock.bind((0, CN_IDX_PROC))
            listen = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, 4, 0) + struct.pack('=I', PROC_CN_MCAST_LISTEN)
            sock.send(_NLMSG.pack(_NLMSG.size + len(listen), NLMSG_DONE, 0, 0, 0) + listen)
        except OSError as err:
            sock.close()
            self.error = 'the process connector refused the subscription (%s; it needs CAP_NET_ADMIN in the ' \
                         'initial namespaces)' % err
            return False
        self.sock = sock
        return True

    def start(self):
        """Open and start the thread; False when the connector cannot be used."""
        if not self.open():
            return False
        threading.Thread(target=self._run, name='proc-connector', daemon=True).start()
        return True

    def _run(self):
        sock = self.sock  # close() from the main thread sets self.sock to None; the closed socket then raises here
        window_start, events = self.clock(), 0
        while not self.stopped:
            try:
                data = sock.recv(65536)
            except OSError as err:
                if err.errno == errno.ENOBUFS:  # the kernel dropped events: something started
                    self.on_new()
                    continue
                if not self.stopped:
                    self.log('process connector: %s: looking on the timer only' % err)
                break
            new = count_new_processes(data)
            if not new:
                continue
            now = self.clock()
            if now - window_start > RATE_WINDOW:
                window_start, events = now, 0
            events += new
            if events > RATE_LIMIT:
                self.log('process connector: more than %d processes started in %gs: looking on the timer only' % (
                    RATE_LIMIT, RATE_WINDOW))
                break
            self.on_new()
            time.sleep(self.gap)  # what starts meanwhile waits in the socket: one look covers it
            self._drain(sock)
        self.close()

    @staticmethod
    def _drain(sock):
        while True:
            try:
                sock.recv(65536, socket.MSG_DONTWAIT)
            except OSError:
                return

    def close(self):
        self.stopped = True
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
