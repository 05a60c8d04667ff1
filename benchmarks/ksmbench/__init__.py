# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The KSM policy benchmark of pagefusion.core (BENCHMARKS.md): pagefusiond against K0, KA, KT and KX.

Modules: ``kernel`` (the KSM lock, other tuners, per-process counters), ``measure`` (B1 figures, censored medians),
``workload`` (synthetic guests, memory pressure, real TCG guests), ``policies`` (K0, KA, KT, KX, D),
``scenarios`` (B1, B2, B3, realism), ``report`` (Markdown tables and the PNG plot).
Run it with ``./dev bench`` (see benchmarks/ksm_bench.py).
"""
