# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module's main() in-process and capture what it would print as its JSON result."""

from __future__ import annotations

import json

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
