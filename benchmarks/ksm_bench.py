# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""pagefusiond (D) against the kernel defaults (K0), the kernel's advisor (KA), Debian's ksmtuned (KT, KT+P), maximum
effort (KX) and maximum effort with zero pages (KX+Z), as ../shared/BENCHMARKS.md defines it: B1 cold start, B2 steady
state, B3 a newcomer, a realism run with real TCG guests, B5 the daemon's cost against N. D's CPU is ksmd's plus the
daemon's own process. Root only; it drives the machine's real KSM (under the KSM lock) and puts every knob back.

    ./dev bench                     # default: about 25 min (at most 30) on a quiet 2-core machine; writes docs/benchmarks.*
                                    # and the README's figures block
    ./dev bench --full              # BENCHMARKS.md in full: 5-minute B2 phases, slow policies 3x at every size,
                                    # b1long, K0/KA in B2 and B3 (about 90 min)
    ./dev bench --quick             # CI: a small B1 only (about a minute), into .build/bench-quick/
    ./dev bench --parts b3 --merge  # re-run one part, keep the others (and the first session's machine) from the JSON
    ./dev bench --render            # no run: rewrite benchmarks.md/.png and the README block from benchmarks.json
"""

import argparse
import datetime
import os
import signal
import sys
import time

from ksmbench import kernel, policies, session
from ksmbench.bench import Bench, log
from pagefusion_dev.collection import ROOT
from pagefusion_dev.ksm_reset import Kernel

PROFILES = {
    # key: (default, full, quick)
    'sizes': ('4x256,4x512,8x256', '4x256,4x512,8x256', '2x64'),
    'repeats': (3, 3, 1),
    'slow_repeats': (1, 3, 1),
    'slow_sizes': ('first', 'all', 'all'),
    'parts': ('b1,b3,realism,b2,b5', 'b1,b3,realism,b2,b5,b1long', 'b1'),
    'b2_phase': (60, 300, 60),
    'b2_policies': ('KX,D', 'K0,KA,KX,KX+Z,D', 'KX,D'),
    'b3_policies': ('KX,KX+Z,D', 'K0,KA,KT,KX,KX+Z,D', 'KX,KX+Z,D'),
    'realism_policies': ('KX,KX+Z,D', 'KX,KX+Z,D,K0', 'KX,KX+Z,D'),
}


def parse_size(text):
    guests, mib = text.lower().split('x')
    return int(guests), int(mib)


def _names(text):
    return [p.strip() for p in text.split(',') if p.strip()]


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0], epilog='Expected duration: default about 25 min '
                                     '(the 30-minute target), --full about 90 min, --quick about 1 min.')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--quick', action='store_true', help='CI: B1 only, N=2 G=64 MiB, one run per policy, no KT+P (about 1 min)')
    mode.add_argument('--full', action='store_true', help='BENCHMARKS.md in full (5-minute B2 phases, every slow cell 3x; about 90 min)')
    mode.add_argument('--render', action='store_true', help='no run: rewrite the outputs from benchmarks.json in --out')
    parser.add_argument('--out', help='directory for benchmarks.md/.png/.json (default docs/, or .build/bench-quick with --quick)')
    parser.add_argument('--readme', help='README whose figures block is rewritten (default README.md when --out is docs/)')
    parser.add_argument('--parts', help='comma list of %s (default b1,b3,realism,b2,b5; --full adds b1long)' % ','.join(session.PARTS))
    parser.add_argument('--policies', default=','.join(policies.ORDER), help='B1 policies (default %(default)s)')
    parser.add_argument('--sizes', help='B1 sizes as NxMIB, comma list (default 4x256,4x512,8x256); B2/B3 use the first')
    parser.add_argument('--repeats', type=int, help='runs per cell of D, KX and KX+Z, median reported (default 3)')
    parser.add_argument('--slow-repeats', type=int, help='runs per cell of K0, KA, KT, KT+P (default 1; --full 3)')
    parser.add_argument('--slow-sizes', help="'first' or 'all': B1 sizes the slow policies run at (default first; --full all)")
    parser.add_argument('--long-cap', type=float, default=180.0, help='b1long: seconds each slow policy may take (default %(default)s)')
    parser.add_argument('--cap-factor', type=float, default=10.0, help="slow policies' cap, in multiples of D's median T90")
    parser.add_argument('--min-cap', type=float, default=20.0)
    parser.add_argument('--max-cap', type=float, default=180.0)
    parser.add_argument('--b2-phase', type=int, help='seconds of each B2 phase (default 60; --full: BENCHMARKS.md\'s 300)')
    parser.add_argument('--b2-policies', help='default KX,D (--full K0,KA,KX,KX+Z,D)')
    parser.add_argument('--b3-policies', help='default KX,KX+Z,D (--full K0,KA,KT,KX,KX+Z,D)')
    parser.add_argument('--realism-policies', help='default KX,KX+Z,D (--full adds K0); KX and KX+Z set the reference')
    parser.add_argument('--b3-settle', type=float, default=5.0, help='seconds the 3 merged guests stay steady before the newcomer')
    parser.add_argument('--b5-guests', default='4,32,128', help='B5: numbers of 32 MiB guests (default %(default)s)')
    parser.add_argument('--b5-mib', type=int, default=32)
    parser.add_argument('--b5-window', type=int, default=60, help='B5: seconds of the idle window per N (default %(default)s)')
    parser.add_argument('--churn', type=float, default=0.01, help="B2 churn: share of each guest's pages rewritten per second")
    parser.add_argument('--s-hits', type=float, default=0.2, help='share of the churn writes that land on S pages (break sharing)')
    parser.add_argument('--converge-cap', type=float, default=60.0, help='longest wait for convergence before B2/B3/B5 start')
    parser.add_argument('--daemon-set', action='append', default=[], metavar='KEY=VALUE', help='pagefusiond config for D (tuning)')
    parser.add_argument('--merge', action='store_true', help='keep the parts not run now from the existing benchmarks.json in '
                        '--out, with the first session\'s machine and settings; both sessions are recorded')
    parser.add_argument('--assert-d', action='store_true', help='exit 1 unless D and KX reached T90 in every B1 run (CI)')
    return parser


def parse_args(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    column = 2 if args.quick else 1 if args.full else 0
    changed = [key for key in PROFILES if getattr(args, key) is not None]
    for key, values in PROFILES.items():
        if getattr(args, key) is None:
            setattr(args, key, values[column])
    # a default or full run with its settings changed is neither: its duration is not the profile's
    args.profile = 'quick' if args.quick else ('custom' if changed else 'full' if args.full else 'default')
    args.policies = _names(args.policies)
    if args.quick:
        args.policies = [p for p in args.policies if p != 'KT+P']
        args.out = args.out or os.path.join(ROOT, '.build', 'bench-quick')
        args.min_cap = min(args.min_cap, 10.0)
    for key in ('b2_policies', 'b3_policies', 'realism_policies'):
        setattr(args, key, _names(getattr(args, key)))
    unknown = [p for p in args.policies + args.b2_policies + args.b3_policies + args.realism_policies if p not in policies.BY_NAME]
    if unknown:
        parser.error('unknown policies: %s (known: %s)' % (', '.join(sorted(set(unknown))), ', '.join(policies.ORDER)))
    args.sizes = [parse_size(s) for s in args.sizes.split(',')]
    if args.slow_sizes not in ('first', 'all'):
        parser.error("--slow-sizes: 'first' or 'all'")
    args.parts = _names(args.parts)
    unknown = [p for p in args.parts if p not in session.PARTS]
    if unknown:
        parser.error('unknown parts: %s (known: %s)' % (', '.join(unknown), ', '.join(session.PARTS)))
    args.b5_guests = [int(n) for n in _names(args.b5_guests)]
    args.out = args.out or os.path.join(ROOT, 'docs')
    if args.readme is None and os.path.abspath(args.out) == os.path.join(ROOT, 'docs'):
        args.readme = os.path.join(ROOT, 'README.md')
    return args


def settings_of(args):
    return dict((k, v) for k, v in vars(args).items() if k not in ('out', 'readme', 'render', 'merge'))


def _interrupt(signum, frame):
    raise KeyboardInterrupt('signal %d' % signum)


def render_only(args):
    result = session.load(os.path.join(args.out, 'benchmarks.json'))
    sys.stdout.write(session.write(args.out, result, args.readme, log))
    return 0


def start_result(args, bench):
    """The result's header for this session; with --merge, the earlier parts and the first session's records."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    this_run = {'started': now, 'parts': args.parts, 'machine': session.machine(), 'settings': settings_of(args)}
    bench.result.update({'machine': this_run['machine'], 'started': now, 'profile': args.profile,
                         'settings': this_run['settings'], 'daemon_defaults_overridden': bench.overrides,
                         'policies': dict((name, policies.BY_NAME[name].title) for name in policies.ORDER)})
    earlier = []
    if args.merge:
        try:
            earlier = session.merge(session.load(os.path.join(args.out, 'benchmarks.json')), bench.result, args.parts)
        except (IOError, OSError, ValueError) as err:
            log('--merge: nothing to merge (%s)' % err)
    bench.result['runs'] = earlier + [this_run]
    return this_run


