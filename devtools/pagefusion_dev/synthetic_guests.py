#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Synthetic KSM "guests" for pagefusion.core's tests and benchmarks (Python 3 standard library only).

One process per guest maps G MiB of private anonymous memory, marks it mergeable
(``madvise(MADV_MERGEABLE)``), fills it from a seeded content model and signals ready, then
optionally keeps rewriting its volatile part. Page classes (fractions of G, BENCHMARKS.md):

* S shared: the same content in every guest (default 45%); every S page differs from the other S pages;
* Z zero: all-zero pages, faulted in by writing zeros (default 25%);
* U unique to the guest (default 25%);
* V volatile: unique at first, rewritten at ``churn`` pages/s when asked (default 5%).

Churn: each guest rewrites ``churn`` pages per second. A share ``s_hits`` of the writes land on S pages
and write back the content the page already has: that breaks the page's sharing (copy on write) without
changing what is achievable, so KSM has to find it again. The other writes put fresh random data into V
pages, which then never merge. With ``churn_paused`` the guests start quiet and churn between
:meth:`Guests.set_churn` ``(True)`` and ``(False)`` (SIGUSR1 / SIGUSR2 to every guest).

Because the content is generated, the achievable saving is known exactly (:func:`achievable_pages`).

Importable (``Guests`` context manager) and runnable::

    synthetic_guests.py [--guests 4] [--mib 256] [--churn PAGES_PER_S] [--hold SECONDS]

prints one JSON line (pids, pages per class, achievable pages) once every guest is ready, then
holds the memory until SIGTERM/SIGINT or ``--hold`` seconds.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import random
import signal
import struct
import sys
import time

PAGE = mmap.PAGESIZE
DEFAULT_FRACTIONS = {'S': 0.45, 'Z': 0.25, 'U': 0.25, 'V': 0.05}


def page_counts(mib, fractions=None):
    """Pages per class for one guest of ``mib`` MiB (V takes the rounding remainder)."""
    fractions = fractions or DEFAULT_FRACTIONS
    total = mib * 1024 * 1024 // PAGE
    counts = dict((k, int(total * fractions[k])) for k in ('S', 'Z', 'U'))
    counts['V'] = total - counts['S'] - counts['Z'] - counts['U']
    counts['total'] = total
    return counts


def achievable_pages(guests, counts, use_zero_pages):
    """The exact saving KSM can reach: (N-1)*S + N*Z, minus the one KSM zero page without use_zero_pages."""
    saved = (guests - 1) * counts['S'] + guests * counts['Z']
    return saved if use_zero_pages else saved - 1


def shared_page(seed, index):
    """The content of S page ``index``: the same in every guest, different from every other page."""
    return struct.pack('<QQ', seed, index) + bytes([0x5A]) * (PAGE - 16)


def _fill(buf, counts, guest, seed):
    """Write the content model into ``buf`` (a mmap)."""
    unique_base = bytes([0xA5]) * PAGE
    zero = bytes(PAGE)
    offset = 0
    for index in range(counts['S']):
        buf[offset:offset + PAGE] = shared_page(seed, index)
        offset += PAGE
    for dummy in range(counts['Z']):
        buf[offset:offset + PAGE] = zero
        offset += PAGE
    for index in range(counts['U'] + counts['V']):
        buf[offset:offset + PAGE] = unique_base
        buf[offset:offset + 24] = struct.pack('<QQQ', seed, guest + 1, index)
        offset += PAGE


