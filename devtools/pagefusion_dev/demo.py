# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""``./dev demo``: page fusion saving real memory on this machine, then everything put back.

Boots a few tiny identical guests under QEMU TCG through libvirtd (demo_guests), switches page fusion on with
``pagefusion.core.vm`` (playbooks/demo.yml, tag ``libvirt``: eligibility, refusals and their reasons), runs
pagefusiond from the checkout and shows the saving grow (demo_progress), shows ``fusion_facts`` per VM (tag
``facts``), writes the fleet report (playbooks/report.yml) and runs the VirtualBox play on the stand-in (tag
``vbox``). Guests, daemon and KSM settings are removed or restored on exit, Ctrl-C and errors alike. Without
QEMU, libvirtd, the test guest or KSM it runs playbooks/demo.yml on libvirt's test hypervisor and says why.

    python -m pagefusion_dev.demo [--result FILE]    # as root, with ANSIBLE_COLLECTIONS_PATH set (./dev does)
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from ansible_collections.pagefusion.core.plugins.module_utils import _ksm

from . import demo_guests, ksm_lock, ksm_reset
from .collection import ROOT
from .daemon_run import DaemonRun
from .demo_progress import MIB, Progress

PLAYBOOKS = os.path.join(ROOT, 'playbooks')
REPORT_DIR = os.path.join(ROOT, '.build', 'demo-report')
SETUP = os.path.join(ROOT, 'tests', 'setup')


STARTED = time.monotonic()


