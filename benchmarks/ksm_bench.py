# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""pagefusiond against the kernel defaults (K0), the kernel's advisor (KA), Debian's ksmtuned (KT, KT+P) and maximum
effort (KX), as ../shared/BENCHMARKS.md defines it: B1 cold start, B2 steady state, B3 a newcomer, and a realism run
with real TCG guests. Root only; it drives the machine's real KSM (under the KSM lock, pagefusion_dev.ksm_lock) and
puts every knob back at the end. Runs with .venv's Python (pagefusion_dev and the checkout as
ansible_collections.pagefusion.core, both from ./dev setup).

    ./dev bench                     # everything (about 80 min); writes docs/benchmarks.md, .png and .json
    ./dev bench --quick             # CI: a small B1 only (under a minute), into .build/bench-quick/
    ./dev bench --b2-phase 60       # B2 with 1-minute phases instead of BENCHMARKS.md's 5 (about 50 min)
    ./dev bench --parts b3 --merge  # re-run one part, keep the others from docs/benchmarks.json

Slow policies are measured up to a cap of ``--cap-factor`` (10) times D's median T90 at the same size: enough to
decide "D reaches T90 at least 10x sooner", and a run stopped there counts as "not reached" (``> cap``). Once more
than half of a cell's runs are censored its median is settled and the remaining repeats are skipped.
"""

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time

from ksmbench import kernel, measure, policies, realism, report, scenarios, workload
from pagefusion_dev.collection import ROOT
from pagefusion_dev.ksm_reset import Kernel

SIZES = [(4, 256), (4, 512), (8, 256)]
PARTS = ('b1', 'b3', 'realism', 'b2', 'b1long')
FAST = ('D', 'KX')
SLOW = ('K0', 'KA', 'KT', 'KT+P')


def log(message):
    sys.stderr.write('[%s] %s\n' % (time.strftime('%H:%M:%S'), message))
    sys.stderr.flush()


def machine():
    """What ran the benchmark: CPU, cores, memory, kernel, distribution, load before the start."""
    info = {'kernel': platform.release(), 'cores': os.cpu_count(), 'python': platform.python_version()}
    try:
        with open('/proc/cpuinfo') as handle:
            names = [line.split(':', 1)[1].strip() for line in handle if line.startswith('model name')]
        info['cpu'] = names[0] if names else platform.machine()
    except (IOError, OSError):
        info['cpu'] = platform.machine()
    info['memory_gib'] = round(workload.meminfo()['MemTotal'] / 1024.0 / 1024.0, 1)
    try:
        with open('/etc/os-release') as handle:
            info['os'] = dict(line.rstrip('\n').split('=', 1) for line in handle if '=' in line).get('PRETTY_NAME', '').strip('"')
    except (IOError, OSError):
        info['os'] = platform.system()
    info['load_before'] = os.getloadavg()
    try:
        info['hypervisor'] = subprocess.run(['systemd-detect-virt'], capture_output=True, text=True, check=False).stdout.strip() or None
    except OSError:
        info['hypervisor'] = None
    return info


class Bench(object):
    def __init__(self, args, kern):
        self.args = args
        self.kern = kern
        self.overrides = dict(item.split('=', 1) for item in args.daemon_set)
        self.result = {'b1': [], 'b1long': [], 'b2': [], 'b3': [], 'realism': [], 'wall_seconds': {}, 'skipped': []}

    def wanted(self, name):
        return name in self.args.policies

    def cap_for(self, d_t90s):
        d = measure.median(d_t90s, [self.args.max_cap] * len(d_t90s))
        if d is None or isinstance(d, measure.Censored):
            return self.args.max_cap
        return min(self.args.max_cap, max(self.args.min_cap, self.args.cap_factor * d))

    def repeat(self, name, run, repeats):
        """Run a cell up to ``repeats`` times, fewer when its median is settled as censored."""
        results = []
        for index in range(repeats):
            out = run()
            results.append(out)
            t90 = out.get('t90')
            log('%s run %d/%d: T90 %s, ksmd %s CPU-s' % (name, index + 1, repeats, report.fmt_seconds(t90) if t90 is not None
                                                         else 'not reached by %.0f s' % out['cap'],
                                                         report.fmt_number(out.get('cpu_t90') or out.get('cpu_at_cap') or out.get('cpu_at_end'))))
            if measure.median_settled([r.get('t90') for r in results], repeats) and index + 1 < repeats:
                log('%s: more than half of the runs stopped at the cap: median settled, %d repeat(s) skipped' % (name, repeats - index - 1))
                break
        return results

    def usable(self, name):
        """Whether a policy can run here; when not, the reason goes to the report's "Skipped" list (once)."""
        why = None
        if name in ('KT', 'KT+P') and not policies.Ksmtuned.available():
            why = '%s: ksmtuned is not installed' % name
        elif name == 'KT+P':
            try:
                workload.Pressure().plan()
            except RuntimeError as err:
                why = 'KT+P: %s' % err
        if why is None:
            return True
        log('skipped: %s' % why)
        if why not in self.result['skipped']:
            self.result['skipped'].append(why)
        return False

    # -- B1 -----------------------------------------------------------------------------

    def b1(self):
        for guests, mib in self.args.sizes:
            log('B1 N=%d G=%d MiB' % (guests, mib))
            d_t90 = []
            fast = [p for p in FAST if self.wanted(p)]
            # D and KX alternate so that slow drift of the machine hits both alike
            for index in range(self.args.repeats):
                for name in fast:
                    out = scenarios.b1(self.kern, name, guests, mib, self.args.max_cap, self.overrides)
                    log('B1 %s run %d/%d: T50 %s T90 %s, ksmd %s CPU-s to T90' % (
                        name, index + 1, self.args.repeats, report.fmt_seconds(out['t50']), report.fmt_seconds(out['t90']),
                        report.fmt_number(out['cpu_t90'])))
                    self.result['b1'].append(out)
                    if name == 'D':
                        d_t90.append(out['t90'])
            cap = self.cap_for(d_t90) if d_t90 else self.args.max_cap
            for name in SLOW:
                if not self.wanted(name) or not self.usable(name):
                    continue
                log('B1 %s: up to %.0f s a run (%gx D\'s median T90)' % (name, cap, self.args.cap_factor))
                pressure = workload.Pressure() if policies.BY_NAME[name].pressure else None
                try:
                    self.result['b1'].extend(self.repeat('B1 %s' % name, lambda n=name, p=pressure: scenarios.b1(
                        self.kern, n, guests, mib, cap, self.overrides, progress=log, pressure=p), self.args.repeats))
                finally:
                    if pressure is not None:
                        pressure.stop()

    def b1long(self):
        """The slow policies once each at the first size, up to --long-cap: their real T50/T90, not just a bound."""
        guests, mib = self.args.sizes[0]
        for name in SLOW:
            if not self.wanted(name) or not self.usable(name):
                continue
            log('B1 to the end, %s: N=%d G=%d MiB, up to %.0f s' % (name, guests, mib, self.args.long_cap))
            out = scenarios.b1(self.kern, name, guests, mib, self.args.long_cap, self.overrides, progress=log)
            t90 = report.fmt_seconds(out['t90']) if out['t90'] is not None else 'not reached by %.0f s' % out['cap']
            log('B1 to the end, %s: T50 %s, T90 %s' % (name, report.fmt_seconds(out['t50']), t90))
            self.result['b1long'].append(out)

    # -- B2 -----------------------------------------------------------------------------

    def b2(self):
        guests, mib = self.args.sizes[0]
        for name in self.args.b2_policies:
            if not self.wanted(name) or not self.usable(name):
                continue
            log('B2 %s: N=%d G=%d MiB, %d s idle then %d s churn' % (name, guests, mib, self.args.b2_phase, self.args.b2_phase))
            out = scenarios.b2(self.kern, name, guests, mib, self.args.b2_phase, self.args.churn, self.args.s_hits,
                               self.args.converge_cap, name not in FAST, self.overrides, progress=log)
            log('B2 %s: idle ksmd %.3f%% saved %.1f%%; churn ksmd %.3f%% saved %.1f%%' % (
                name, out['idle']['cpu_percent'], 100 * out['idle']['saved_fraction'], out['churn']['cpu_percent'],
                100 * out['churn']['saved_fraction']))
            self.result['b2'].append(out)

    # -- B3 -----------------------------------------------------------------------------

    def b3(self):
        mib = self.args.sizes[0][1]
        d_t90 = []
        cap = self.args.max_cap
        for name in [p for p in FAST if p in self.args.b3_policies] + [p for p in SLOW if p in self.args.b3_policies]:
            if not self.wanted(name) or not self.usable(name):
                continue
            if name in SLOW:
                cap = self.cap_for(d_t90) if d_t90 else self.args.max_cap
            log('B3 %s: 3 guests of %d MiB merged, a fourth joins (up to %.0f s)' % (name, mib, cap))
            runs = self.repeat('B3 %s' % name, lambda n=name, c=cap: scenarios.b3(
                self.kern, n, mib, c, self.args.b3_settle, self.args.converge_cap, n not in FAST, self.overrides), self.args.repeats)
            if name == 'D':
                d_t90 = [r['t90'] for r in runs]
            self.result['b3'].extend(runs)

    # -- realism ------------------------------------------------------------------------

    def realism(self):
        spec = argparse.Namespace(number=3, memory_mib=256, fill_mib=64, unique_mib=32)
        log('realism: 3 TCG guests (256 MiB, one kernel and initramfs); KX first: its plateau is the reference')
        kx = [realism.run(self.kern, 'KX', spec, self.args.max_cap, progress=log) for dummy in range(self.args.repeats)]
        reference = max(r['plateau_pages'] for r in kx)
        runs = list(kx)
        d_runs = [realism.run(self.kern, 'D', spec, self.args.max_cap, reference, self.overrides, progress=log)
                  for dummy in range(self.args.repeats)]
        runs += d_runs
        d_t90 = [realism.figures(r, reference, self.kern.page_size)['t90'] for r in d_runs]
        cap = self.cap_for(d_t90)
        k0 = []
        for dummy in range(self.args.repeats):
            k0.append(realism.run(self.kern, 'K0', spec, cap, reference, progress=log))
            if measure.median_settled([realism.figures(r, reference, self.kern.page_size)['t90'] for r in k0], self.args.repeats):
                break
        runs += k0
        for run in runs:
            run.update(realism.figures(run, reference, self.kern.page_size))
            run['reference_pages'] = reference
            run['mib'] = spec.memory_mib
        self.result['realism'] = runs

    def timed(self, part, func):
        start = time.monotonic()
        self.result[part] = []
        func()
        self.result['wall_seconds'][part] = round(time.monotonic() - start, 1)
        log('%s done in %.1f min' % (part, (time.monotonic() - start) / 60))
        write_outputs(self.args, self.result)  # a later part failing keeps this one (see --merge)


