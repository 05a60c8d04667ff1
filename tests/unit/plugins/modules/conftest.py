# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module's main() in-process and capture what it would print as its JSON result."""

from __future__ import annotations

import json
import os
import shlex
import sys

import pytest

from ansible.module_utils.testing import patch_module_args


class ModuleExit(Exception):
    def __init__(self, result, failed):
        super(ModuleExit, self).__init__(result.get('msg', ''))
        self.result = result
        self.failed = failed


def _exit_json(self, **kwargs):
    kwargs.setdefault('changed', False)
    raise ModuleExit(json.loads(json.dumps(kwargs)), False)


def _fail_json(self, msg, **kwargs):
    kwargs['msg'] = msg
    kwargs['failed'] = True
    raise ModuleExit(json.loads(json.dumps(kwargs, default=str)), True)


@pytest.fixture
def run_module(monkeypatch):
    """``run_module(main, args, check_mode=False, diff=False) -> (result, failed)``."""
    from ansible.module_utils import basic

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', _fail_json)
    warnings = []
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, text: warnings.append(text))

    def run(main, args, check_mode=False, diff=False):
        del warnings[:]
        args = dict(args)
        args['_ansible_check_mode'] = check_mode
        args['_ansible_diff'] = diff
        with patch_module_args(args):
            with pytest.raises(ModuleExit) as info:
                main()
        result = info.value.result
        if warnings:
            result['warnings'] = list(warnings)
        return result, info.value.failed

    return run


STANDIN = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', 'vbox', 'VBoxManage'))


def install_vbox_standin(directory, monkeypatch):
    """Put the VBoxManage stand-in (tests/vbox) first on the PATH, run by this interpreter.

    Returns ``(wrapper_path, state_path)``; the stand-in keeps its VMs in ``state_path`` (PF_VBOX_STATE).
    """
    bin_dir = os.path.join(str(directory), 'vbox-bin')
    os.mkdir(bin_dir)
    wrapper = os.path.join(bin_dir, 'VBoxManage')
    with open(wrapper, 'w') as handle:
        handle.write('#!/bin/sh\nexec %s "$@"\n' % shlex.join([sys.executable, STANDIN]))
    os.chmod(wrapper, 0o755)
    state = os.path.join(str(directory), 'vbox-state.json')
    monkeypatch.setenv('PF_VBOX_STATE', state)
    monkeypatch.setenv('PATH', bin_dir + os.pathsep + os.environ.get('PATH', ''))
    return wrapper, state


@pytest.fixture
def vbox_standin(monkeypatch):
    """``vbox_standin(directory) -> (wrapper_path, state_path)``, see install_vbox_standin."""
    return lambda directory: install_vbox_standin(directory, monkeypatch)
