# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""One benchmark session's records: the machine, merging with an earlier session (``--merge``), the outputs
(benchmarks.json, .png, .md and the README's figures block)."""

import json
import os
import platform
import subprocess

from . import document, readme, report, workload
from .checks import sizes_of

PARTS = ('b1', 'b3', 'realism', 'b2', 'b5', 'b1long')


def machine():
    """What ran the benchmark: CPU, cores, memory, kernel, distribution, load before the start."""
    info = {'kernel': platform.release(), 'cores': os.cpu_count(), 'python': platform.python_version()}
    try:
        with open('/proc/cpuinfo') as handle:
            names = [line.split(':', 1)[1].strip() for line in handle if line.startswith('model name')]
        info['cpu'] = names[0] if names else platform.machine()
    except (IOError, OSError):
        info['cpu'] = platform.machine()
    info['memory_gib'] = round(workload.meminfo()['MemTotal'] / 1024.0 / 1024.0, 1)
    try:
        with open('/etc/os-release') as handle:
            info['os'] = dict(line.rstrip('\n').split('=', 1) for line in handle if '=' in line).get('PRETTY_NAME', '').strip('"')
    except (IOError, OSError):
        info['os'] = platform.system()
    info['load_before'] = os.getloadavg()
    try:
        info['hypervisor'] = subprocess.run(['systemd-detect-virt'], capture_output=True, text=True, check=False).stdout.strip() or None
    except OSError:
        info['hypervisor'] = None
    return info


def earlier_sessions(old):
    """The session records of an earlier result, each with its machine and settings (older results kept them once)."""
    runs = old.get('runs') or [{'started': old.get('started'), 'finished': old.get('finished'),
                                'parts': [p for p in PARTS if old.get(p)]}]
    out = []
    for index, run in enumerate(runs):
        run = dict(run)
        if index == 0:
            run.setdefault('machine', old.get('machine'))
            run.setdefault('settings', old.get('settings'))
        out.append(run)
    return out


def merge(old, result, parts_now):
    """--merge: ``result`` takes the parts not run now, and the first session's start, machine, settings and profile,
    from ``old``; returns the earlier sessions."""
    for part in PARTS:
        if part not in parts_now:
            result[part] = old.get(part, [])
            if part in old.get('wall_seconds', {}):
                result['wall_seconds'][part] = old['wall_seconds'][part]
    for key in ('started', 'machine', 'settings', 'profile', 'policies', 'daemon_defaults_overridden'):
        if key in old:
            result[key] = old[key]
    result['skipped'] = sorted(set(old.get('skipped', [])) | set(result.get('skipped', [])))
    return earlier_sessions(old)


def load(path):
    with open(path) as handle:
        return json.load(handle)


def b4_summary(path):
    """B4's (d) figure from benchmarks/guest_coop.py's results: ``{'share', 'seconds', 'source'}``, or None."""
    try:
        data = load(path)
        params = data['params']
        final = [run['final']['share'] for run in data['configs'] if run.get('config') == 'd']
    except (IOError, OSError, ValueError, KeyError, TypeError):
        return None
    if not final:
        return None
    return {'share': final[0], 'seconds': params.get('seconds'), 'source': os.path.basename(path)}


def write(out_dir, result, readme_path=None, log=None):
    """benchmarks.json, .png (when matplotlib is there) and .md in ``out_dir``; the README block when asked.
    Returns the Markdown text. B4's (d) figure is copied in from benchmarks-b4.json there, when it exists."""
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, 'benchmarks')
    b4 = b4_summary(stem + '-b4.json')
    if b4 is not None:
        result['b4'] = b4
    with open(stem + '.json', 'w') as handle:
        json.dump(result, handle, indent=1, sort_keys=True, default=float)
    png = None
    if result['b1']:
        try:
            report.plot(stem + '.png', result['b1'], sizes_of(result), result['realism'], result['b2'], result.get('b1long'))
            png = os.path.basename(stem + '.png')
        except ImportError as err:
            if log:
                log('no plot: %s (pip install matplotlib)' % err)
    text = document.render(result, None, png)
    try:
        with open(stem + '.md') as handle:
            text = document.keep_hand_written(handle.read(), text)
    except (IOError, OSError):
        pass
    with open(stem + '.md', 'w') as handle:
        handle.write(text)
    if readme_path:
        write_readme(readme_path, result, log)
    return text


def write_readme(path, result, log=None):
    """Rewrite the README's figures block; a README without the markers is left alone (logged)."""
    with open(path) as handle:
        old = handle.read()
    try:
        new = readme.update(old, result)
    except ValueError as err:
        if log:
            log('README not updated: %s' % err)
        return False
    if new != old:
        with open(path, 'w') as handle:
            handle.write(new)
    return True
