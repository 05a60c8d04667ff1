# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""pagefusiond, the host fusion daemon of pagefusion.core.

It drives Linux KSM so that most of the page-sharing savings arrive within seconds of new
mergeable memory, at a small CPU cost afterwards. It runs outside Ansible: Python standard library
only, plus libvirt-python when it can be imported. Every KSM read and write goes through the
collection's ``_ksm.py``, the one KSM model of pagefusion.core (see :mod:`.collection`).

Run it as ``python3 daemon/pagefusiond`` from a checkout, or as
``python3 /usr/lib/pagefusiond/pagefusiond`` where the role ``pagefusion.core.host_daemon``
installed it (see ``__main__.py``).

Phases (``state.json`` ``phase``):

* ``idle``: no process has mergeable memory; ksmd is stopped with ``run=0`` (merged pages stay
  merged: the daemon never unmerges).
* ``boost``: new mergeable memory appeared (a new mergeable process, mergeable memory grew, a
  libvirt domain started); ksmd scans hard, sized so that one full pass over the mergeable pages
  takes ``boost_pass_seconds``, capped by ``max_cpu_percent`` of ksmd CPU measured from ksmd's own
  CPU time. Lasts ``boost_min_passes`` full scans.
* ``settle``: same rate; each full pass is compared with the one before; after ``settle_passes``
  passes that added less than ``settle_threshold_percent`` of the mergeable pages to the saving,
  the daemon goes steady.
* ``steady``: a maintenance rate set by how fast writes break sharing (``cow_ksm``): one pass per
  ``steady_quiet_pass_seconds`` while nothing breaks it, faster under churn so that at most
  ``steady_loss_percent`` of the saving waits for ksmd, within ``steady_max_cpu_percent`` (ksmd and
  the daemon together); or the kernel's scan-time advisor (``steady_mode = advisor``).

Modules, one concern each:

* ``config``: the configuration keys, their defaults and checks, the INI file;
* ``watcher``: which processes have mergeable memory, and how much;
* ``phases``: the phase machine (pure: an observation in, the next phase and its reason out);
* ``meter``: ksmd's CPU use and its cost per scanned page, and the daemon's own CPU;
* ``realsaving``: the rate of broken sharing (steady pass time) and the real saving (Rss - Pss);
* ``rates``: the knob values each phase wants (the rate model);
* ``snapshot``: the host's KSM knobs from before the daemon started, and putting them back;
* ``controller``: one control step: observe, decide, plan, apply, report;
* ``outputs``: the state file, Prometheus metrics, the ``--status`` text;
* ``events``: libvirt lifecycle events (optional);
* ``service``: the long-running process (signals, the loop, reload, stop);
* ``cli``: the command line; ``__main__``: the launcher.
"""

from __future__ import annotations

__version__ = '0.1.0'

# The exit codes of the program (``cli.main``, ``service.Daemon.run``).
EXIT_OK = 0
EXIT_ERROR = 1  # --status: no daemon, or a stale one
EXIT_CONFIG = 2  # a configuration the daemon refuses
EXIT_NO_KSM = 3  # this kernel has no KSM
EXIT_KSM_READ_ONLY = 4  # the KSM settings cannot be written (read-only /sys, not root)
