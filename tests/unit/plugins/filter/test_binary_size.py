# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The binary_size filter: every size a person reads, in binary units with the unit named."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.pagefusion.core.plugins.filter.binary_size import FilterModule, binary_size


@pytest.mark.parametrize('size, unit, precision, text', [
    (0, 'auto', 1, '0 B'),
    (1023, 'auto', 1, '1023 B'),
    (1024, 'auto', 1, '1.0 KiB'),
    (565707571, 'auto', 1, '539.5 MiB'),
    (3 * 1024 ** 3, 'auto', 2, '3.00 GiB'),
    (2 * 1024 ** 5, 'auto', 1, '2048.0 TiB'),
    (524288, 'MiB', 2, '0.50 MiB'),
    ('4096', 'KiB', 0, '4 KiB'),
    (1.5 * 1024 ** 2, 'B', 1, '1572864 B'),
])
def test_formats_with_binary_units(size, unit, precision, text):
    assert binary_size(size, unit, precision) == text


@pytest.mark.parametrize('size, unit, message', [
    ('lots', 'auto', "'lots' is not a number of bytes"),
    (None, 'auto', 'None is not a number of bytes'),
    (-1, 'auto', 'negative'),
    (1, 'MB', "unit 'MB' is not one of auto, B, KiB, MiB, GiB, TiB"),
])
def test_rejects_what_is_no_size(size, unit, message):
    with pytest.raises(AnsibleFilterError, match=message):
        binary_size(size, unit)


def test_is_registered_under_its_name():
    assert FilterModule().filters() == {'binary_size': binary_size}
