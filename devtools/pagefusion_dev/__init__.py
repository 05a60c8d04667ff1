# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Dev-only helpers shared by pagefusion.core's tests (tests/setup) and its KSM benchmark (benchmarks/).

Modules: ``collection`` (the checkout: the KSM model and the paths of its programs), ``ksm_lock`` (the
machine-wide KSM lock), ``ksm_reset`` (save, reset and restore the KSM knobs; the real KSM with ksmd's CPU
clock), ``synthetic_guests`` (stdlib-only, also runs on its own), ``daemon_run`` (pagefusiond from the checkout
with a temporary config), ``convergence`` (sampled traces and their interpolated T50/T90 crossings).

Not part of the built collection (galaxy.yml build_ignore). ``./dev setup`` installs it editable into .venv
and makes the checkout importable as ``ansible_collections.pagefusion.core`` there (see devtools/README.md).
"""
