# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Unit tests of B4 (benchmarks/guest_coop.py): the share without double counting, the tables, the plot."""

from __future__ import annotations

import json

import matplotlib  # noqa: F401  pylint: disable=unused-import  # the plot test draws with it

from ansible_collections.pagefusion.core.benchmarks.guestcoop import report, sample

MIB = sample.MIB


def figures(rss, merging=0, zero=0):
    return {'rss': rss * MIB, 'merging': merging * MIB, 'zero': zero * MIB}


def test_zero_pages_count_once():
    # 100 MiB merged into the zero page left RSS: it is in "given back" and only shown as zero pages.
    base = [figures(1000, merging=10, zero=5)]
    now = [figures(850, merging=30, zero=105)]
    point = sample.cooperation(base, now, 200 * MIB)
    assert point == {'given_back_mib': 150.0, 'merged_mib': 20.0, 'zero_page_mib': 100.0, 'share': 0.85}


def test_growth_never_counts_negative():
    base = [figures(500), figures(500)]
    now = [figures(520), figures(400)]
    assert sample.cooperation(base, now, 200 * MIB)['share'] == 0.5


def run(key, label, shares):
    trace = [{'t': 2.0 * i, 'share': s, 'given_back_mib': 512 * 3 * s, 'merged_mib': 0.0, 'zero_page_mib': 0.0}
             for i, s in enumerate(shares)]
    guest = {'rss_mib': 400.0, 'merged_mib': 30.0, 'zero_page_mib': 10.0, 'share_of_rss': 0.0976}
    return {'config': key, 'label': label, 'trace': trace, 'final': trace[-1], 'free_seconds': 3.0,
            't90': next((p['t'] for p in trace if p['share'] >= 0.9), None),
            'idle': {'guests': [guest] * 3, 'host_saved_per_guest_mib': 25.0, 'host_saved_share_of_rss': 0.06}}


def results():
    params = {'guests': 3, 'guest_mib': 1024, 'alloc_mib': 512, 'interval': 2.0, 'seconds': 60.0, 'settle': 60.0}
    return {'params': params, 'started': '2026-12-03 00:00 UTC', 'wall_seconds': 900.0, 'load_average': [4.0, 3.5, 3.0],
            'configs': [run('a', '(a) nothing', [0.0] * 31), run('d', '(d) both', [0.0, 0.5, 0.95] + [0.97] * 28)],
            'notes': ['a note']}


def test_table_reads_the_trace():
    lines = report.table(results())
    assert lines[2].startswith('| (a) nothing |') and lines[2].endswith('| 0.0 % | no | 3 s |')
    # (d): 0.97 from t=6 s on; 90 % first reached at t=4 s.
    assert lines[3].endswith('| 97.0 % | 97.0 % | 97.0 % | 4 s | 3 s |')


def test_markdown_and_files(tmp_path):
    paths = report.write_all(results(), str(tmp_path), 'benchmarks-b4')
    text = (tmp_path / 'benchmarks-b4.md').read_text()
    assert '## B4' in text and '![B4 share over time](benchmarks-b4.png)' in text and '- a note' in text
    assert '| (d) both | 400 MiB | 40 MiB | 9.8 % | 25 MiB (6.0 %) |' in text
    assert json.loads((tmp_path / 'benchmarks-b4.json').read_text())['configs'][1]['t90'] == 4.0
    assert (tmp_path / 'benchmarks-b4.png').stat().st_size > 1000
    assert sorted(paths) == ['json', 'md', 'png']
