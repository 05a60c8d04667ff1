# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Unit tests of a benchmark session's records: --merge keeps the first session's machine and settings and records
every session; the outputs keep docs/benchmarks.md's hand-written tail; the profiles' settings."""

from __future__ import annotations

import json
import os
import sys

from ansible_collections.pagefusion.core.benchmarks.ksmbench import document, readme, session

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', '..', 'benchmarks'))
import ksm_bench  # noqa: E402  pylint: disable=wrong-import-position


FIRST_MACHINE = {'cpu': 'first', 'load_before': [0.1, 0.2, 0.3]}
OLD = {'b1': [{'policy': 'D'}], 'b2': [{'policy': 'KX'}], 'b3': [], 'realism': [], 'b5': [], 'b1long': [],
       'wall_seconds': {'b1': 100.0, 'b2': 200.0, 'total': 300.0}, 'started': 'T1', 'finished': 'T2', 'profile': 'default',
       'machine': FIRST_MACHINE, 'settings': {'repeats': 3}, 'skipped': ['KT: not installed'],
       'policies': {'D': 'd'}, 'daemon_defaults_overridden': {}}


def fresh():
    return {'b1': [], 'b1long': [], 'b2': [], 'b3': [], 'realism': [], 'b5': [], 'wall_seconds': {'b3': 50.0}, 'skipped': [],
            'machine': {'cpu': 'second'}, 'settings': {'repeats': 1}, 'started': 'T3', 'profile': 'quick'}


def test_merge_keeps_the_first_session_and_records_both():
    result = fresh()
    earlier = session.merge(OLD, result, ['b3'])
    assert result['b1'] == OLD['b1'] and result['b2'] == OLD['b2']
    assert result['wall_seconds'] == {'b1': 100.0, 'b2': 200.0, 'b3': 50.0}
    assert result['machine'] == FIRST_MACHINE and result['settings'] == {'repeats': 3}
    assert result['started'] == 'T1' and result['profile'] == 'default'
    assert result['skipped'] == ['KT: not installed']
    # an older result recorded its session without machine and settings: they come from the result itself
    assert earlier == [{'started': 'T1', 'finished': 'T2', 'parts': ['b1', 'b2'], 'machine': FIRST_MACHINE,
                        'settings': {'repeats': 3}}]


def test_merge_of_a_merged_result_keeps_every_session_as_recorded():
    old = dict(OLD, runs=[{'started': 'T1', 'parts': ['b1'], 'machine': FIRST_MACHINE, 'settings': {'repeats': 3}},
                          {'started': 'T5', 'parts': ['b2'], 'machine': {'cpu': 'other'}, 'settings': {'repeats': 2}}])
    earlier = session.merge(old, fresh(), ['b3'])
    assert [r['machine']['cpu'] for r in earlier] == ['first', 'other']
    assert [r['settings'] for r in earlier] == [{'repeats': 3}, {'repeats': 2}]


def test_write_keeps_the_hand_written_tail_and_the_readme_block(tmp_path):
    result = dict(fresh(), b1=[], started='2026-12-03T01:00:00+00:00', finished='x', runs=[{}],
                  wall_seconds={'total': 60.0}, policies={}, daemon_defaults_overridden={},
                  settings={'repeats': 3, 'cap_factor': 10.0, 'min_cap': 20.0, 'max_cap': 180.0})
    (tmp_path / 'benchmarks.md').write_text('# old\n\n## Fleet scale\n\nkept\n')
    readme_path = tmp_path / 'README.md'
    readme_path.write_text('a\n%s\nstale\n%s\nb\n' % (readme.BEGIN, readme.END))
    text = session.write(str(tmp_path), result, str(readme_path))
    assert text.endswith(document.KEEP_MARKER + '\n\n## Fleet scale\n\nkept\n')
    assert json.loads((tmp_path / 'benchmarks.json').read_text())['started'] == '2026-12-03T01:00:00+00:00'
    assert 'stale' not in readme_path.read_text() and 'Targets of BENCHMARKS.md met' in readme_path.read_text()
    # a README without the markers is left alone
    readme_path.write_text('no markers\n')
    assert session.write_readme(str(readme_path), result) is False
    assert readme_path.read_text() == 'no markers\n'


def test_profiles_default_full_quick():
    default = ksm_bench.parse_args(['--out', '/tmp/x'])
    assert (default.profile, default.repeats, default.slow_repeats, default.slow_sizes, default.b2_phase) == ('default', 3, 1, 'first', 60)
    assert default.parts == ['b1', 'b3', 'realism', 'b2', 'b5']
    assert default.b3_policies == ['KX', 'KX+Z', 'D'] and default.realism_policies == ['KX', 'KX+Z', 'D']
    assert default.b5_guests == [4, 32, 128]
    assert default.readme is None  # only when --out is docs/
    full = ksm_bench.parse_args(['--full', '--out', '/tmp/x'])
    assert (full.b2_phase, full.slow_repeats, full.slow_sizes) == (300, 3, 'all') and 'b1long' in full.parts
    quick = ksm_bench.parse_args(['--quick'])
    assert (quick.parts, quick.sizes, quick.repeats) == (['b1'], [(2, 64)], 1)
    assert 'KT+P' not in quick.policies and {'D', 'KX'} <= set(quick.policies)
    assert quick.out.endswith(os.path.join('.build', 'bench-quick'))
    assert ksm_bench.parse_args([]).readme.endswith('README.md')
    # explicit settings win over the profile, which is then "custom" (the 30-minute check is not for it)
    custom = ksm_bench.parse_args(['--full', '--b2-phase', '30', '--out', '/tmp/x'])
    assert (custom.b2_phase, custom.slow_repeats, custom.profile) == (30, 3, 'custom')
    assert ksm_bench.parse_args(['--quick', '--sizes', '2x32']).profile == 'quick'
    assert full.profile == 'full' and default.profile == 'default'


def test_help_states_the_expected_durations():
    text = ' '.join(ksm_bench.build_parser().format_help().split())
    assert 'default about 25 min' in text and '--full about 90 min' in text and '--quick about 1 min' in text


def test_b4_summary_takes_configuration_d(tmp_path):
    path = tmp_path / 'benchmarks-b4.json'
    path.write_text(json.dumps({'params': {'seconds': 60, 'guests': 3}, 'configs': [
        {'config': 'a', 'final': {'share': 0.1}}, {'config': 'd', 'final': {'share': 0.93}}]}))
    assert session.b4_summary(str(path)) == {'share': 0.93, 'seconds': 60, 'source': 'benchmarks-b4.json'}
    path.write_text(json.dumps({'params': {'seconds': 60}, 'configs': [{'config': 'a', 'final': {'share': 0.1}}]}))
    assert session.b4_summary(str(path)) is None
    assert session.b4_summary(str(tmp_path / 'missing.json')) is None
