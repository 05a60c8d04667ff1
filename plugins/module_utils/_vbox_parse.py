# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What VBoxManage prints, read: showvminfo, list vms, metrics query, extradata, versions, errors.

Private module_utils of pagefusion.core; its API may change at any time.

Pure functions (the ``.vbox`` settings file reader aside, which only reads a file): they import without
Ansible and run nothing. The backend that runs VBoxManage is in ``_vbox``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ansible_collections.pagefusion.core.plugins.module_utils._eligibility import vbox_version_tuple

VBOX_XML_NS = 'http://www.virtualbox.org/'

# Every short VMState name (machineStateToName(..., fShort=true), VBoxManageInfo.cpp).
VM_STATES = (
    'poweroff', 'saved', 'teleported', 'aborted', 'aborted-saved', 'running', 'paused', 'gurumeditation',
    'teleporting', 'livesnapshotting', 'starting', 'stopping', 'saving', 'restoring', 'teleportingpausedvm',
    'teleportingin', 'deletingsnapshotlive', 'deletingsnapshotlivepaused', 'onlinesnapshotting',
    'restoringsnapshot', 'deletingsnapshot', 'settingup', 'snapshotting',
)
# States in which the settings may change (Machine::i_checkStateDependency(MutableStateDep)).
OFF_STATES = frozenset(('poweroff', 'aborted', 'teleported'))
# Off, but with a saved execution state: the settings stay frozen until it is discarded or resumed.
SAVED_STATES = frozenset(('saved', 'aborted-saved'))
# No VM process exists in these states, so there is no "live" page fusion setting to report.
_NO_PROCESS_STATES = OFF_STATES | SAVED_STATES | frozenset(('inaccessible', 'settingup', 'snapshotting',
                                                           'restoringsnapshot', 'deletingsnapshot'))
INACCESSIBLE = 'inaccessible'

# Descriptions that 6.x/7.x print as ``ostype=`` mapped back to type ids (Global.cpp). Used only
# when the VM's .vbox file cannot be read.
OS_DESCRIPTION_TO_ID = {
    'Windows 3.1': 'Windows31',
    'Windows 95': 'Windows95',
    'Windows 98': 'Windows98',
    'Windows ME': 'WindowsMe',
    'Windows NT 3.x': 'WindowsNT3x',
    'Windows NT 4': 'WindowsNT4',
    'Windows 2000': 'Windows2000',
    'Windows XP (32-bit)': 'WindowsXP',
    'Windows XP (64-bit)': 'WindowsXP_64',
    'Windows 2003 (32-bit)': 'Windows2003',
    'Windows 2003 (64-bit)': 'Windows2003_64',
    'Windows Vista (32-bit)': 'WindowsVista',
    'Windows Vista (64-bit)': 'WindowsVista_64',
    'Windows 2008 (32-bit)': 'Windows2008',
    'Windows 2008 (64-bit)': 'Windows2008_64',
    'Windows 7 (32-bit)': 'Windows7',
    'Windows 7 (64-bit)': 'Windows7_64',
    'Windows 8 (32-bit)': 'Windows8',
    'Windows 8 (64-bit)': 'Windows8_64',
    'Windows 8.1 (32-bit)': 'Windows81',
    'Windows 8.1 (64-bit)': 'Windows81_64',
    'Windows 2012 (64-bit)': 'Windows2012_64',
    'Windows 10 (32-bit)': 'Windows10',
    'Windows 10 (64-bit)': 'Windows10_64',
    'Windows 2016 (64-bit)': 'Windows2016_64',
    'Windows 2019 (64-bit)': 'Windows2019_64',
    'Windows 11 (64-bit)': 'Windows11_64',
    'Windows 2022 (64-bit)': 'Windows2022_64',
    'Other Windows (32-bit)': 'WindowsNT',
    'Other Windows (64-bit)': 'WindowsNT_64',
    'Other/Unknown': 'Other',
    'Other/Unknown (64-bit)': 'Other_64',
}

# VBoxManage error texts this backend acts on (FACTS.md 1.1 and 1.4).
_LOCK_RACE_TEXTS = ('already locked', 'lock request pending')
_NOT_IMPLEMENTED_TEXTS = ('only supported on 64-bit hosts', 'NS_ERROR_NOT_IMPLEMENTED', 'E_NOTIMPL')
NOT_MUTABLE_RE = re.compile(r'is not mutable \(state is ([^)]*)\)')
_ERROR_PREFIX_RE = re.compile(r'^VBoxManage(?:\.exe)?: error: ?')

# Units of ``metrics query`` values, in bytes (VirtualBox reports memory in kB).
METRIC_UNITS = {'B': 1, 'kB': 1024, 'MB': 1024 ** 2, 'GB': 1024 ** 3}


