# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""B4 of ../shared/BENCHMARKS.md: real Debian 12 guests free memory; what comes back to the host (benchmarks/guest_coop.py)."""
