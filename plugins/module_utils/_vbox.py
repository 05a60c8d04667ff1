# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The VirtualBox backend: Page Fusion is the ``PageFusion`` flag of a VM, switched with VBoxManage.

Private module_utils of pagefusion.core; its API may change at any time.

VirtualBox lets the flag change only while the VM is shut off (``poweroff``, ``aborted`` or
``teleported``), only on 64-bit non-macOS hosts, and not at all in VirtualBox 7.2 (see
``_eligibility``). Every VBoxManage call goes through :class:`VBoxManageRunner`, which runs argument
lists (never a shell) under the C locale and keeps the exact argv of every command in ``actions``.
VMs are addressed by UUID in commands, so any VM name is safe; messages show names.

The readers (``parse_*`` and the state helpers) are pure functions and import without Ansible.
"""

from __future__ import annotations

import platform
import re
import shlex
import time
import xml.etree.ElementTree as ET

from ansible_collections.pagefusion.core.plugins.module_utils._eligibility import (
    vbox_guest_eligibility,
    vbox_host_eligibility,
    vbox_version_support,
    vbox_version_tuple,
)
from ansible_collections.pagefusion.core.plugins.module_utils._fusion import (
    STEP_SET_FUSION,
    STEP_SHUTDOWN,
    STEP_START,
    FusionError,
    UnsupportedError,
    VmRecord,
)

VBOXMANAGE = 'VBoxManage'
NOT_FOUND_MSG = 'VBoxManage not found on PATH; install VirtualBox or use backend=libvirt'
LOCALE_ENV = {'LC_ALL': 'C', 'LANG': 'C', 'LANGUAGE': 'C'}
VBOX_XML_NS = 'http://www.virtualbox.org/'
TENANT_KEY = 'pagefusion/tenant'

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
_NOT_MUTABLE_RE = re.compile(r'is not mutable \(state is ([^)]*)\)')
_ERROR_PREFIX_RE = re.compile(r'^VBoxManage(?:\.exe)?: error: ?')

DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_LOCK_RETRIES = 5
DEFAULT_LOCK_RETRY_DELAY = 1.0
# How long to wait for a hard power-off to show up as "poweroff".
POWEROFF_WAIT = 30


# ---------------------------------------------------------------------------------------------
# Readers (pure)

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


# ---------------------------------------------------------------------------------------------
# Runner

class VBoxManageError(FusionError):
    """A VBoxManage command failed. Carries the argv, exit code and output."""

    def __init__(self, msg, argv=None, rc=None, stdout='', stderr=''):
        super(VBoxManageError, self).__init__(msg)
        self.argv = argv
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr


class VBoxManageRunner(object):
    """Runs VBoxManage argument lists through the module, under the C locale.

    ``actions`` is the exact argv of every command that ran, in order; ``changes`` only those
    that change something (modifyvm, controlvm, startvm, ...).
    """

    def __init__(self, module, binary=None):
        self.module = module
        self.binary = binary or module.get_bin_path(VBOXMANAGE, required=False)
        self.actions = []
        self.changes = []
        self._version_output = None

    @property
    def available(self):
        return bool(self.binary)

    def require(self):
        if not self.binary:
            raise FusionError(NOT_FOUND_MSG)

    def argv(self, args):
        self.require()
        return [self.binary] + [str(arg) for arg in args]

    def run(self, args, check=True, changes=False):
        """Run ``VBoxManage <args>``; returns ``(rc, stdout, stderr)``.

        With ``check`` a non-zero exit raises :class:`VBoxManageError` naming the command.
        """
        argv = self.argv(args)
        self.actions.append(argv)
        if changes:
            self.changes.append(argv)
        rc, out, err = self.module.run_command(argv, environ_update=dict(LOCALE_ENV))
        if check and rc != 0:
            raise VBoxManageError('%s failed (exit code %s): %s' % (shlex.join(argv), rc, error_text(err or out)),
                                  argv=argv, rc=rc, stdout=out, stderr=err)
        return rc, out, err

    def version_output(self):
        if self._version_output is None:
            _rc, out, _err = self.run(['--version'])
            self._version_output = out.strip()
        return self._version_output

    def version(self):
        """``(major, minor, build)`` of the installed VirtualBox, or None when unreadable."""
        return parse_version(self.version_output())


def probe(module):
    """What host_info reports about VirtualBox, without failing when it is absent."""
    runner = VBoxManageRunner(module)
    facts = {'present': runner.available, 'path': runner.binary, 'version': None, 'version_full': None}
    if not runner.available:
        facts['reason'] = NOT_FOUND_MSG
        return facts
    try:
        facts['version_full'] = runner.version_output()
    except FusionError as exc:
        facts['reason'] = str(exc)
        return facts
    numbers = runner.version()
    facts['version'] = '%d.%d.%d' % numbers if numbers else None
    return facts


# ---------------------------------------------------------------------------------------------
# Backend

class VirtualBoxBackend(object):
    """Reads every VM once (list vms + showvminfo per VM), then switches Page Fusion by UUID."""

    name = 'virtualbox'
    can_defer = False

    def __init__(self, module, runner=None, poll_interval=DEFAULT_POLL_INTERVAL, lock_retries=DEFAULT_LOCK_RETRIES,
                 lock_retry_delay=DEFAULT_LOCK_RETRY_DELAY, host_machine=None, host_system=None, read_tenant=True,
                 sleep=time.sleep, clock=time.monotonic):
        self.module = module
        self.runner = runner if runner is not None else VBoxManageRunner(module)
        self.runner.require()
        self.poll_interval = poll_interval
        self.lock_retries = max(1, lock_retries)
        self.lock_retry_delay = lock_retry_delay
        self.host_machine = host_machine if host_machine is not None else platform.machine()
        self.host_system = host_system if host_system is not None else platform.system()
        self.read_tenant = read_tenant
        self._sleep = sleep
        self._clock = clock

    @property
    def actions(self):
        return self.runner.actions

    def close(self):
        pass

    # -- host -----------------------------------------------------------------------------------

    def version(self):
        return self.runner.version()

    def versions(self):
        numbers = self.version()
        return {
            'vboxmanage': self.runner.binary,
            'version': '%d.%d.%d' % numbers if numbers else None,
            'version_full': self.runner.version_output(),
        }

    def unsupported_reason(self):
        """Why this host cannot switch Page Fusion at all (VirtualBox 7.2, 32-bit or macOS host), or None."""
        supported, reason = vbox_version_support(self.runner.version_output())
        if not supported:
            return reason
        eligible, reasons = vbox_host_eligibility(self.host_machine, self.host_system)
        if not eligible:
            return '; '.join(reasons)
        return None

    def eligibility(self, vm):
        """Guest eligibility of one VM: ``(eligible, reasons)`` (Windows 2000 or later guests only)."""
        return vbox_guest_eligibility(vm.os_id)

    def fusion_option(self):
        """``--page-fusion`` on 7.x; 6.x and older know only ``--pagefusion``."""
        numbers = self.version()
        return '--page-fusion' if numbers and numbers[0] >= 7 else '--pagefusion'

    # -- reading --------------------------------------------------------------------------------

    def list_vms(self):
        _rc, out, _err = self.runner.run(['list', 'vms'])
        records = []
        for listed_name, uuid in parse_list_vms(out):
            rc, text, err = self.runner.run(['showvminfo', uuid, '--machinereadable'], check=False)
            if rc != 0:
                if 'VBOX_E_OBJECT_NOT_FOUND' in (err or ''):
                    continue  # unregistered between the two commands
                raise FusionError("Cannot read VirtualBox VM '%s' (%s): %s" % (listed_name, uuid, error_text(err or text)))
            records.append(self.record(parse_machinereadable(text), listed_name=listed_name, uuid=uuid))
        return records

    def record(self, info, listed_name=None, uuid=None):
        """A VmRecord from parsed showvminfo output."""
        state = vm_state(info)
        uuid = (info.get('UUID') or uuid or '').lower() or None
        name = info.get('name') or listed_name
        if state == INACCESSIBLE:
            name = listed_name or name
        fusion = bool(page_fusion_enabled(info))
        os_id, os_source = guest_os_type(info)
        tenant = self.get_extradata(uuid, TENANT_KEY) if (self.read_tenant and uuid and state != INACCESSIBLE) else None
        details = {
            'info': info,
            'state': state,
            'cfg_file': info.get('CfgFile'),
            'os_type_source': os_source,
            'os_description': info.get('ostype'),
        }
        if state in SAVED_STATES:
            details['blocker'] = saved_state_message(name, state)
        elif state == INACCESSIBLE:
            details['blocker'] = ("VirtualBox VM %s is inaccessible (its settings file cannot be read); fix or "
                                  "unregister it first. Nothing was changed." % uuid)
        return VmRecord(
            name=name,
            backend=self.name,
            power_state=state,
            is_off=is_off_state(state),
            fusion=fusion,
            fusion_live=fusion if has_process(state) else None,
            uuid=uuid,
            os_id=os_id,
            tenant=tenant,
            details=details,
        )

    def get_extradata(self, uuid, key):
        """Extradata value of a VM (or ``global``), None when unset or unreadable."""
        rc, out, _err = self.runner.run(['getextradata', uuid, key], check=False)
        if rc != 0:
            return None
        return parse_extradata(out)

    def _info(self, vm):
        rc, text, err = self.runner.run(['showvminfo', vm.uuid, '--machinereadable'], check=False)
        if rc != 0:
            if 'VBOX_E_OBJECT_NOT_FOUND' in (err or ''):
                raise FusionError("VirtualBox VM '%s' (%s) is no longer registered." % (vm.name, vm.uuid))
            raise FusionError("Cannot read the state of VirtualBox VM '%s': %s" % (vm.name, error_text(err or text)))
        return parse_machinereadable(text)

    def _wait(self, vm, wanted, timeout):
        """Poll VMState until ``wanted(state)``; returns the parsed info, or None at the deadline."""
        deadline = self._clock() + timeout
        while True:
            info = self._info(vm)
            if wanted(vm_state(info)):
                return info
            if self._clock() >= deadline:
                return None
            self._sleep(self.poll_interval)

    def _mark(self, vm, info):
        state = vm_state(info)
        vm.power_state = state
        vm.is_off = is_off_state(state)
        fusion = page_fusion_enabled(info)
        if fusion is not None:
            vm.fusion = fusion
        vm.fusion_live = vm.fusion if has_process(state) else None
        vm.details['info'] = info
        vm.details['state'] = state

    # -- describing -----------------------------------------------------------------------------

    def _cmd(self, *args):
        return shlex.join(self.runner.argv(args))

    def describe_step(self, vm, step, arg, shutdown_timeout=None, force_off=False):
        """The exact VBoxManage command line(s) a step runs; waiting and fallbacks as ``#`` comments."""
        if step == STEP_SHUTDOWN:
            poweroff = self._cmd('controlvm', vm.uuid, 'poweroff')
            state = vm.power_state
            if state in SAVED_STATES or state == INACCESSIBLE:
                return '# cannot shut down: %s' % vm.details.get('blocker', 'VM is %s' % state)
            if state == 'stopping':
                text = ('# VM is already stopping: poll %s every %ss until VMState is poweroff, at most %ss'
                        % (self._cmd('showvminfo', vm.uuid, '--machinereadable'), self.poll_interval, shutdown_timeout))
                return text + ('; if it still runs: %s' % poweroff if force_off else '; if it still runs: fail')
            if state != 'running':
                if force_off:
                    return '%s  # VM is %s, so no graceful ACPI shutdown is possible' % (poweroff, state)
                return ('# cannot shut down: VM is %s and a graceful (ACPI) shutdown needs a running VM; '
                        'force_off=true would run: %s' % (state, poweroff))
            text = ('%s  # then poll %s every %ss until VMState is poweroff, at most %ss'
                    % (self._cmd('controlvm', vm.uuid, 'acpipowerbutton'),
                       self._cmd('showvminfo', vm.uuid, '--machinereadable'), self.poll_interval, shutdown_timeout))
            if force_off:
                return text + '; if it still runs: %s' % poweroff
            return text + '; if it still runs: fail, VM left running and unchanged'
        if step == STEP_SET_FUSION:
            return self._cmd('modifyvm', vm.uuid, self.fusion_option(), 'on' if arg else 'off')
        if step == STEP_START:
            return '%s  # then wait until VMState is running, at most %ss' % (
                self._cmd('startvm', vm.uuid, '--type', 'headless'), shutdown_timeout)
        raise ValueError(step)

    # -- changing -------------------------------------------------------------------------------

    def set_fusion(self, vm, enabled):
        argv = ['modifyvm', vm.uuid, self.fusion_option(), 'on' if enabled else 'off']
        attempt = 0
        while True:
            attempt += 1
            rc, out, err = self.runner.run(argv, check=False, changes=True)
            if rc == 0:
                break
            output = (err or '') + (out or '')
            if is_lock_race(output) and attempt < self.lock_retries:
                self._sleep(self.lock_retry_delay)
                continue
            raise self._set_fusion_error(vm, enabled, output, attempt)
        # modifyvm may exit 0 without applying (or a settings race may undo it): read it back.
        info = self._info(vm)
        if page_fusion_enabled(info) != enabled:
            raise FusionError("VBoxManage accepted page fusion %s for VM '%s' but showvminfo still says "
                              "pagefusion=\"%s\"." % ('on' if enabled else 'off', vm.name, info.get('pagefusion')))
        self._mark(vm, info)

    def _set_fusion_error(self, vm, enabled, output, attempts):
        wanted = 'on' if enabled else 'off'
        message = error_text(output)
        not_mutable = _NOT_MUTABLE_RE.search(output)
        if not_mutable:
            state = not_mutable.group(1)
            if state.lower() in ('saved', 'abortedsaved', 'aborted-saved'):
                return FusionError(saved_state_message(vm.name, state.lower()))
            return FusionError("VM '%s' is not shut off (VirtualBox says: %s); page fusion was not changed. Shut it "
                               "down first, or use when_running=restart." % (vm.name, message))
        if is_not_implemented(output):
            return UnsupportedError(self._not_implemented_reason(message))
        if is_lock_race(output):
            try:
                state = vm_state(self._info(vm))
            except FusionError:
                state = None
            if state and not is_off_state(state):
                return FusionError("VM '%s' is %s now (it was shut off when it was read, so something started it "
                                   "meanwhile); page fusion was not changed. VirtualBox says: %s"
                                   % (vm.name, state, message))
            return FusionError("VM '%s' stayed locked by another VirtualBox session through %d attempts (VirtualBox "
                               "says: %s); page fusion was not changed. Retry when nothing else (the GUI, Vagrant, "
                               "another play) is working on this VM." % (vm.name, attempts, message))
        if 'VBOX_E_OBJECT_NOT_FOUND' in output:
            return FusionError("VirtualBox VM '%s' (%s) is no longer registered." % (vm.name, vm.uuid))
        return FusionError("Cannot switch page fusion %s for VM '%s' with VirtualBox %s: %s"
                           % (wanted, vm.name, self.versions().get('version') or 'unknown', message))

    def _not_implemented_reason(self, message):
        eligible, reasons = vbox_host_eligibility(self.host_machine, self.host_system)
        if not eligible:
            return '%s (VirtualBox says: %s)' % ('; '.join(reasons), message)
        supported, reason = vbox_version_support(self.runner.version_output())
        if not supported:
            return reason
        return ('VirtualBox %s on this %s host refuses to switch Page Fusion (VirtualBox says: %s); its build lacks '
                'page sharing, as in the VirtualBox 7.2 regression (https://github.com/VirtualBox/virtualbox/issues/268).'
                % (self.versions().get('version') or 'unknown', self.host_machine, message))

    def shutdown(self, vm, timeout, force_off=False):
        """Graceful ACPI shutdown; hard power-off only with ``force_off``. Leaves a VM it cannot stop unchanged."""
        info = self._info(vm)
        state = vm_state(info)
        if is_off_state(state):
            self._mark(vm, info)
            return
        if state in SAVED_STATES:
            raise FusionError(saved_state_message(vm.name, state))
        if state in ('running', 'stopping'):
            refused = None
            if state == 'running':
                rc, out, err = self.runner.run(['controlvm', vm.uuid, 'acpipowerbutton'], check=False, changes=True)
                if rc != 0:
                    refused = error_text(err or out)
            info = self._wait(vm, is_off_state, 0 if refused else timeout)
            if info is not None:
                self._mark(vm, info)
                return
            if not force_off:
                if refused:
                    raise FusionError("VM '%s' refused the ACPI power button (VirtualBox says: %s); it is still running "
                                      "and page fusion was not changed. Set force_off=true to power it off hard."
                                      % (vm.name, refused))
                raise FusionError(
                    "VM '%s' did not shut down within shutdown_timeout=%s s after the ACPI power button (does the "
                    "guest honour ACPI?); it is still running and page fusion was not changed. Raise "
                    "shutdown_timeout, shut it down yourself, or set force_off=true to power it off hard."
                    % (vm.name, timeout))
        elif not force_off:
            raise FusionError("VM '%s' is %s: a graceful (ACPI) shutdown needs a running VM, so it was left %s and "
                              "page fusion was not changed. Resume it first, or set force_off=true to power it off "
                              "hard." % (vm.name, state, state))
        self._power_off(vm)

    def _power_off(self, vm):
        rc, out, err = self.runner.run(['controlvm', vm.uuid, 'poweroff'], check=False, changes=True)
        info = self._wait(vm, is_off_state, POWEROFF_WAIT)
        if info is None:
            raise FusionError("VM '%s' is still not shut off after a hard power-off%s."
                              % (vm.name, (' (VirtualBox says: %s)' % error_text(err or out)) if rc != 0 else ''))
        self._mark(vm, info)

    def start(self, vm, timeout):
        """``startvm --type headless`` and wait until the VM runs."""
        rc, out, err = self.runner.run(['startvm', vm.uuid, '--type', 'headless'], check=False, changes=True)
        if rc != 0:
            raise FusionError("VM '%s' did not start again (VirtualBox says: %s). Its page fusion setting is now %s; "
                              "start it yourself with: %s"
                              % (vm.name, error_text(err or out), 'on' if vm.fusion else 'off',
                                 self._cmd('startvm', vm.uuid, '--type', 'headless')))
        info = self._wait(vm, lambda state: state == 'running', timeout)
        if info is None:
            raise FusionError("VM '%s' was started but is not running after %s s." % (vm.name, timeout))
        self._mark(vm, info)

    # -- metrics --------------------------------------------------------------------------------

    def setup_metrics(self, obj, metrics, period=1, samples=1):
        """``metrics setup``: nothing is collected before it; VM data exists only while the VM runs.

        Pass base metric names (``RAM/VMM``, ``Guest/RAM/Usage``): VirtualBox matches setup filters against
        base metrics only and silently ignores sub-metric names such as ``RAM/VMM/Shared``.
        """
        self.runner.run(['metrics', 'setup', '--period', period, '--samples', samples, obj, ','.join(metrics)])

    def query_metrics(self, obj, metrics):
        """Parsed ``metrics query <obj> <metrics>`` rows (see :func:`parse_metrics_query`)."""
        _rc, out, _err = self.runner.run(['metrics', 'query', obj, ','.join(metrics)])
        return parse_metrics_query(out, metrics)
