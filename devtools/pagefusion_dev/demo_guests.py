# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The demo's real guests: the test guest (tests/setup/pf_testguest.py) under QEMU TCG through libvirtd.

Every guest has the same kernel, initramfs and fill, so KSM can merge most of their memory. None has a network
card. All names start with :data:`PREFIX`, so a demo can always find (and remove) what an earlier one left.
"""

import os
import subprocess
import sys
import tempfile

from .collection import PF_TESTGUEST

URI = 'qemu:///system'
PREFIX = 'pf-demo-'
RUNNING = PREFIX + '3'                      # running when the demo starts: refused, then restarted gracefully
SHUT_OFF = (PREFIX + '1', PREFIX + '2')     # shut off: switched at once
INELIGIBLE = PREFIX + 'hugepages'           # huge-page backed, never started: KSM cannot merge it
SHARING = SHUT_OFF + (RUNNING,)
MEMORY_MIB = 256
FILL_MIB = 128                              # identical in every guest


class GuestError(Exception):
    """A guest could not be defined, started or removed; the message says which and why."""


def _run(argv):
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise GuestError('%s: %s' % (' '.join(argv[1:3]), (proc.stderr or proc.stdout).strip()))
    return proc.stdout


def testguest(command, *args):
    """``pf-testguest COMMAND --uri URI ARGS...``; its stdout."""
    return _run([sys.executable, PF_TESTGUEST, command, '--uri', URI] + list(args))


def virsh(*args):
    return _run(['virsh', '-q', '-c', URI] + list(args))


def defined():
    """Names of the demo's domains that libvirt knows (running or not)."""
    return sorted(n for n in virsh('list', '--all', '--name').split() if n.startswith(PREFIX))


def remove_all():
    """Destroy and undefine every demo domain (also those of an interrupted earlier demo)."""
    testguest('cleanup', '--prefix', PREFIX)


def _define(name):
    testguest('define', name, '--nosharepages', '--memory-mib', str(MEMORY_MIB), '--fill-mib', str(FILL_MIB))


def _define_hugepages(name):
    # pf-testguest has no huge-page option: define it, then back its memory with huge pages.
    _define(name)
    xml = virsh('dumpxml', '--domain', name, '--inactive')
    xml = xml.replace('<nosharepages/>', '<hugepages/><nosharepages/>', 1)
    with tempfile.NamedTemporaryFile('w', suffix='.xml') as handle:
        handle.write(xml)
        handle.flush()
        virsh('define', '--file', handle.name)


def define_all():
    """Every guest, page fusion off (``<nosharepages/>``); the running one started and booted."""
    for name in SHARING:
        _define(name)
    _define_hugepages(INELIGIBLE)
    testguest('start', RUNNING, '--wait-ready')


def start(name):
    virsh('start', '--domain', name)


def wait_ready(name):
    """A child process that exits 0 once ``name`` printed PF-READY (its fill is in memory)."""
    return subprocess.Popen([sys.executable, PF_TESTGUEST, 'wait-ready', '--uri', URI, '--timeout', '120', name],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def qemu_processes():
    """Pids of QEMU processes of demo guests (by QEMU's ``-name guest=pf-demo-...`` argument)."""
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % entry, 'rb') as handle:
                argv = handle.read().split(b'\0')
        except OSError:
            continue
        if b'-name' in argv and any(arg.startswith(b'guest=' + PREFIX.encode()) for arg in argv):
            pids.append(int(entry))
    return pids
