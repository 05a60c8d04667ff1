# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The parts of a benchmark session (B1, b1long, B2, B3, realism, B5): which policies run, how often, up to which cap."""

import argparse
import sys
import time

from . import measure, policies, realism, report, scale, scenarios, workload

FAST = ('D', 'KX', 'KX+Z')  # run to T90 every time; D and the KX controls alternate so drift hits them alike
SLOW = ('K0', 'KA', 'KT', 'KT+P')


def log(message):
    sys.stderr.write('[%s] %s\n' % (time.strftime('%H:%M:%S'), message))
    sys.stderr.flush()


class Bench(object):
    def __init__(self, args, kern, save):
        self.args = args
        self.kern = kern
        self.save = save  # called with the result after each part: a later part failing keeps this one
        self.overrides = dict(item.split('=', 1) for item in args.daemon_set)
        self.result = {'b1': [], 'b1long': [], 'b2': [], 'b3': [], 'realism': [], 'b5': [], 'wall_seconds': {}, 'skipped': []}

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
            log('%s run %d/%d: T90 %s, CPU %s s (ksmd + own)' % (
                name, index + 1, repeats, report.fmt_seconds(t90) if t90 is not None else 'not reached by %.0f s' % out['cap'],
                report.fmt_number(out.get('total_cpu_t90') or out.get('total_cpu_at_cap') or out.get('total_cpu_at_end'))))
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

    def b1(self):
        for position, (guests, mib) in enumerate(self.args.sizes):
            log('B1 N=%d G=%d MiB' % (guests, mib))
            d_t90 = []
            fast = [p for p in FAST if p in self.args.policies]
            for index in range(self.args.repeats):
                for name in fast:
                    out = scenarios.b1(self.kern, name, guests, mib, self.args.max_cap, self.overrides)
                    log('B1 %s run %d/%d: T50 %s T90 %s, CPU to T90 %s s (ksmd %s)' % (
                        name, index + 1, self.args.repeats, report.fmt_seconds(out['t50']), report.fmt_seconds(out['t90']),
                        report.fmt_number(out.get('total_cpu_t90')), report.fmt_number(out['cpu_t90'])))
                    self.result['b1'].append(out)
                    if name == 'D':
                        d_t90.append(out['t90'])
            if position > 0 and self.args.slow_sizes == 'first':
                continue
            self._b1_slow(guests, mib, self.cap_for(d_t90) if d_t90 else self.args.max_cap)

    def _b1_slow(self, guests, mib, cap):
        for name in SLOW:
            if name not in self.args.policies or not self.usable(name):
                continue
            log('B1 %s: up to %.0f s a run (%gx D\'s median T90)' % (name, cap, self.args.cap_factor))
            pressure = workload.Pressure() if policies.BY_NAME[name].pressure else None
            try:
                self.result['b1'].extend(self.repeat('B1 %s' % name, lambda n=name, p=pressure: scenarios.b1(
                    self.kern, n, guests, mib, cap, self.overrides, progress=log, pressure=p), self.args.slow_repeats))
            finally:
                if pressure is not None:
                    pressure.stop()

    def b1long(self):
        """The slow policies once each at the first size, up to --long-cap: their real T50/T90, not just a bound."""
        guests, mib = self.args.sizes[0]
        for name in SLOW:
            if name not in self.args.policies or not self.usable(name):
                continue
            log('B1 to the end, %s: N=%d G=%d MiB, up to %.0f s' % (name, guests, mib, self.args.long_cap))
            self.result['b1long'].append(scenarios.b1(self.kern, name, guests, mib, self.args.long_cap, self.overrides, progress=log))

    def b2(self):
        guests, mib = self.args.sizes[0]
        for name in self.args.b2_policies:
            if not self.usable(name):
                continue
            log('B2 %s: N=%d G=%d MiB, %d s idle then %d s churn' % (name, guests, mib, self.args.b2_phase, self.args.b2_phase))
            out = scenarios.b2(self.kern, name, guests, mib, self.args.b2_phase, self.args.churn, self.args.s_hits,
                               self.args.converge_cap, name not in FAST, self.overrides, progress=log)
            log('B2 %s: idle CPU %s%% (ksmd + own); churn CPU %s%%, real saving %s' % (
                name, report.fmt_number(report.phase_cpu(out, 'idle'), 3), report.fmt_number(report.phase_cpu(out, 'churn'), 3),
                report.fmt_number(report.saved(out, 'churn'), 4)))
            self.result['b2'].append(out)

    def b3(self):
        mib = self.args.sizes[0][1]
        d_t90 = []
        for name in [p for p in FAST if p in self.args.b3_policies] + [p for p in SLOW if p in self.args.b3_policies]:
            if not self.usable(name):
                continue
            cap = self.cap_for(d_t90) if name in SLOW and d_t90 else self.args.max_cap
            repeats = self.args.slow_repeats if name in SLOW else self.args.repeats
            log('B3 %s: 3 guests of %d MiB merged, a fourth joins (up to %.0f s)' % (name, mib, cap))
            runs = self.repeat('B3 %s' % name, lambda n=name, c=cap: scenarios.b3(
                self.kern, n, mib, c, self.args.b3_settle, self.args.converge_cap, n not in FAST, self.overrides), repeats)
            if name == 'D':
                d_t90 = [r['t90'] for r in runs]
            self.result['b3'].extend(runs)

    def realism(self):
        spec = argparse.Namespace(number=3, memory_mib=256, fill_mib=64, unique_mib=32)
        wanted = self.args.realism_policies
        references = [p for p in ('KX', 'KX+Z') if p in wanted] or ['KX']
        log('realism: 3 TCG guests (256 MiB); %s first: the largest plateau is the reference' % ' and '.join(references))
        runs = [realism.run(self.kern, name, spec, self.args.max_cap, progress=log)
                for dummy in range(self.args.repeats) for name in references]
        reference = max(r['plateau_pages'] for r in runs)
        d_runs = [realism.run(self.kern, 'D', spec, self.args.max_cap, reference, self.overrides, progress=log)
                  for dummy in range(self.args.repeats)] if 'D' in wanted else []
        runs += d_runs
        if 'K0' in wanted:
            cap = self.cap_for([realism.figures(r, reference, self.kern.page_size)['t90'] for r in d_runs])
            k0 = []
            for dummy in range(self.args.slow_repeats):
                k0.append(realism.run(self.kern, 'K0', spec, cap, reference, progress=log))
                if measure.median_settled([realism.figures(r, reference, self.kern.page_size)['t90'] for r in k0], self.args.slow_repeats):
                    break
            runs += k0
        for run in runs:
            run.update(realism.figures(run, reference, self.kern.page_size))
            run['reference_pages'] = reference
            run['mib'] = spec.memory_mib
        self.result['realism'] = runs

    def b5(self):
        for guests in self.args.b5_guests:
            log('B5 N=%d guests of %d MiB: converge, %d s idle window, a newcomer' % (guests, self.args.b5_mib, self.args.b5_window))
            self.result['b5'].append(scale.run(self.kern, guests, self.args.b5_mib, self.args.b5_window, self.args.converge_cap,
                                               daemon_overrides=self.overrides, progress=log))

    def timed(self, part, func):
        start = time.monotonic()
        self.result[part] = []
        func()
        self.result['wall_seconds'][part] = round(time.monotonic() - start, 1)
        log('%s done in %.1f min' % (part, (time.monotonic() - start) / 60))
        self.save(self.result)

    def assert_fast_reached(self):
        """CI: 0 when D and KX reached T90 in every B1 run, else 1 (logged)."""
        missing = [r for r in self.result['b1'] if r['policy'] in ('D', 'KX') and r['t90'] is None]
        if missing or not self.result['b1']:
            log('FAILED: %s did not reach T90' % ', '.join(sorted(set(r['policy'] for r in missing))) if missing else 'FAILED: no B1 run')
            return 1
        return 0