def main(argv=None):
    args = parse_args(argv)
    if args.render:
        return render_only(args)
    if os.geteuid() != 0:
        sys.stderr.write('ksm_bench: run as root: it drives the machine\'s KSM\n')
        return 2
    kern = Kernel()
    lock = kernel.lock()  # first: a test that runs its own pagefusiond under the lock is done before the check
    tuners = kernel.other_tuners()
    if tuners:
        sys.stderr.write('ksm_bench: stop these KSM tuners first, they would change the knobs during the runs: %s\n' % (
            ', '.join('%s (pid %d)' % (name, pid) for pid, name in tuners)))
        if lock:
            lock.close()
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # a CI timeout unwinds like Ctrl-C: guests, policies and KSM are cleaned up
    snapshot = kern.snapshot()
    bench = Bench(args, kern, lambda result: session.write(args.out, result, None, log))
    this_run = start_result(args, bench)
    begun = time.monotonic()
    log('KSM benchmark (%s profile): parts %s, B1 policies %s, sizes %s, %d repeats (slow policies %d)' % (
        args.profile, ','.join(args.parts), ','.join(args.policies), ', '.join('%dx%d MiB' % s for s in args.sizes),
        args.repeats, args.slow_repeats))
    try:
        kern.reset()
        for part in args.parts:
            bench.timed(part, getattr(bench, part))
    finally:
        kern.restore(snapshot)
        if lock:
            lock.close()
    wall = bench.result['wall_seconds']
    wall['total'] = round(sum(v for k, v in wall.items() if k != 'total'), 1)
    bench.result['finished'] = this_run['finished'] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    sys.stdout.write(session.write(args.out, bench.result, args.readme, log))
    log('wrote %s/benchmarks.md, .json%s in %.1f min' % (args.out, ', .png' if bench.result['b1'] else '', (time.monotonic() - begun) / 60))
    if args.assert_d:
        return bench.assert_fast_reached()
    return 0


if __name__ == '__main__':
    sys.exit(main())
