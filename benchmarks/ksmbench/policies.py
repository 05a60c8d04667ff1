# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The KSM policies BENCHMARKS.md compares. Each starts from the reset state (run=0, kernel defaults)."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

from pagefusion_dev.daemon_run import DaemonRun

from .kernel import process_tree_cpu
from .workload import Pressure

KSMTUNED = '/usr/sbin/ksmtuned'
KSMCTL = '/usr/sbin/ksmctl'


class Policy(object):
    """One policy: ``start(kernel)`` at t0, ``stop()`` before the reset."""

    name = None
    title = None
    pressure = False  # hold memory pressure (ksmtuned's view) while the policy runs

    def __init__(self):
        self.pressure_holder = None

    def start(self, kern):
        raise NotImplementedError

    def stop(self):
        pass

    def own_cpu(self):
        """CPU seconds of the policy's own process (and its children) since it started; None for kernel-only policies."""
        return None

    def describe(self):
        return self.title


class KernelDefaults(Policy):
    name = 'K0'
    title = 'kernel defaults: run=1, pages_to_scan=100, sleep_millisecs=20'

    def start(self, kern):
        kern.write('run', 1)


class Advisor(Policy):
    name = 'KA'
    title = "the kernel's advisor: advisor_mode=scan-time with its defaults (target scan time 200 s, max CPU 70%)"

    def start(self, kern):
        kern.write('advisor_mode', 'scan-time')  # the kernel sets pages_to_scan to advisor_min_pages_to_scan
        kern.write('run', 1)


class MaxEffort(Policy):
    name = 'KX'
    title = 'maximum effort: sleep_millisecs=0, pages_to_scan=30000'

    def start(self, kern):
        kern.write('sleep_millisecs', 0)
        kern.write('pages_to_scan', 30000)
        kern.write('run', 1)


class MaxEffortZero(MaxEffort):
    """KX plus use_zero_pages=1 (pagefusiond sets it too): the control that shows D's zero-page advantage as such."""

    name = 'KX+Z'
    title = 'maximum effort with zero pages: KX plus use_zero_pages=1'

    def start(self, kern):
        kern.write('use_zero_pages', 1)
        MaxEffort.start(self, kern)


class Ksmtuned(Policy):
    """Debian's ksmtuned package as its two systemd units start it: ``ksmctl start`` (ksm.service: run=1) and
    ``ksmtuned`` (ksmtuned.service) with its shipped /etc/ksmtuned.conf. Started by hand: PID 1 is not systemd here."""

    name = 'KT'
    title = "Debian's ksmtuned, default config, no memory pressure"

    def __init__(self):
        Policy.__init__(self)
        self.pgid = None
        self.tmp = None

    @staticmethod
    def available():
        return os.access(KSMTUNED, os.X_OK) and os.access(KSMCTL, os.X_OK)

    def start(self, kern):
        if not self.available():
            raise RuntimeError('%s is not installed (apt-get install ksmtuned)' % KSMTUNED)
        self.tmp = tempfile.mkdtemp(prefix='ksmbench-ksmtuned-')
        subprocess.run([KSMCTL, 'start'], check=True)
        env = dict(os.environ, PIDFILE=os.path.join(self.tmp, 'ksmtune.pid'))
        # its own session: the forked monitor loop and its `sleep` children go with one killpg
        proc = subprocess.Popen([KSMTUNED], env=env, start_new_session=True)
        proc.wait(10)
        self.pgid = proc.pid

    def stop(self):
        if self.pgid:
            try:
                os.killpg(self.pgid, signal.SIGTERM)
            except OSError:
                pass
            self.pgid = None
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


class KsmtunedPressure(Ksmtuned):
    name = 'KT+P'
    title = "Debian's ksmtuned, default config, under memory pressure (free below its 20% threshold)"
    pressure = True


class Daemon(Policy):
    """pagefusiond with its shipped defaults; only its file paths point into a temporary directory and the
    libvirt event source is off (the synthetic guests are not libvirt domains)."""

    name = 'D'
    title = 'pagefusiond, shipped defaults'

    def __init__(self, overrides=None):
        Policy.__init__(self)
        self.overrides = dict(overrides or {})
        self.run = None
        self.last_cpu = 0.0

    def start(self, kern):
        settings = [('libvirt_uri', '')] + sorted(self.overrides.items())
        self.run = DaemonRun(settings, metrics=False, prefix='ksmbench-pagefusiond-').start()

    def log_lines(self):
        return self.run.log_lines() if self.run else []

    @property
    def pid(self):
        return self.run.pid if self.run else None

    def own_cpu(self):
        """The daemon's utime+stime (children included) from /proc/<pid>/stat; after it exited, the last reading."""
        if self.run is not None:
            cpu = process_tree_cpu(self.run.pid)
            if cpu is not None:
                self.last_cpu = cpu
        return self.last_cpu

    def stop(self):
        if self.run is None:
            return
        run, self.run = self.run, None
        try:
            code = run.stop()
            lines = run.log_lines()
        finally:
            run.close()
        if code != 0:
            raise RuntimeError('pagefusiond exited with %s: %s' % (code, ' | '.join(lines[-5:])))


ALL = (KernelDefaults, Advisor, Ksmtuned, KsmtunedPressure, MaxEffort, MaxEffortZero, Daemon)
BY_NAME = dict((cls.name, cls) for cls in ALL)
ORDER = [cls.name for cls in ALL]


def make(name, daemon_overrides=None):
    cls = BY_NAME[name]
    return cls(daemon_overrides) if cls is Daemon else cls()


class Session(object):
    """One policy run on a started workload: pressure (if the policy wants it) is made before t0 and released after.

    ``pressure``: a :class:`Pressure` shared by several runs (started at the first, stopped by its owner): making
    18 GiB of pressure takes half a minute on this kind of VM, so a KT+P cell makes it once for all its repeats.
    """

    def __init__(self, policy, kern, pressure=None):
        self.policy = policy
        self.kern = kern
        self.shared = pressure
        self.pressure = None

    def prepare(self):
        if self.policy.pressure:
            if self.shared is not None:
                if self.shared.pid is None:
                    self.shared.start()
                self.pressure = self.shared
            else:
                self.pressure = Pressure().start()
        return self

    def start(self):
        self.policy.start(self.kern)

    def close(self):
        try:
            self.policy.stop()
        finally:
            if self.pressure is not None and self.pressure is not self.shared:
                self.pressure.stop()
            self.pressure = None


def settle_pause(seconds=1.0):
    """A short pause between runs so one run's exit work (unmerge, process teardown) is not billed to the next."""
    time.sleep(seconds)
