# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The configuration of pagefusiond: its keys, their defaults and checks, and the INI file.

A bad value is a :class:`ConfigError` that names the key and the allowed values (exit code 2),
never a crash.
"""

from __future__ import annotations

import configparser
import errno
import math

from .collection import _daemon_state

DEFAULT_CONFIG_PATH = '/etc/pagefusiond.conf'
CONFIG_SECTION = 'pagefusiond'


class ConfigError(Exception):
    """A configuration the daemon refuses (exit code 2)."""


class Option(object):
    """One configuration key: its type, default, bounds or choices, and its documentation."""

    __slots__ = ('name', 'kind', 'default', 'minimum', 'maximum', 'choices', 'description')

    def __init__(self, name, kind, default, description, minimum=None, maximum=None, choices=None):
        self.name = name
        self.kind = kind
        self.default = default
        self.description = description
        self.minimum = minimum
        self.maximum = maximum
        self.choices = choices

    def allowed(self):
        if self.kind == 'bool':
            return 'true or false (also yes/no, on/off, 1/0)'
        if self.kind == 'choice':
            return ', '.join(self.choices)
        if self.kind == 'path':
            return 'an absolute path, or empty to switch it off' if self.default == '' or self.name == 'metrics_path' else 'an absolute path'
        if self.kind == 'str':
            return 'any text (empty switches it off)'
        if self.kind == 'keep_or_int':
            return 'keep, or an integer from %s to %s' % (self.minimum, self.maximum)
        kind = 'an integer' if self.kind == 'int' else 'a number'
        return '%s from %s to %s' % (kind, fmt_number(self.minimum), fmt_number(self.maximum))

    def parse(self, raw):
        """Parse the text of a config value; raises ConfigError naming the key and the allowed values."""
        text = raw.strip() if isinstance(raw, str) else raw
        try:
            return self._parse(text)
        except (TypeError, ValueError):
            raise ConfigError('invalid value %r for %s: allowed values are %s' % (raw, self.name, self.allowed()))

    def _parse(self, text):
        if self.kind == 'bool':
            return _parse_bool(text)
        if self.kind == 'choice':
            if text in self.choices:
                return text
            raise ValueError(text)
        if self.kind == 'path':
            if text == '' and self.name in ('metrics_path',):
                return ''
            if not isinstance(text, str) or not text.startswith('/'):
                raise ValueError(text)
            return text
        if self.kind == 'str':
            return str(text)
        if self.kind == 'keep_or_int' and text == 'keep':
            return text
        if isinstance(text, bool):
            raise ValueError(text)
        value = int(text) if self.kind in ('int', 'keep_or_int') else float(text)
        if math.isnan(value) or value < self.minimum or value > self.maximum:
            raise ValueError(text)
        return value


def _parse_bool(text):
    if isinstance(text, bool):
        return text
    word = str(text).lower()
    if word in ('1', 'yes', 'true', 'on'):
        return True
    if word in ('0', 'no', 'false', 'off'):
        return False
    raise ValueError(text)


def fmt_number(number):
    """A number as the config file writes it (``2.0`` is ``2``)."""
    return ('%g' % number) if isinstance(number, float) else str(number)


OPTIONS = dict((o.name, o) for o in (
    Option('interval', 'float', 2.0, 'seconds between control steps in the idle and steady phases while writes break '
           'sharing (or on kernels without cow_ksm)', 0.1, 3600.0),
    Option('quiet_interval', 'float', 10.0,
           'seconds between control steps in the idle and steady phases while no write breaks sharing; every interval '
           'seconds a cheap look at cow_ksm (/proc/vmstat) brings the next step forward when sharing starts to break',
           0.1, 3600.0),
    Option('watch_interval', 'float', 0.25,
           'between those steps, seconds between cheap looks for new mergeable processes (0: off)', 0.0, 3600.0),
    Option('still_watch_interval', 'float', 1.0,
           'seconds between those cheap looks once the last pid and the anonymous memory of the host have not moved '
           'for 10 s (a wake-up costs more than the look itself); the next movement brings back watch_interval',
           0.0, 3600.0),
    Option('process_connector', 'bool', True,
           'wake up for a look when a process starts, through the kernel process connector (netlink; needs '
           'CAP_NET_ADMIN in the initial namespaces, else the timed looks alone)'),
    Option('process_watch', 'choice', 'counters',
           "what a cheap look reads: 'counters' (the kernel's last pid and anonymous memory, then the processes only "
           "when those moved) or 'poll' (the known processes' sizes and every new pid, each time)",
           choices=('counters', 'poll')),
    Option('sweep_interval', 'float', 60.0,
           'seconds between full looks at every process in the idle and steady phases (the safety net for memory '
           'marked mergeable later); a wake-up or growth spotted in between looks at once', 1.0, 86400.0),
    Option('boost_interval', 'float', 0.25, 'seconds between control steps in the boost and settle phases', 0.05, 60.0),
    Option('boost_pass_seconds', 'float', 0.1, 'seconds one full pass over the mergeable pages should take while boosting', 0.1, 3600.0),
    Option('boost_sleep_millisecs', 'int', 5, 'sleep_millisecs while boosting', 0, 1000),
    Option('max_cpu_percent', 'float', 95.0, 'ksmd CPU budget while boosting, percent of one core', 1.0, 100.0),
    Option('boost_max_pages_to_scan', 'int', 100000, 'highest pages_to_scan the daemon writes', 100, 10000000),
    Option('boost_min_passes', 'int', 2, 'full scans a boost lasts before the daemon checks whether sharing still grows', 1, 100),
    Option('boost_max_seconds', 'float', 120.0, 'longest boost (with settle); then steady regardless', 1.0, 86400.0),
    Option('settle_passes', 'int', 1, 'consecutive quiet full scans that end the settle phase', 1, 100),
    Option('settle_scan_percent', 'float', 25.0,
           'share of a pass (percent of the mergeable pages, counted by KSM pages_scanned) that ksmd scans in the '
           'settle phase without new sharing before the daemon goes steady; 100: a whole pass', 1.0, 100.0),
    Option('settle_threshold_percent', 'float', 1.0,
           'a full scan is quiet when the saving grew by less than this percent of the mergeable pages', 0.0, 100.0),
    Option('steady_mode', 'choice', 'rate', "'rate' (the daemon's own slow rate) or 'advisor' (the kernel's scan-time advisor)",
           choices=('rate', 'advisor')),
    Option('steady_pass_seconds', 'float', 60.0,
           'seconds one full pass should take in the steady phase on kernels that do not count broken sharing '
           '(no cow_ksm in /proc/vmstat)', 1.0, 86400.0),
    Option('steady_quiet_pass_seconds', 'float', 900.0,
           'seconds one full steady pass takes while no write breaks sharing (cow_ksm still)', 1.0, 86400.0),
    Option('steady_min_pass_seconds', 'float', 2.0, 'fastest steady pass, in seconds, however fast writes break sharing', 0.1, 86400.0),
    Option('steady_loss_percent', 'float', 0.5,
           'share of the saving that writes may have broken before ksmd merges it again; sets the steady pass time '
           'from the rate of broken sharing (cow_ksm)', 0.01, 100.0),
    Option('real_saving_interval', 'float', 30.0,
           'seconds between samples of the real saving (smaps_rollup of the mergeable processes); 0: never', 0.0, 86400.0),
    Option('steady_sleep_millisecs', 'int', 100, 'sleep_millisecs in the steady phase', 1, 10000),
    Option('steady_max_cpu_percent', 'float', 2.0,
           'CPU budget of ksmd and pagefusiond together in the steady phase, percent of one core', 0.1, 100.0),
    Option('steady_min_pages_to_scan', 'int', 16, 'lowest pages_to_scan in the steady phase', 1, 100000),
    Option('new_memory_threshold_mib', 'float', 32.0, 'growth of mergeable memory (MiB) that starts a boost', 0.0, 1048576.0),
    Option('idle_stop', 'bool', True, 'stop ksmd (run=0, pages stay merged) while nothing is mergeable'),
    Option('use_zero_pages', 'choice', 'true', "'true' or 'false' to set KSM use_zero_pages, 'keep' to leave it alone",
           choices=('true', 'false', 'keep')),
    Option('thp_max_ptes_none', 'keep_or_int', 0,
           "khugepaged max_ptes_none while the daemon runs (put back when it stops, with restore_on_exit); 0 keeps "
           "khugepaged from turning zero pages back into huge pages (docs/thp-and-ksm-zero-pages.md); 'keep' "
           "leaves it alone", 0, 511),
    Option('restore_on_exit', 'bool', True, "put back the host's KSM settings from before the daemon started when it stops"),
    Option('unmerge_on_restore', 'bool', False,
           'when the settings put back need all pages unmerged (run=2, merge_across_nodes, max_page_sharing), unmerge, but '
           'only if the memory taken back fits in MemAvailable minus unmerge_margin_mib; otherwise (and when false) KSM '
           'is left stopped (run=0) with its pages merged'),
    Option('unmerge_margin_mib', 'int', 1024, 'MiB of MemAvailable that an unmerge on restore must leave free', 0, 1048576),
    Option('state_path', 'path', _daemon_state.DEFAULT_STATE_PATH, 'the JSON state file (read by pagefusion.core.fusion_facts)'),
    Option('metrics_path', 'path', '/var/lib/prometheus/node-exporter/pagefusiond.prom',
           'Prometheus text-format metrics file (node_exporter textfile collector); empty: none'),
    Option('libvirt_uri', 'str', 'qemu:///system', 'libvirt URI for domain lifecycle events when libvirt-python is importable; empty: none'),
    Option('log_level', 'choice', 'info', "'info' or 'debug'", choices=('info', 'debug')),
))

DEFAULTS = dict((name, option.default) for name, option in OPTIONS.items())


def _ini_parser():
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=('#', ';'))
    parser.optionxform = str  # keys are case-sensitive
    return parser


def parse_config_text(text, source='<config>'):
    """Parse INI text (section ``[pagefusiond]``; a file without any section header is read as that section)."""
    parser = _ini_parser()
    try:
        try:
            parser.read_string(text, source)
        except configparser.MissingSectionHeaderError:
            parser = _ini_parser()
            parser.read_string('[%s]\n%s' % (CONFIG_SECTION, text), source)
    except configparser.Error as err:
        raise ConfigError('%s: cannot parse: %s' % (source, str(err).replace('\n', ' ')))
    extra = [s for s in parser.sections() if s != CONFIG_SECTION]
    if extra:
        raise ConfigError('%s: unknown section [%s]: the only section is [%s]' % (source, extra[0], CONFIG_SECTION))
    raw = dict(parser.items(CONFIG_SECTION)) if parser.has_section(CONFIG_SECTION) else {}
    try:
        return validate_config(raw)
    except ConfigError as err:
        raise ConfigError('%s: %s' % (source, err))


def validate_config(raw):
    """Validate a ``{key: text or value}`` dict; returns the full config with defaults filled in."""
    config = dict(DEFAULTS)
    for key in sorted(raw):
        if key not in OPTIONS:
            raise ConfigError('unknown key %r: known keys are %s' % (key, ', '.join(sorted(OPTIONS))))
        config[key] = OPTIONS[key].parse(raw[key])
    return config


def load_config(path, required=False):
    """Load and validate the config file; a missing file gives the defaults unless ``required``."""
    try:
        with open(path, 'r') as handle:
            text = handle.read()
    except (IOError, OSError) as err:
        if err.errno == errno.ENOENT and not required:
            return dict(DEFAULTS)
        raise ConfigError('cannot read config file %s: %s' % (path, err.strerror or err))
    return parse_config_text(text, path)


def render_config(config):
    """The config as INI text (the defaults file the role's template follows)."""
    lines = ['[%s]' % CONFIG_SECTION]
    for name in sorted(OPTIONS):
        value = config.get(name, DEFAULTS[name])
        if isinstance(value, bool):
            value = 'true' if value else 'false'
        lines.append('%s = %s' % (name, fmt_number(value) if isinstance(value, float) else value))
    return '\n'.join(lines) + '\n'