def say(text):
    print('\n\033[1m== demo [%3.0f s]: %s\033[0m' % (time.monotonic() - STARTED, text), flush=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt('signal %d' % signum)


def why_not_real():
    """None when real guests can run here, else the reason (the demo then falls back to the test driver)."""
    if not os.path.exists('/sys/kernel/mm/ksm/run'):
        return 'the kernel has no KSM (/sys/kernel/mm/ksm is missing)'
    if not shutil.which('qemu-system-x86_64'):
        return 'qemu-system-x86_64 is not installed'
    for script in ('start-libvirt.sh', 'build-guest.sh'):
        proc = subprocess.run([os.path.join(SETUP, script)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            return 'tests/setup/%s failed: %s' % (script, (proc.stderr.strip().splitlines() or ['?'])[-1])
    return None


class QemuUnavailable(Exception):
    """The real guests cannot boot here; the demo falls back to libvirt's test hypervisor."""


class Demo(object):
    """One demo run; :meth:`close` undoes everything it started."""

    def __init__(self):
        self.children = []
        self.daemon = None
        self.lock = None
        self.saved_knobs = None
        self.result = {'mode': 'real'}

    def child(self, argv, env=None):
        """Run ``argv`` to its end, killed by :meth:`close` if the demo is interrupted first; its status."""
        proc = subprocess.Popen(argv, env=env)
        self.children.append(proc)
        status = proc.wait()   # interrupted here, the process stays listed for close() to stop
        self.children.remove(proc)
        return status

    def playbook(self, name, *args):
        env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK='default', ANSIBLE_LOCALHOST_WARNING='false')
        argv = ['ansible-playbook', '-i', 'localhost,', '-c', 'local', '-e', 'ansible_python_interpreter=' + sys.executable,
                os.path.join(PLAYBOOKS, name)] + list(args)
        status = self.child(argv, env)
        if status != 0:
            raise RuntimeError('%s %s failed (exit %s)' % (name, ' '.join(args), status))

    def demo_play(self, tag, *extra):
        self.playbook('demo.yml', '--tags', tag, '-e', 'demo_uri=' + demo_guests.URI,
                      '-e', 'demo_pattern=%s*' % demo_guests.PREFIX, *extra)

    def take_ksm(self):
        say('taking the KSM lock (%s) and saving the KSM settings' % ksm_lock.LOCK_PATH)
        self.lock = ksm_lock.acquire()
        self.ksm = _ksm.KsmSysfs()
        self.saved_knobs = self.ksm.snapshot_knobs()

    def guests(self):
        say('defining %d tiny identical guests (QEMU TCG, no network card) and booting %s' % (
            len(demo_guests.SHARING) + 1, demo_guests.RUNNING))
        try:
            demo_guests.remove_all()
            demo_guests.define_all()
        except demo_guests.GuestError as exc:
            raise QemuUnavailable('the first guest did not boot: %s' % exc)

    def switch(self):
        say('switching page fusion on with pagefusion.core.vm (playbooks/demo.yml, tag libvirt)')
        self.demo_play('libvirt', '-e', 'demo_when_running=restart')

    def watch(self):
        say('running pagefusiond from the checkout and booting the switched guests: the saving, live')
        self.daemon = DaemonRun([('libvirt_uri', demo_guests.URI)], prefix='pagefusiond-demo-').start()
        waiters = {demo_guests.RUNNING: demo_guests.wait_ready(demo_guests.RUNNING)}
        for name in demo_guests.SHUT_OFF:
            demo_guests.start(name)
            waiters[name] = demo_guests.wait_ready(name)
        self.children.extend(waiters.values())
        progress = Progress(self.daemon, waiters)
        settled = progress.run()
        self.result.update(saved_bytes=progress.saved_bytes, settle_seconds=round(progress.elapsed(), 1),
                           ksmd_cpu_seconds=round(progress.cpu_seconds, 2), settled=settled)
        print('%s after %.0f s: %.1f MiB saved across %d guests, ksmd used %.1f CPU s' % (
            'Settled' if settled else 'Still growing', progress.elapsed(), progress.saved_bytes / MIB,
            len(waiters), progress.cpu_seconds))

    def facts_and_report(self):
        say('what fusion_facts reads per VM (playbooks/demo.yml, tag facts)')
        self.demo_play('facts', '-e', 'demo_daemon_state_path=' + self.daemon.state_path)
        say('the fleet report for this host (playbooks/report.yml)')
        self.playbook('report.yml', '-e', 'report_dir=' + REPORT_DIR, '-e', 'page_fusion_backend=libvirt',
                      '-e', 'page_fusion_uri=' + demo_guests.URI, '-e', 'page_fusion_pattern=%s*' % demo_guests.PREFIX,
                      '-e', 'page_fusion_daemon_state_path=' + self.daemon.state_path)
        self.result['report'] = os.path.join(REPORT_DIR, 'report.html')
        print('Report: %s (also report.md and report.json there)' % self.result['report'])

    def vbox(self):
        say('a VirtualBox host, simulated by the test stand-in for VBoxManage (not real VirtualBox)')
        self.playbook('demo.yml', '--tags', 'vbox')

    def run(self):
        self.take_ksm()
        self.guests()
        self.switch()
        self.watch()
        self.facts_and_report()
        self.vbox()

    def close(self):
        """Stop what runs, remove the guests, put KSM back; every step tried even when one fails."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # a second Ctrl-C must not cut the clean-up short
        say('cleaning up: guests, pagefusiond, KSM settings')
        steps = [self._stop_children, self._stop_daemon, demo_guests.remove_all, self._restore_ksm]
        errors = []
        for step in steps:
            try:
                step()
            except Exception as exc:  # pylint: disable=broad-except
                errors.append('%s: %s' % (step.__name__, exc))
        if self.lock:
            self.lock.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return errors

    def _stop_children(self):
        for proc in list(self.children):
            if proc.poll() is None:
                proc.terminate()
        for proc in list(self.children):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _stop_daemon(self):
        if self.daemon is not None:
            self.daemon.close()

    def _restore_ksm(self):
        if self.saved_knobs is not None:
            ksm_reset.restore(self.ksm, self.saved_knobs)
            print('KSM settings restored: ' + ', '.join('%s=%s' % kv for kv in sorted(self.ksm.snapshot_knobs().items())))


def fallback(reason):
    say('real guests cannot run here (%s): the demo on libvirt\'s test hypervisor instead' % reason)
    demo = Demo()
    demo.playbook('demo.yml')
    return {'mode': 'fallback', 'reason': reason}


def run_real():
    demo = Demo()
    errors = []
    try:
        demo.run()
    finally:
        errors = demo.close()
    if errors:
        raise RuntimeError('clean-up incomplete: ' + '; '.join(errors))
    return demo.result


def main(argv=None):
    parser = argparse.ArgumentParser(prog='demo', description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--result', help='write the outcome as JSON here (saving, times, report path)')
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    try:
        reason = why_not_real()
        try:
            result = fallback(reason) if reason else run_real()
        except QemuUnavailable as exc:
            result = fallback(str(exc))
    except KeyboardInterrupt:
        print('demo: interrupted; everything it started is removed and KSM is back as it was', file=sys.stderr)
        return 130
    except (RuntimeError, demo_guests.GuestError, _ksm.KsmError) as exc:
        print('demo: failed: %s' % exc, file=sys.stderr)
        return 1
    result['wall_seconds'] = round(time.monotonic() - started, 1)
    say('done in %.0f s' % result['wall_seconds'])
    if args.result:
        with open(args.result, 'w') as handle:
            json.dump(result, handle, indent=2, sort_keys=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
