# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""B4 of ../shared/BENCHMARKS.md: guest cooperation with real guest OS memory.

Three real Debian 12 guests (the guest_agent scenario's image, copied once into /var/cache/pagefusion-test/b4)
boot under QEMU TCG through the real libvirtd, 1 GiB each, with pagefusiond from the checkout as the KSM policy.
Each guest settles, fills a tmpfs with 512 MiB of random data and deletes it; for 60 s the host records what came
back: the QEMU processes' RSS drop plus their new merged pages, as a share of 3 x 512 MiB. Configurations: (a)
nothing, (b) init_on_free=1 in the guests (+ KSM use_zero_pages=1, the daemon's default), (c) virtio balloon free
page reporting, (d) both. Also the idle saving of the booted guests before the allocation.

Root only. The guests boot without the KSM lock (booting does not touch KSM); each configuration's KSM part
(pagefusiond, settle, allocate, free, measure, destroy) holds the lock and saves then restores the knobs
(pagefusion_dev.ksm_lock, ksm_reset), so other KSM users wait minutes, not the whole run. Under
``python -m pagefusion_dev.ksm_reset run --`` the lock is the ancestor's and held throughout.

    .venv/bin/python benchmarks/guest_coop.py            # all four (30-45 min on the loaded 2-core machine)
                                                         # -> docs/benchmarks-b4.{json,png,md}, after each config
    .venv/bin/python benchmarks/guest_coop.py --quick    # 1 guest, (a) and (d), 256 MiB, 20 s; .build/bench-b4-quick/
"""

import argparse
import datetime
import os
import shutil
import signal
import sys
import tempfile
import time

from guestcoop import guests, report, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_SCRIPT = os.path.join(ROOT, 'tests', 'setup', 'build-debian-guest.sh')


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--quick', action='store_true', help='1 guest, configurations a and d, 256 MiB, 20 s')
    parser.add_argument('--configs', default='a,b,c,d', help='comma-separated subset of a,b,c,d (default: all)')
    parser.add_argument('--guests', type=int, default=3)
    parser.add_argument('--guest-mib', type=int, default=1024)
    parser.add_argument('--alloc-mib', type=int, default=512, help='MiB each guest allocates and frees')
    parser.add_argument('--seconds', type=float, default=60.0, help='measuring window after the free')
    parser.add_argument('--interval', type=float, default=2.0, help='seconds between samples')
    parser.add_argument('--settle', type=float, default=60.0, help='seconds the booted guests settle')
    parser.add_argument('--boot-timeout', type=int, default=900)
    parser.add_argument('--out-dir', help='default: docs/ (--quick: .build/bench-b4-quick/)')
    args = parser.parse_args(argv)
    if args.quick:
        args.guests, args.alloc_mib, args.seconds, args.settle = 1, 256, 20.0, 20.0
        args.configs = 'a,d' if args.configs == 'a,b,c,d' else args.configs
    args.configs = [c.strip() for c in args.configs.split(',') if c.strip()]
    unknown = [c for c in args.configs if c not in run.CONFIGS]
    if unknown or not args.configs:
        parser.error('unknown configuration(s) %s: choose from a, b, c, d' % ', '.join(unknown))
    args.out_dir = args.out_dir or os.path.join(ROOT, '.build/bench-b4-quick' if args.quick else 'docs')
    return args


def _terminate(signum, frame):
    raise KeyboardInterrupt('signal %d' % signum)


def log(message):
    sys.stderr.write('[b4 %s] %s\n' % (time.strftime('%H:%M:%S'), message))
    sys.stderr.flush()


def notes(runs):
    """What the guests really ran with, said plainly where it differs from the configuration."""
    lines = []
    for result in runs:
        for seen in result['guests_seen']:
            if seen.get('mismatch'):
                lines.append('%s: a guest ran with init_on_free=%s, balloon driver bound=%s (wanted otherwise)'
                             % (result['label'], seen['init_on_free'], seen['balloon_driver_bound']))
    return lines


def main(argv=None):
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit('guest_coop.py: run as root (libvirtd, /proc/<pid>/ksm_stat, KSM knobs)')
    signal.signal(signal.SIGTERM, _terminate)
    guests.ensure_image(BUILD_SCRIPT)
    guests.destroy_leftovers()
    run_dir = tempfile.mkdtemp(prefix='run-', dir=guests.IMAGE_DIR)
    os.chmod(run_dir, 0o755)
    params = {'guests': args.guests, 'guest_mib': args.guest_mib, 'alloc_mib': args.alloc_mib,
              'seconds': args.seconds, 'interval': args.interval, 'settle': args.settle,
              'boot_timeout': args.boot_timeout, 'quick': args.quick, 'configs': args.configs,
              'ksm_policy': 'pagefusiond (daemon/pagefusiond from the checkout, shipped defaults)'}
    started, clock = datetime.datetime.now(datetime.timezone.utc), time.monotonic()
    runs = []
    try:
        for key in args.configs:
            runs.append(run.measure(key, params, run_dir, log))
            log('%s: %.1f %% back after %g s' % (key, 100 * runs[-1]['final']['share'], args.seconds))
            results = write(args, params, runs, started, clock)  # after each one: a cut-short run keeps its part
    except KeyboardInterrupt:
        log('interrupted: guests destroyed; results of the finished configurations (if any) are written')
        return 130
    finally:
        guests.destroy_leftovers()
        shutil.rmtree(run_dir, ignore_errors=True)
    print(report.markdown(results, 'benchmarks-b4.png'))
    return 0


def write(args, params, runs, started, clock):
    results = {'benchmark': 'B4', 'started': started.strftime('%Y-%m-%d %H:%M UTC'), 'params': params,
               'wall_seconds': round(time.monotonic() - clock, 1), 'load_average': list(os.getloadavg()),
               'kernel': os.uname().release, 'configs': sorted(runs, key=lambda r: r['config']), 'notes': notes(runs),
               'complete': len(runs) == len(params['configs'])}
    os.makedirs(args.out_dir, exist_ok=True)
    paths = report.write_all(results, args.out_dir, 'benchmarks-b4')
    log('wrote %s' % ', '.join(sorted(paths.values())))
    return results


if __name__ == '__main__':
    sys.exit(main())