def parse_version(text):
    """``(major, minor, build)`` from ``VBoxManage --version`` output, or None."""
    return vbox_version_tuple(text)


def _read_quoted(text, pos):
    """Read a ``"..."`` string starting at ``text[pos] == '"'``; backslash escapes ``"`` and ``\\``.

    Returns ``(value, position after the closing quote)``. An unterminated string runs to the end.
    """
    out = []
    pos += 1
    end = len(text)
    while pos < end:
        char = text[pos]
        if char == '\\' and pos + 1 < end:
            out.append(text[pos + 1])
            pos += 2
            continue
        if char == '"':
            return ''.join(out), pos + 1
        out.append(char)
        pos += 1
    return ''.join(out), pos


def parse_machinereadable(text):
    """Parse ``VBoxManage showvminfo --machinereadable`` output into a dict of strings.

    Handles quoted values (``name="x"``) with backslash-escaped ``"`` and ``\\``, values that span
    lines (VBoxManage does not escape newlines, e.g. in ``description``), unquoted numbers
    (``memory=2048``), and quoted keys (``"IDE Controller-0-0"="none"``, keys holding ``=``).
    Lines that are not ``key=value`` are skipped.
    """
    result = {}
    pos = 0
    end = len(text)
    while pos < end:
        # Start of a line: skip blank lines.
        if text[pos] in '\r\n':
            pos += 1
            continue
        if text[pos] == '"':
            key, pos = _read_quoted(text, pos)
        else:
            stop = pos
            while stop < end and text[stop] not in '=\n':
                stop += 1
            key = text[pos:stop]
            pos = stop
        if pos >= end or text[pos] != '=':
            # Not a key=value line: skip to the next line.
            newline = text.find('\n', pos)
            pos = end if newline < 0 else newline + 1
            continue
        pos += 1
        if pos < end and text[pos] == '"':
            value, pos = _read_quoted(text, pos)
            newline = text.find('\n', pos)
            pos = end if newline < 0 else newline + 1
        else:
            newline = text.find('\n', pos)
            stop = end if newline < 0 else newline
            value = text[pos:stop].rstrip('\r')
            pos = stop + 1
        result[key] = value
    return result


_LIST_VMS_RE = re.compile(r'^"(?P<name>.*)" \{(?P<uuid>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-'
                          r'[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})\}\s*$')


def parse_list_vms(text):
    """``[(name, uuid), ...]`` from ``VBoxManage list vms`` (or ``list runningvms``).

    VBoxManage prints ``"<name>" {<uuid>}`` without escaping the name, so the UUID is taken from
    the end of the line and everything between the outer quotes is the name. Inaccessible VMs
    appear as ``"<inaccessible>" {uuid}``.
    """
    found = []
    for line in text.splitlines():
        match = _LIST_VMS_RE.match(line)
        if match:
            found.append((match.group('name'), match.group('uuid').lower()))
    return found


_VALUE_RE = r'-?\d+(?:\.\d+)?(?: ?[^\s,]+)?'
_VALUES_RE = r'(?P<values>%s(?:, %s)*)' % (_VALUE_RE, _VALUE_RE)
_GENERIC_METRIC_RE = r'[A-Za-z][A-Za-z0-9]*(?:/[A-Za-z0-9_]+)+(?::(?:avg|min|max))?'
_ONE_VALUE_RE = re.compile(r'^(?P<number>-?\d+(?:\.\d+)?) ?(?P<unit>\S*)$')


def parse_metrics_query(text, metrics=None):
    """Rows of ``VBoxManage metrics query`` output.

    Each row is ``{'object': 'host' or VM name, 'metric': 'RAM/VMM/Shared', 'values': [123456],
    'unit': 'kB'}``. Rows are printed as ``%-15ls %-40ls `` plus the values joined by ``", "``;
    object names are padded but never truncated and may hold spaces, so each line is split on the
    rightmost metric name followed by a valid value list: one of the known ``metrics`` (with an
    optional ``:avg``/``:min``/``:max`` suffix) when given, else any ``Word/Word...`` token.
    Values are ints when the scale is 1 (``123456 kB``) and floats otherwise (``12.34%``).
    """
    if metrics:
        names = sorted(set(metrics), key=len, reverse=True)
        metric_re = r'(?:%s)(?::(?:avg|min|max))?' % '|'.join(re.escape(name) for name in names)
        tail_re = r'(?: +%s?)?\s*$' % _VALUES_RE
    else:
        # The metric column is always followed by a space, which keeps units such as "B/s" out of it.
        metric_re = _GENERIC_METRIC_RE
        tail_re = r' +%s?\s*$' % _VALUES_RE
    # Greedy object: the rightmost split whose tail is a value list wins.
    line_re = re.compile(r'^(?P<object>.*\S) +(?P<metric>%s)%s' % (metric_re, tail_re))
    rows = []
    for line in text.splitlines():
        if not line.strip() or line.startswith('Object ') or line.startswith('-----'):
            continue
        match = line_re.match(line)
        if not match:
            continue
        values, unit = [], None
        raw = match.group('values')
        for item in (raw.split(', ') if raw else []):
            one = _ONE_VALUE_RE.match(item.strip())
            if not one:
                continue
            number = one.group('number')
            values.append(float(number) if '.' in number else int(number))
            unit = one.group('unit') or unit
        rows.append({'object': match.group('object'), 'metric': match.group('metric'), 'values': values,
                     'unit': unit})
    return rows


