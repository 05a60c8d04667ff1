# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
name: binary_size
short_description: A byte count as a size a person reads, in binary units (KiB, MiB, GiB)
version_added: 0.1.0
description:
  - Formats a number of bytes with binary (IEC) units, C(1 MiB = 1024 KiB = 1048576 B), the units the
    kernel's pages and KSM's counters come in. The collection's report and demo use it for every size.
  - Unlike P(ansible.builtin.human_readable#filter), which divides by 1024 but labels the result C(MB),
    the label always says what the number is.
  - Picks the largest unit in which the value is at least 1, unless O(unit) names one.
positional: unit
options:
  _input:
    description: The size in bytes. Must not be negative.
    type: float
    required: true
  unit:
    description:
      - The unit to use. V(auto) picks the largest unit in which the value is at least 1.
    type: str
    default: auto
    choices: [auto, B, KiB, MiB, GiB, TiB]
  precision:
    description: Digits after the decimal point (sizes in B never have any).
    type: int
    default: 1
'''

EXAMPLES = r'''
- name: "Show a saving: '539.5 MiB'"
  ansible.builtin.debug:
    msg: "{{ 565707571 | pagefusion.core.binary_size }}"

- name: "Always in MiB, two decimals: '0.50 MiB'"
  ansible.builtin.debug:
    msg: "{{ 524288 | pagefusion.core.binary_size('MiB', precision=2) }}"
'''

RETURN = r'''
_value:
  description: The size with its unit, for example V(539.5 MiB), V(4.0 KiB) or V(512 B).
  type: str
'''

from ansible.errors import AnsibleFilterError

UNITS = ('B', 'KiB', 'MiB', 'GiB', 'TiB')


def _pick_unit(size):
    exponent = 0
    while exponent < len(UNITS) - 1 and abs(size) >= 1024 ** (exponent + 1):
        exponent += 1
    return exponent


def binary_size(size, unit='auto', precision=1):
    """``size`` bytes as text in binary units, e.g. ``'539.5 MiB'``."""
    try:
        size = float(size)
    except (TypeError, ValueError):
        raise AnsibleFilterError('binary_size: %r is not a number of bytes' % (size,))
    if size < 0:
        raise AnsibleFilterError('binary_size: %r bytes is negative; a size cannot be' % (size,))
    if unit != 'auto' and unit not in UNITS:
        raise AnsibleFilterError('binary_size: unit %r is not one of auto, %s' % (unit, ', '.join(UNITS)))
    exponent = _pick_unit(size) if unit == 'auto' else UNITS.index(unit)
    if exponent == 0:
        return '%d B' % round(size)
    return '%.*f %s' % (int(precision), size / 1024 ** exponent, UNITS[exponent])


class FilterModule(object):
    """Filters of pagefusion.core."""

    def filters(self):
        return {'binary_size': binary_size}
