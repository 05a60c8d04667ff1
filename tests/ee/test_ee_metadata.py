# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's EE metadata as ansible-builder sees it: the built tarball, installed into a temporary
collections directory, then `ansible-builder introspect` on it (what an EE build does in its builder stage).
Run by tests/ee/run-ee-stage.sh with .venv's pytest (ansible-builder comes from tests/requirements.txt)."""

import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
BIN = os.path.dirname(sys.executable)
COLLECTION = 'pagefusion.core'


def run(*argv):
    return subprocess.run(list(argv), check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope='module')
def introspected(tmp_path_factory):
    dist = tmp_path_factory.mktemp('dist')
    collections = tmp_path_factory.mktemp('collections')
    run(os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', ROOT, '--output-path', str(dist))
    tarball = next(dist.glob('pagefusion-core-*.tar.gz'))
    # --force: .venv can import the work tree as pagefusion.core (./dev setup), which install would take as done.
    run(os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', '--force', str(tarball), '-p', str(collections))
    out = run(os.path.join(BIN, 'ansible-builder'), 'introspect', '--sanitize',
              str(collections))
    return yaml.safe_load(out)


def entries_of(section):
    """The requirement lines of one section of introspect's output, without their '# from collection' notes."""
    return [line.split('#')[0].strip() for line in section]


def test_python_requirements_name_libvirt_python(introspected):
    python = entries_of(introspected['python'])
    assert any(line.startswith('libvirt-python') for line in python), python
    assert all(COLLECTION in line for line in introspected['python'] if line.startswith('libvirt-python'))


@pytest.mark.parametrize('package', ['libvirt0 [platform:dpkg]', 'libvirt-clients [platform:dpkg]',
                                     'openssh-client [platform:dpkg]'])
def test_run_time_system_packages(introspected, package):
    assert package in entries_of(introspected['system'])


@pytest.mark.parametrize('package', ['libvirt-dev', 'gcc', 'pkg-config', 'python3-dev'])
def test_build_only_system_packages_are_marked_compile(introspected, package):
    lines = [line for line in entries_of(introspected['system']) if line.split()[0] == package]
    assert lines, (package, introspected['system'])
    assert all('compile' in line for line in lines), lines
