# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The rate model: which KSM knob values each phase wants."""

from __future__ import annotations

import math

# ksmd CPU seconds per scanned page assumed until measured (a first pass costs ~1.5 us a page on a
# 2020s x86 core, a merging pass ~5-8 us).
PRIOR_CPU_PER_PAGE = 2e-6


def steady_budget(config, meter):
    """ksmd's share of ``steady_max_cpu_percent``: the budget covers the daemon's own CPU too (at least a quarter stays ksmd's)."""
    budget = config['steady_max_cpu_percent']
    return max(budget / 4.0, budget - (meter.own_cpu_percent or 0.0))


class RateModel(object):
    """Turns a phase, the mergeable pages and the ksmd meter's readings into knob values.

    It carries one correction between steps, ``cpu_scale``: the feedback factor of
    :meth:`pages_for`, reset to 1 when the phase changes (:meth:`new_phase`), since what was
    measured before ran under the previous phase's settings.
    """

    def __init__(self):
        self.cpu_scale = 1.0
        self.fresh_phase = False
        self.last_rate = None  # the scan rate the last knobs were written for (what the meter measured under)

    def new_phase(self):
        self.cpu_scale = 1.0
        self.fresh_phase = True
        self.last_rate = None

    def pages_for(self, meter, pages, pass_seconds, sleep_ms, cpu_budget, minimum, maximum):
        """pages_to_scan so that ``pages`` are scanned in ``pass_seconds`` with ``sleep_ms`` sleeps, within ``cpu_budget`` %.

        The model: ksmd scans ``pages_to_scan`` pages (costing ``cpu_per_page`` each, measured from
        pages_scanned and ksmd's CPU time by the ``meter``), then sleeps. The wanted rate is
        ``pages/pass_seconds``, capped at ``cpu_budget / cpu_per_page``; the batch follows from
        ``rate * sleep / (1 - busy)``. Until the cost is measured (kernels before 6.7 have no
        pages_scanned) a prior of ``PRIOR_CPU_PER_PAGE`` stands in.
        A feedback factor then corrects the model with what was measured over the last step: down
        when ksmd's CPU was over the budget, up when the scan rate fell short of the wanted rate
        with CPU to spare (ksmd's sleeps last longer than asked: they are rounded up to jiffies).
        The result lies between ``minimum`` and ``maximum``.
        """
        rate = pages / float(pass_seconds)  # pages per second wanted
        sleep_s = max(sleep_ms, 1) / 1000.0
        cost = meter.cpu_per_page or PRIOR_CPU_PER_PAGE
        rate = min(rate, cpu_budget / 100.0 / cost)
        busy = min(rate * cost, 0.95)
        value = rate * sleep_s / (1.0 - busy)
        # The steady rate moves with the break rate: judge the measurement against what it ran under.
        self._correct(rate if self.last_rate is None else self.last_rate, cpu_budget, meter.cpu_percent, meter.scan_rate)
        self.last_rate = rate
        value *= self.cpu_scale
        return int(max(minimum, min(maximum, math.ceil(value))))

    def _correct(self, rate, cpu_budget, cpu, measured):
        """Update the feedback factor from the CPU use and scan rate measured over the last step."""
        if self.fresh_phase or cpu is None:
            pass  # what was measured last ran under the previous phase's settings
        elif cpu > cpu_budget * 1.1:
            self.cpu_scale *= max(0.25, cpu_budget / cpu)
        elif measured is not None and measured < 0.9 * rate and cpu < 0.9 * cpu_budget:
            self.cpu_scale *= min(2.0, rate / max(measured, 1.0))
        elif measured is not None and measured > 1.3 * rate:
            self.cpu_scale *= max(0.5, math.sqrt(rate / measured))
        self.cpu_scale = max(0.02, min(8.0, self.cpu_scale))

    def wanted_knobs(self, config, phase, knobs, pages, meter, steady_pass=None):
        """The knob values for ``phase`` (only knobs this kernel has, as listed in ``knobs``), once a step.

        ``steady_pass``: seconds a steady pass should take (the churn-aware figure of
        :func:`realsaving.steady_pass_seconds`); None: ``steady_pass_seconds``.
        """
        steady_pass = config['steady_pass_seconds'] if steady_pass is None else steady_pass
        wanted = self._wanted(config, phase, knobs, pages, meter, steady_pass)
        self.fresh_phase = False  # the next step measures under these settings
        return wanted

    def _wanted(self, cfg, phase, knobs, pages, meter, steady_pass):
        wanted = {}
        if 'advisor_mode' in knobs:
            wanted['advisor_mode'] = 'none'
        if cfg['use_zero_pages'] != 'keep' and 'use_zero_pages' in knobs:
            wanted['use_zero_pages'] = 1 if cfg['use_zero_pages'] == 'true' else 0
        if phase == 'idle':
            if cfg['idle_stop']:
                wanted['run'] = 0
            wanted.pop('advisor_mode', None)
            return wanted
        wanted['run'] = 1
        if phase in ('boost', 'settle'):
            wanted['sleep_millisecs'] = cfg['boost_sleep_millisecs']
            wanted['pages_to_scan'] = self.pages_for(meter, pages, cfg['boost_pass_seconds'], cfg['boost_sleep_millisecs'],
                                                     cfg['max_cpu_percent'], 100, cfg['boost_max_pages_to_scan'])
            return wanted
        wanted['sleep_millisecs'] = cfg['steady_sleep_millisecs']
        if cfg['steady_mode'] == 'advisor' and 'advisor_mode' in knobs:
            wanted['advisor_mode'] = 'scan-time'
            wanted['advisor_max_cpu'] = max(1, int(round(cfg['steady_max_cpu_percent'])))
            wanted['advisor_target_scan_time'] = max(1, int(round(cfg['steady_pass_seconds'])))
            return wanted
        wanted['pages_to_scan'] = self.pages_for(meter, pages, steady_pass, cfg['steady_sleep_millisecs'],
                                                 steady_budget(cfg, meter), cfg['steady_min_pages_to_scan'],
                                                 cfg['boost_max_pages_to_scan'])
        return wanted