def parse_size(text):
    guests, mib = text.lower().split('x')
    return int(guests), int(mib)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--quick', action='store_true', help='CI: B1 only, N=2 G=64 MiB, one run per policy, no KT+P')
    parser.add_argument('--out', help='directory for benchmarks.md/.png/.json (default docs/, or .build/bench-quick with --quick)')
    parser.add_argument('--parts', default=None,
                        help='comma list of b1,b3,realism,b2,b1long (default all, in that order; --quick: b1)')
    parser.add_argument('--long-cap', type=float, default=180.0, help='b1long: seconds each slow policy may take (default %(default)s)')
    parser.add_argument('--policies', default=','.join(policies.ORDER), help='comma list (default %(default)s)')
    parser.add_argument('--sizes', default=None, help='B1 sizes as NxMIB, comma list (default 4x256,4x512,8x256); B2/B3 use the first')
    parser.add_argument('--repeats', type=int, default=None, help='runs per cell, median reported (default 3)')
    parser.add_argument('--cap-factor', type=float, default=10.0, help="slow policies' cap, in multiples of D's median T90")
    parser.add_argument('--min-cap', type=float, default=20.0)
    parser.add_argument('--max-cap', type=float, default=180.0)
    parser.add_argument('--b2-phase', type=int, default=300, help='seconds of each B2 phase (default: BENCHMARKS.md\'s 5 minutes)')
    parser.add_argument('--b2-policies', default='K0,KA,KX,D', help='default %(default)s (KT: add it; it stops ksmd after 60 s)')
    parser.add_argument('--b3-policies', default='K0,KA,KT,KX,D')
    parser.add_argument('--b3-settle', type=float, default=5.0, help='seconds the 3 merged guests stay steady before the newcomer')
    parser.add_argument('--churn', type=float, default=0.01, help="B2 churn: share of each guest's pages rewritten per second")
    parser.add_argument('--s-hits', type=float, default=0.2, help='share of the churn writes that land on S pages (break sharing)')
    parser.add_argument('--converge-cap', type=float, default=60.0, help='longest wait for convergence before B2/B3 start')
    parser.add_argument('--daemon-set', action='append', default=[], metavar='KEY=VALUE', help='pagefusiond config for D (tuning)')
    parser.add_argument('--merge', action='store_true',
                        help='keep the parts not run now from the existing benchmarks.json in --out (re-run one part)')
    parser.add_argument('--assert-d', action='store_true', help='exit 1 unless D and KX reached T90 in every B1 run (CI)')
    args = parser.parse_args(argv)
    args.policies = [p.strip() for p in args.policies.split(',') if p.strip()]
    unknown = [p for p in args.policies if p not in policies.BY_NAME]
    if unknown:
        parser.error('unknown policies: %s (known: %s)' % (', '.join(unknown), ', '.join(policies.ORDER)))
    args.b2_policies = [p for p in args.b2_policies.split(',') if p]
    args.b3_policies = [p for p in args.b3_policies.split(',') if p]
    if args.quick:
        args.sizes = args.sizes or '2x64'
        args.repeats = args.repeats or 1
        args.parts = args.parts or 'b1'
        args.policies = [p for p in args.policies if p != 'KT+P']
        args.out = args.out or os.path.join(ROOT, '.build', 'bench-quick')
        args.min_cap = min(args.min_cap, 10.0)
    args.sizes = [parse_size(s) for s in (args.sizes or '4x256,4x512,8x256').split(',')]
    args.repeats = args.repeats or 3
    args.parts = [p for p in (args.parts or 'b1,b3,realism,b2,b1long').split(',') if p]
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error('unknown parts: %s (known: %s)' % (', '.join(unknown), ', '.join(PARTS)))
    args.out = args.out or os.path.join(ROOT, 'docs')
    return args


