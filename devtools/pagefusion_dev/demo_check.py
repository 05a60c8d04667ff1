# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The test command's check of ``./dev demo``: a full run saves real memory, a Ctrl-C halfway leaves nothing.

1. The demo runs to its end: exit 0, real guests (not the fallback), a non-zero saving, a report that says so.
2. It runs again and gets SIGINT to its whole process group (as a terminal's Ctrl-C does) once the live saving
   shows: exit 130.
3. After each run nothing of the demo is left: no pf-demo-* domain (``virsh list --all``), no QEMU of one, no
   pagefusiond of the demo, no demo child process, and the KSM knobs as they were before.

    python -m pagefusion_dev.demo_check      # as root, with ANSIBLE_COLLECTIONS_PATH set (./dev does)
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from ansible_collections.pagefusion.core.plugins.module_utils import _ksm

from . import demo_guests, ksm_lock
from .demo_progress import MIB

DEMO = [sys.executable, '-m', 'pagefusion_dev.demo']
PROGRESS_MARK = ' MiB saved '
INTERRUPT_AFTER_LINES = 3       # progress lines seen before the Ctrl-C
DEMO_PROCESS_MARKS = ('pagefusiond-demo-', 'pagefusion_dev.demo ', 'pf-demo-')


class CheckFailed(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def leftover_processes():
    """Processes of the demo still alive (its daemon, QEMU, helpers), as ``pid: command line``."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open('/proc/%s/cmdline' % entry, 'rb') as handle:
                cmdline = handle.read().replace(b'\0', b' ').decode('utf-8', 'replace')
        except OSError:
            continue
        if 'demo_check' not in cmdline and any(mark in cmdline for mark in DEMO_PROCESS_MARKS):
            found.append('%s: %s' % (entry, cmdline[:160]))
    return found


def check_nothing_left(knobs_before, what):
    check(demo_guests.defined() == [], '%s: demo domains still defined: %s' % (what, demo_guests.defined()))
    check(demo_guests.qemu_processes() == [], '%s: QEMU of demo guests still runs: %s' % (what, demo_guests.qemu_processes()))
    left = leftover_processes()
    check(left == [], '%s: demo processes still run: %s' % (what, left))
    knobs_after = _ksm.KsmSysfs().snapshot_knobs()
    changed = dict((k, (v, knobs_after.get(k))) for k, v in knobs_before.items() if knobs_after.get(k) != v)
    check(not changed, '%s: KSM knobs not restored (before, after): %s' % (what, changed))
    print('demo_check: %s: no domain, no QEMU, no daemon, KSM knobs as before' % what)


def full_run(knobs_before):
    with tempfile.NamedTemporaryFile(suffix='.json') as result_file:
        started = time.monotonic()
        status = subprocess.call(DEMO + ['--result', result_file.name])
        wall = time.monotonic() - started
        check(status == 0, 'the demo exited %s' % status)
        result = json.load(open(result_file.name))
    check(result['mode'] == 'real', 'the demo fell back to the test hypervisor: %s' % result.get('reason'))
    check(result['saved_bytes'] > 0, 'the demo saved nothing: %s' % result)
    report = json.load(open(os.path.join(os.path.dirname(result['report']), 'report.json')))
    check(report['totals']['saved_bytes'] > 0, 'the report shows no saving: %s' % report['totals'])
    check_nothing_left(knobs_before, 'after the full run')
    return wall, result


def interrupted_run(knobs_before):
    proc = subprocess.Popen(DEMO, stdout=subprocess.PIPE, text=True, start_new_session=True)
    seen = 0
    for line in proc.stdout:
        sys.stdout.write(line)
        seen += PROGRESS_MARK in line
        if seen == INTERRUPT_AFTER_LINES:
            print('demo_check: Ctrl-C (SIGINT to the demo\'s process group) while the saving grows')
            os.killpg(proc.pid, signal.SIGINT)
            break
    for line in proc.stdout:
        sys.stdout.write(line)
    status = proc.wait()
    check(seen >= INTERRUPT_AFTER_LINES, 'the demo ended (exit %s) before it showed the saving' % status)
    check(status == 130, 'the interrupted demo exited %s, not 130' % status)
    check_nothing_left(knobs_before, 'after Ctrl-C')


def main():
    lock = ksm_lock.acquire()   # held across both runs (the demo re-enters it), so no other KSM test moves the knobs
    knobs_before = _ksm.KsmSysfs().snapshot_knobs()
    try:
        wall, result = full_run(knobs_before)
        interrupted_run(knobs_before)
    except CheckFailed as exc:
        print('demo_check: FAILED: %s' % exc, file=sys.stderr)
        return 1
    finally:
        if lock:
            lock.close()
    print('demo_check: passed; the full run took %.0f s wall (%.0f s to settle) and saved %.1f MiB' % (
        wall, result['settle_seconds'], result['saved_bytes'] / MIB))
    return 0


if __name__ == '__main__':
    sys.exit(main())
