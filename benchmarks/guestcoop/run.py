# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""One B4 configuration: the guests booted, then under the KSM lock pagefusiond started, the guests settled, the
idle saving, 512 MiB allocated and freed inside each guest, the host's figures for the measuring window."""

import contextlib
import os
import threading
import time

from pagefusion_dev import ksm_reset
from pagefusion_dev.daemon_run import DaemonRun

from . import guests, sample

CONFIGS = {
    'a': {'label': '(a) nothing', 'init_on_free': False, 'reporting': False},
    'b': {'label': '(b) init_on_free=1 + zero pages', 'init_on_free': True, 'reporting': False},
    'c': {'label': '(c) free page reporting', 'init_on_free': False, 'reporting': True},
    'd': {'label': '(d) both', 'init_on_free': True, 'reporting': True},
}
# Unique non-zero data (urandom): nothing of it merges, so whatever comes back is the mechanism's doing.
# Both may run again after an ssh failure (retried), so both are idempotent.
ALLOC = ('{{ mountpoint -q /mnt || mount -t tmpfs -o size={size}M pfb4 /mnt; }} && '
         'head -c {mib}M /dev/urandom >/mnt/fill && sync')
FREE = 'rm -f /mnt/fill && { ! mountpoint -q /mnt || umount /mnt; }'
PROBE = ('cat /proc/cmdline; echo; ls /sys/bus/virtio/drivers/virtio_balloon/ 2>/dev/null | grep -c virtio; '
         'cat /sys/module/page_reporting/parameters/page_reporting_order 2>/dev/null || echo none')


def in_parallel(boot, command, timeout):
    """Run one remote command in every guest at once; ``{name: (rc, stderr tail)}``."""
    results = {}  # name: (exit status, stderr tail, seconds)

    def one(guest):
        started = time.monotonic()
        proc = guest.ssh(command, timeout=timeout)
        results[guest.name] = (proc.returncode, proc.stderr.strip()[-300:], round(time.monotonic() - started, 1))
    threads = [threading.Thread(target=one, args=(g,)) for g in boot]
    for thread in threads:
        thread.start()
    return threads, results


def join(threads, results):
    for thread in threads:
        thread.join()
    failed = dict((name, r) for name, r in results.items() if r[0] != 0)
    if failed:
        raise RuntimeError('a guest command failed: %r' % failed)
    return max(r[2] for r in results.values())


def probe(guest, config):
    """What the guest really runs with: init_on_free on its cmdline, the balloon driver bound, page reporting."""
    lines = guest.ssh(PROBE, timeout=120).stdout.split('\n')
    lines = [line for line in lines if line.strip()]
    seen = {'cmdline': lines[0] if lines else '', 'balloon_driver_bound': len(lines) > 1 and lines[1] != '0',
            'page_reporting_order': lines[2] if len(lines) > 2 else 'none'}
    seen['init_on_free'] = 'init_on_free=1' in seen['cmdline'].split()
    if seen['init_on_free'] != config['init_on_free'] or seen['balloon_driver_bound'] != config['reporting']:
        seen['mismatch'] = True
    return seen


def settle(daemon, seconds):
    """Wait ``seconds`` for the guests to go quiet; then until the daemon leaves boost/settle (at most as long again)."""
    time.sleep(seconds)
    deadline = time.monotonic() + seconds
    while daemon.phase() in ('boost', 'settle') and time.monotonic() < deadline:
        time.sleep(2)
    return daemon.phase()


@contextlib.contextmanager
def ksm_held(log):
    """The KSM lock (unless an ancestor holds it) and the knobs saved, then restored after the guests are gone."""
    started = time.monotonic()
    with ksm_reset.held():
        log('KSM lock held after %.0f s' % (time.monotonic() - started))
        yield


def boot_all(boot, params, result, log, key):
    started = time.monotonic()
    for guest in boot:
        guest.start()
    for guest in boot:
        if not guest.wait_ssh(params['boot_timeout']):
            raise RuntimeError('%s: no SSH on 127.0.0.1:%d after %d s (console: %s)'
                               % (guest.name, guest.port, params['boot_timeout'], guest.console))
    result['boot_seconds'] = round(time.monotonic() - started, 1)
    log('%s: booted in %.0f s; waiting for the KSM lock' % (key, result['boot_seconds']))


def measure(key, params, run_dir, log):
    """One configuration end to end. The guests boot outside the KSM lock (booting does not touch KSM); the
    lock is held from pagefusiond's start until the guests are destroyed and the knobs are back. The guests are
    destroyed on the way out, also on errors and Ctrl-C."""
    config = CONFIGS[key]
    boot = [guests.Guest(i + 1, params['guest_mib'], config['init_on_free'], config['reporting'], run_dir)
            for i in range(params['guests'])]
    result = {'config': key, 'label': config['label'], 'load_before': os.getloadavg()}
    try:
        boot_all(boot, params, result, log, key)
        with ksm_held(log), DaemonRun(prefix='pagefusion-b4-') as daemon:
            try:
                daemon.start()
                result['daemon_phase_idle'] = settle(daemon, params['settle'])
                result['guests_seen'] = [probe(g, config) for g in boot]
                pids = [g.pid() for g in boot]
                result['idle'] = sample.idle_saving(pids)
                _alloc_free(boot, pids, params, result, log, key)
                result['daemon_cpu_seconds'] = daemon.cpu_seconds()
            finally:
                daemon.stop()
                for guest in boot:
                    guest.destroy()
    finally:
        for guest in boot:
            guest.destroy()
    result['load_after'] = os.getloadavg()
    return result


def _alloc_free(boot, pids, params, result, log, key):
    before = sample.snapshot(pids)
    log('%s: allocating %d MiB in each guest' % (key, params['alloc_mib']))
    started = time.monotonic()
    join(*in_parallel(boot, ALLOC.format(size=params['alloc_mib'] + 64, mib=params['alloc_mib']), 1800))
    result['alloc_seconds'] = round(time.monotonic() - started, 1)
    time.sleep(params['interval'])
    base = sample.snapshot(pids)
    result['rss_growth_mib'] = [round((b['rss'] - a['rss']) / sample.MIB, 1) for a, b in zip(before, base)]
    log('%s: freeing; measuring %d s' % (key, params['seconds']))
    threads, outcome = in_parallel(boot, FREE, 600)
    freed = params['alloc_mib'] * sample.MIB * len(boot)
    result['trace'] = sample.trace(pids, base, freed, params['seconds'], params['interval'])
    result['free_seconds'] = join(threads, outcome)  # how long the guests took to delete (init_on_free zeroes)
    result['final'] = result['trace'][-1]
    result['t90'] = next((p['t'] for p in result['trace'] if p['share'] >= 0.9), None)
