# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The KSM policy benchmark of pagefusion.core (BENCHMARKS.md): pagefusiond against K0, KA, KT, KX and KX+Z.

Modules: ``kernel`` (the KSM lock, other tuners, per-process counters, a process tree's CPU), ``measure`` (figures,
censored medians), ``workload`` (synthetic guests, memory pressure, real TCG guests), ``policies`` (K0, KA, KT, KX,
KX+Z, D), ``scenarios`` (B1, B2, B3), ``realism``, ``scale`` (B5), ``bench`` (a session's parts), ``report`` (tables,
plot), ``checks`` (the targets), ``document`` (benchmarks.md), ``readme`` (the README's figures block), ``session``
(machine, --merge, outputs).
Run it with ``./dev bench`` (see benchmarks/ksm_bench.py).
"""
