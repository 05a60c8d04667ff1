# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The README's benchmark figures come from docs/benchmarks.json: the generator, and the block in the tree."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.pagefusion.core.benchmarks.ksmbench import readme

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))


def window(ksmd, daemon, real=None):
    out = {'cpu_percent': ksmd, 'saved_fraction': 0.99, 'daemon_cpu_percent': daemon, 'total_cpu_percent': ksmd + daemon}
    if real is not None:
        out['actual_saved_fraction'] = real
    return out


def b1(policy, t90, cpu, daemon=None):
    run = {'policy': policy, 'guests': 4, 'mib': 256, 't50': t90 / 2, 't90': t90, 'cpu_t90': cpu, 'cap': 180.0, 'cpu_per_gib': 1.0}
    if daemon is not None:
        run.update(daemon_cpu_t90=daemon, total_cpu_t90=cpu + daemon)
    return run


RESULT = {
    'b1': [b1('D', 2.5, 2.0, 0.2), b1('KX', 2.5, 2.5), b1('KX+Z', 2.4, 2.4)],
    'b2': [{'policy': 'D', 'idle': window(0.2, 0.05), 'churn': window(1.0, 0.2, 0.99)},
           {'policy': 'KX', 'idle': window(99.0, 0.0), 'churn': window(99.0, 0.0, 1.0)}],
    'b3': [{'policy': 'D', 't90': 1.0, 'cpu_t90': 0.5, 'cpu_at_end': 0.5, 'fraction_at_end': 0.9, 'cap': 60.0},
           {'policy': 'KX+Z', 't90': 0.8, 'cpu_t90': 0.8, 'cpu_at_end': 0.8, 'fraction_at_end': 0.9, 'cap': 60.0}],
    'realism': [], 'b5': [{'guests': 4, 'idle': {'daemon_cpu_percent': 0.02}}, {'guests': 128, 'idle': {'daemon_cpu_percent': 0.08}}],
    'started': '2026-12-03T01:00:00+00:00', 'profile': 'default', 'wall_seconds': {'total': 1500.0}, 'runs': [{}],
}


def test_block_from_a_result():
    lines = readme.block(RESULT).split('\n')
    assert all(line.startswith('- ') for line in lines)
    lines = [line[2:] for line in lines]
    # D 2.5 / KX+Z 2.4 = 1.04; (2.0 + 0.2) / 2.5 = 0.88
    assert lines[0] == ("Cold start (B1): pagefusiond reaches 90 % of the achievable saving in 2.50 s for 4 x 256 MiB "
                        "(1.04x KX+Z's time, 0.88x KX's CPU); its CPU is ksmd's plus its own.")
    assert lines[1] == ('Steady state (B2): ksmd + daemon use 0.25 % of a core idle (ksmd 0.20 %, daemon 0.05 %) and 1.20 % '
                        'under churn, where pagefusiond keeps 99.0 % of the real saving (Rss - Pss) that KSM at full effort keeps.')
    assert lines[2] == "A newcomer's pages are merged in 1.00 s (1.25x KX+Z's time)."
    assert lines[3] == "Scale (B5): the daemon's own idle CPU is 0.020 % at N=4, 0.080 % at N=128."
    # B1 x2 (T90 not met: 1.04x), B2 idle and churn met, B3 not met (1.25x), realism and B4 unknown, B5 met, 25 min met
    assert lines[4] == 'Targets of BENCHMARKS.md met: 5 of 9 (2 not met, 2 unknown); run 2026-12-03, default profile, 25 minutes.'


def test_update_rewrites_only_the_block():
    text = 'intro\n' + readme.BEGIN + '\nold figures\n' + readme.END + '\nafter\n'
    new = readme.update(text, RESULT)
    assert new.startswith('intro\n' + readme.BEGIN + '\n- Cold start (B1)')
    assert new.endswith('\n' + readme.END + '\nafter\n')
    assert readme.current(new) == readme.block(RESULT)
    assert readme.update(new, RESULT) == new
    with pytest.raises(ValueError, match='no .* block: add the two marker lines'):
        readme.update('no markers here\n', RESULT)
    assert readme.current('no markers here\n') is None


def test_readme_block_matches_docs_benchmarks_json():
    """README.md's figures are docs/benchmarks.json's: `./dev bench --render` rewrites the block after a run."""
    with open(os.path.join(ROOT, 'README.md')) as handle:
        text = handle.read()
    with open(os.path.join(ROOT, 'docs', 'benchmarks.json')) as handle:
        result = json.load(handle)
    assert readme.current(text) is not None, 'README.md lacks the %s ... %s markers' % (readme.BEGIN, readme.END)
    assert readme.current(text) == readme.block(result), 'README.md is stale: run ./dev bench --render'
