# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""pagefusiond's configuration: defaults, the INI file, errors that name the key, the role's defaults."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.pagefusion.core.daemon.pagefusiond.config import ConfigError, DEFAULTS, OPTIONS, load_config, parse_config_text, render_config


def test_defaults_without_a_config_file(tmp_path):
    assert load_config(str(tmp_path / 'absent.conf')) == DEFAULTS


def test_config_file_parsing(tmp_path):
    path = tmp_path / 'pagefusiond.conf'
    path.write_text('# comment\n[pagefusiond]\nmax_cpu_percent = 50   # inline\nsteady_mode = advisor\nidle_stop = no\nmetrics_path =\n')
    config = load_config(str(path))
    assert config['max_cpu_percent'] == 50.0
    assert config['steady_mode'] == 'advisor'
    assert config['idle_stop'] is False
    assert config['metrics_path'] == ''
    assert config['interval'] == DEFAULTS['interval']


def test_config_without_section_header(tmp_path):
    path = tmp_path / 'c.conf'
    path.write_text('boost_pass_seconds = 2.5\n')
    assert load_config(str(path))['boost_pass_seconds'] == 2.5


@pytest.mark.parametrize('text, words', [
    ('max_cpu_percent = 150', ['max_cpu_percent', '150', 'from 1 to 100']),
    ('steady_mode = fast', ['steady_mode', 'rate, advisor']),
    ('idle_stop = maybe', ['idle_stop', 'true or false']),
    ('boost_sleep_millisecs = 2.5', ['boost_sleep_millisecs', 'an integer']),
    ('pages = 3', ["unknown key 'pages'", 'known keys are']),
    ('state_path = relative/state.json', ['state_path', 'absolute path']),
    ('[other]\nx = 1', ['unknown section [other]']),
    ('max_cpu_percent = nan', ['max_cpu_percent']),
])
def test_bad_config_names_the_key_and_the_allowed_values(tmp_path, text, words):
    path = tmp_path / 'bad.conf'
    path.write_text(text + '\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    for word in words:
        assert word in str(info.value)
    assert str(path) in str(info.value)


def test_render_config_round_trips():
    assert parse_config_text(render_config(DEFAULTS)) == DEFAULTS


def test_role_defaults_are_the_daemon_defaults():
    # roles/host_daemon/defaults/main.yml repeats the daemon's defaults for the keys it exposes: keep them equal.
    root = os.path.dirname(os.path.abspath(__file__))
    for dummy in range(3):
        root = os.path.dirname(root)
    path = os.path.join(root, 'roles', 'host_daemon', 'defaults', 'main.yml')
    if not os.path.exists(path):
        pytest.skip('role not in this tree')
    with open(path) as handle:
        defaults = yaml.safe_load(handle)
    exposed = dict((k[len('host_daemon_'):], v) for k, v in defaults.items() if k[len('host_daemon_'):] in OPTIONS)
    assert sorted(exposed) == ['boost_pass_seconds', 'idle_stop', 'libvirt_uri', 'log_level', 'max_cpu_percent', 'metrics_path',
                               'restore_on_exit', 'steady_max_cpu_percent', 'steady_mode', 'steady_pass_seconds',
                               'unmerge_margin_mib', 'unmerge_on_restore', 'use_zero_pages']
    for key, value in exposed.items():
        assert OPTIONS[key].parse(str(value).lower() if isinstance(value, bool) else str(value)) == DEFAULTS[key], key


def test_unmerge_on_restore_options():
    config = parse_config_text('unmerge_on_restore = yes\nunmerge_margin_mib = 4096\n')
    assert (config['unmerge_on_restore'], config['unmerge_margin_mib']) == (True, 4096)
    assert (DEFAULTS['unmerge_on_restore'], DEFAULTS['unmerge_margin_mib']) == (False, 1024)
    with pytest.raises(ConfigError, match='unmerge_margin_mib: allowed values are an integer from 0 to 1048576'):
        parse_config_text('unmerge_margin_mib = -1\n')