def metric_value(rows, obj, metric):
    """The last value of ``metric`` for ``obj`` in parsed query rows, or None."""
    for row in rows:
        if row['object'] == obj and row['metric'] == metric and row['values']:
            return row['values'][-1]
    return None


def metric_bytes(rows, obj, metric):
    """The last value of a memory metric in bytes (VirtualBox reports kB), or None."""
    value = metric_value(rows, obj, metric)
    if value is None:
        return None
    unit = next((row['unit'] for row in rows if row['object'] == obj and row['metric'] == metric), 'kB')
    return int(value * METRIC_UNITS.get(unit, 1024))


def parse_extradata(text):
    """The value of ``VBoxManage getextradata <vm> <key>``: ``Value: x`` -> ``'x'``, ``No value set!`` -> None.

    Values may span lines; any lines before ``Value:`` (warnings) are skipped.
    """
    match = re.search(r'^Value: ', text, re.MULTILINE)
    if not match:
        return None
    value = text[match.end():]
    return value[:-1] if value.endswith('\n') else value


def vm_state(info):
    """The short VMState (``poweroff``, ``running``, ...) of parsed showvminfo output."""
    state = info.get('VMState')
    if state:
        return state
    if info.get('name') == '<inaccessible>':
        return INACCESSIBLE
    return 'unknown'


def is_off_state(state):
    """True in the states in which VirtualBox lets the settings change."""
    return state in OFF_STATES


def has_process(state):
    return state not in _NO_PROCESS_STATES


def page_fusion_enabled(info):
    """``pagefusion="on"`` -> True, ``"off"`` -> False, missing -> None."""
    value = info.get('pagefusion')
    if value is None:
        return None
    return value.strip().lower() == 'on'


def saved_state_message(name, state='saved'):
    return ("VM '%s' is %s: it holds a saved execution state, and VirtualBox keeps its settings frozen until that "
            "state is gone. Discard the saved state ('VBoxManage discardstate <vm>', which loses what was running) "
            "or start the VM and shut it down properly, then switch page fusion. Nothing was changed."
            % (name, state))


def read_vbox_os_type(path):
    """``OSType`` of the ``<Machine>`` element in a ``.vbox`` settings file, or None.

    The file uses the default namespace ``http://www.virtualbox.org/``; files without it work too.
    """
    if not path:
        return None
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    for candidate in (root.find('{%s}Machine' % VBOX_XML_NS), root.find('Machine')):
        if candidate is not None and candidate.get('OSType'):
            return candidate.get('OSType')
    if root.tag in ('{%s}Machine' % VBOX_XML_NS, 'Machine'):
        return root.get('OSType')
    return None


def os_type_from_description(value):
    """Map an ``ostype=`` description back to an id; ids (4.x output, unknown types) pass through."""
    if not value:
        return None
    return OS_DESCRIPTION_TO_ID.get(value.strip(), value.strip())


def guest_os_type(info):
    """``(os_type_id, source)``: from the .vbox file at ``CfgFile``, else from ``ostype``.

    ``source`` is ``settings`` (the .vbox file), ``description`` (mapped from the description),
    ``raw`` (``ostype`` printed as is) or None when nothing is known.
    """
    from_file = read_vbox_os_type(info.get('CfgFile'))
    if from_file:
        return from_file, 'settings'
    raw = info.get('ostype')
    if not raw:
        return None, None
    mapped = os_type_from_description(raw)
    return mapped, ('description' if mapped != raw.strip() else 'raw')


def error_text(output):
    """The ``VBoxManage: error:`` lines of an output, without the prefix and the ``Context:`` line."""
    lines = []
    for line in (output or '').splitlines():
        match = _ERROR_PREFIX_RE.match(line)
        if not match:
            continue
        rest = line[match.end():].strip()
        if rest and not rest.startswith('Context:'):
            lines.append(rest)
    if not lines:
        lines = [line.strip() for line in (output or '').splitlines() if line.strip()][-3:]
    return ' '.join(lines)


def is_lock_race(output):
    return any(text in (output or '') for text in _LOCK_RACE_TEXTS)


def is_not_implemented(output):
    return any(text in (output or '') for text in _NOT_IMPLEMENTED_TEXTS)