def write_outputs(args, result):
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, 'benchmarks')
    with open(stem + '.json', 'w') as handle:
        json.dump(result, handle, indent=1, sort_keys=True, default=float)
    png = None
    if result['b1']:
        try:
            report.plot(stem + '.png', result['b1'], args.sizes, result['realism'], result['b2'], result.get('b1long'))
            png = os.path.basename(stem + '.png')
        except ImportError as err:
            log('no plot: %s (pip install matplotlib)' % err)
    text = render(result, args, png)
    with open(stem + '.md', 'w') as handle:
        handle.write(text)
    return text


def render(result, args, png):
    from ksmbench import document  # pylint: disable=import-outside-toplevel
    return document.render(result, args.sizes, png)


def merge_earlier(args, result):
    """--merge: the parts not run now from the existing benchmarks.json into ``result``; the earlier runs."""
    try:
        with open(os.path.join(args.out, 'benchmarks.json')) as handle:
            old = json.load(handle)
    except (IOError, OSError, ValueError) as err:
        log('--merge: nothing to merge (%s)' % err)
        return []
    for part in PARTS:
        if part not in args.parts:
            result[part] = old.get(part, [])
            if part in old.get('wall_seconds', {}):
                result['wall_seconds'][part] = old['wall_seconds'][part]
    return old.get('runs') or [{'started': old.get('started'), 'finished': old.get('finished'),
                                'parts': [p for p in PARTS if old.get(p)]}]