def guest_main(guest, mib, fractions, seed, churn, ready_fd, s_hits=0.0, churn_paused=False):
    """The body of one guest process: map, mark mergeable, fill, report ready, hold (and churn)."""
    counts = page_counts(mib, fractions)
    size = counts['total'] * PAGE
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf.madvise(mmap.MADV_MERGEABLE)
    _fill(buf, counts, guest, seed)
    stop = []
    churning = [not churn_paused]
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    signal.signal(signal.SIGUSR1, lambda *a: churning.__setitem__(0, True))
    signal.signal(signal.SIGUSR2, lambda *a: churning.__setitem__(0, False))
    os.write(ready_fd, b'%d\n' % os.getpid())
    os.close(ready_fd)
    rng = random.Random(seed * 1000 + guest)
    v_start = (counts['S'] + counts['Z'] + counts['U']) * PAGE
    tick = 0.1
    carry = 0.0
    while not stop:
        if churn > 0 and churning[0] and counts['V'] > 0:
            carry += churn * tick
            writes, carry = int(carry), carry - int(carry)
            for dummy in range(writes):
                if counts['S'] and rng.random() < s_hits:
                    index = rng.randrange(counts['S'])
                    buf[index * PAGE:index * PAGE + 16] = shared_page(seed, index)[:16]  # same bytes: only COW breaks
                else:
                    offset = v_start + rng.randrange(counts['V']) * PAGE
                    buf[offset:offset + 8] = struct.pack('<Q', rng.getrandbits(64))
        time.sleep(tick if churn > 0 else 1.0)
    os._exit(0)


class Guests(object):
    """N synthetic guests as child processes: ``with Guests(4, 256) as g: g.pids, g.achievable(...)``.

    ``first_guest`` numbers the guests from there, so a newcomer started later (``Guests(1, first_guest=3)``)
    has unique pages of its own and the same S pages as the others.
    """

    def __init__(self, guests=4, mib=256, fractions=None, seed=1, churn=0, timeout=300.0, s_hits=0.0, churn_paused=False,
                 first_guest=0):
        self.guests = guests
        self.mib = mib
        self.fractions = fractions or dict(DEFAULT_FRACTIONS)
        self.seed = seed
        self.churn = churn
        self.s_hits = s_hits
        self.churn_paused = churn_paused
        self.first_guest = first_guest
        self.timeout = timeout
        self.counts = page_counts(mib, self.fractions)
        self.pids = []

    def start(self):
        """Fork the guests and wait until every one has filled its memory."""
        read_fd, write_fd = os.pipe()
        for guest in range(self.guests):
            pid = os.fork()
            if pid == 0:  # child
                try:
                    os.close(read_fd)
                    guest_main(self.first_guest + guest, self.mib, self.fractions, self.seed, self.churn, write_fd,
                               self.s_hits, self.churn_paused)
                finally:
                    os._exit(1)
            self.pids.append(pid)
        os.close(write_fd)
        ready = b''
        deadline = time.monotonic() + self.timeout
        with os.fdopen(read_fd, 'rb') as pipe:
            while ready.count(b'\n') < self.guests:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError('synthetic guests not ready within %ss' % self.timeout)
                chunk = pipe.read(64)
                if not chunk:
                    self.stop()
                    raise RuntimeError('a synthetic guest died before it was ready')
                ready += chunk
        return self

    def achievable(self, use_zero_pages):
        return achievable_pages(self.guests, self.counts, use_zero_pages)

    def set_churn(self, on):
        """Start (True) or stop (False) the churn of every guest."""
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGUSR1 if on else signal.SIGUSR2)
            except OSError:
                pass

    def describe(self, use_zero_pages=None):
        info = {'guests': self.guests, 'mib': self.mib, 'pids': self.pids, 'pages': self.counts, 'page_size': PAGE}
        if use_zero_pages is None:
            info['achievable_pages'] = {'use_zero_pages_0': self.achievable(False), 'use_zero_pages_1': self.achievable(True)}
        else:
            info['achievable_pages'] = self.achievable(use_zero_pages)
        return info

    def stop(self):
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        for pid in self.pids:
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass
        self.pids = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--guests', type=int, default=4)
    parser.add_argument('--mib', type=int, default=256)
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--churn', type=float, default=0.0, help='pages rewritten per second per guest')
    parser.add_argument('--s-hits', type=float, default=0.0, help='share of the churn writes that break sharing of S pages')
    parser.add_argument('--hold', type=float, default=0.0, help='seconds to hold the memory (0: until SIGTERM)')
    args = parser.parse_args(argv)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    with Guests(args.guests, args.mib, seed=args.seed, churn=args.churn, s_hits=args.s_hits) as guests:
        print(json.dumps(guests.describe()), flush=True)
        deadline = time.monotonic() + args.hold if args.hold else None
        while not stop and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