def _interrupt(signum, frame):
    raise KeyboardInterrupt('signal %d' % signum)


def main(argv=None):
    args = parse_args(argv)
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
    bench = Bench(args, kern)
    earlier = merge_earlier(args, bench.result) if args.merge else []
    started = datetime.datetime.now(datetime.timezone.utc)
    this_run = {'started': started.isoformat(timespec='seconds'), 'parts': args.parts}
    bench.result['runs'] = earlier + [this_run]
    bench.result.update({'machine': machine(), 'started': (earlier[0]['started'] if earlier else this_run['started']),
                         'profile': 'quick' if args.quick else 'default',
                         'settings': dict((k, v) for k, v in vars(args).items() if k not in ('out',)),
                         'policies': dict((name, policies.BY_NAME[name].title) for name in policies.ORDER),
                         'daemon_defaults_overridden': bench.overrides})
    log('KSM benchmark (%s profile): parts %s, policies %s, B1 sizes %s, %d repeats' % (
        bench.result['profile'], ','.join(args.parts), ','.join(args.policies),
        ', '.join('%dx%d MiB' % s for s in args.sizes), args.repeats))
    try:
        kern.reset()
        for part in args.parts:
            bench.timed(part, getattr(bench, part))
    finally:
        kern.restore(snapshot)
        if lock:
            lock.close()
    total = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    bench.result['wall_seconds']['total'] = round(sum(v for k, v in bench.result['wall_seconds'].items() if k != 'total'), 1)
    bench.result['finished'] = this_run['finished'] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    text = write_outputs(args, bench.result)
    sys.stdout.write(text)
    log('wrote %s/benchmarks.md, .json%s in %.1f min' % (args.out, ', .png' if bench.result['b1'] else '', total / 60))
    if args.assert_d:
        missing = [r for r in bench.result['b1'] if r['policy'] in FAST and r['t90'] is None]
        if missing or not bench.result['b1']:
            log('FAILED: %s did not reach T90' % ', '.join(sorted(set(r['policy'] for r in missing))) if missing else 'FAILED: no B1 run')
            return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
