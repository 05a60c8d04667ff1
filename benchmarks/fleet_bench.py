# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Fleet-scale cost of playbooks/enable.yml: wall time, controller CPU and module runs per host, by host count.

Every inventory host is the local connection with a libvirt test-driver node of its own (test:///<node file>, four
shut-off VMs). Two runs per host count and fork count:

* check: ``enable --check`` over nodes whose VMs have page fusion off (the preview before a rollout: every VM
  would change);
* no-change: ``enable`` over nodes whose VMs already have it on (the steady state: nothing to do).

Controller CPU is the ansible-playbook process tree's user+system time (getrusage(RUSAGE_CHILDREN) around the
run; with the local connection the modules run in that tree too). Module runs and task results per host come from
a callback of this folder (fleetbench_callbacks/module_count.py).

    .venv/bin/python benchmarks/fleet_bench.py [--hosts 25 100 200] [--forks 10 50] [--vms 4]
        [--json docs/benchmarks-fleet.json] [--plot docs/benchmarks-fleet.png]

Needs the collection installed (./dev setup): ANSIBLE_COLLECTIONS_PATH defaults to .build/collections.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, '.venv', 'bin')
CALLBACKS = os.path.join(ROOT, 'benchmarks', 'fleetbench_callbacks')
MODES = ('check', 'no-change')

DOMAIN = """  <domain type='kvm' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>vm-{i}</name>
    <memory unit='MiB'>512</memory>
    <os><type arch='x86_64'>hvm</type></os>
{backing}    <test:runstate>5</test:runstate>
  </domain>
"""


def write_node(path, vms, fusion_on):
    backing = '' if fusion_on else '    <memoryBacking><nosharepages/></memoryBacking>\n'
    with open(path, 'w') as f:
        f.write('<node>\n%s</node>\n' % ''.join(DOMAIN.format(i=i, backing=backing) for i in range(1, vms + 1)))


def write_fleet(tmp, hosts, vms, fusion_on):
    """An inventory of `hosts` local hosts, each with its own node file; returns the inventory's path."""
    tag = 'on' if fusion_on else 'off'
    lines = ['all:', '  vars:', '    ansible_connection: local',
             '    ansible_python_interpreter: %s' % os.path.join(VENV_BIN, 'python'),
             '    page_fusion_backend: libvirt', '    page_fusion_verify: false', '  hosts:']
    for n in range(1, hosts + 1):
        node = os.path.join(tmp, 'node-%s-%d.xml' % (tag, n))
        write_node(node, vms, fusion_on)
        lines += ['    hv%03d:' % n, '      page_fusion_uri: "test://%s"' % node]
    path = os.path.join(tmp, 'fleet-%s-%d.yml' % (tag, hosts))
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_enable(inventory, forks, check, env, counts_path):
    argv = [os.path.join(VENV_BIN, 'ansible-playbook'), '-i', inventory, '-f', str(forks), 'pagefusion.core.enable']
    if check:
        argv.append('--check')
    cpu, start = children_cpu(), time.monotonic()
    proc = subprocess.run(argv, env=dict(env, PF_BENCH_COUNTS=counts_path), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False)
    wall, cpu = time.monotonic() - start, children_cpu() - cpu
    if proc.returncode != 0:
        sys.exit('fleet_bench: %s failed (exit %d):\n%s' % (' '.join(argv), proc.returncode, proc.stdout[-4000:]))
    with open(counts_path) as f:
        counts = json.load(f)
    return wall, cpu, counts


def measure(tmp, env, hosts, forks, mode, vms):
    inventory = write_fleet(tmp, hosts, vms, fusion_on=mode == 'no-change')
    wall, cpu, counts = run_enable(inventory, forks, mode == 'check', env, os.path.join(tmp, 'counts.json'))
    modules, tasks = counts['modules'], counts['tasks']
    assert len(tasks) == hosts, 'results for %d hosts of %d' % (len(tasks), hosts)
    row = {'hosts': hosts, 'forks': forks, 'mode': mode, 'wall_s': round(wall, 2), 'cpu_s': round(cpu, 2),
           'cpu_ms_per_host': round(cpu * 1000.0 / hosts, 1), 'wall_ms_per_host': round(wall * 1000.0 / hosts, 1),
           'module_runs_per_host': round(sum(modules.values()) / float(hosts), 2),
           'module_runs_max': max(modules.values()), 'tasks_per_host': round(sum(tasks.values()) / float(hosts), 2),
           # Wall time depends on what else the machine runs: the 1-minute load average when the run ended says.
           'load_1min_at_end': round(os.getloadavg()[0], 2)}
    print('%4d hosts, forks %2d, %-9s: wall %6.1f s, CPU %6.1f s (%5.0f ms/host), modules/host %.2f (max %d), '
          'task results/host %.1f' % (hosts, forks, mode, wall, cpu, row['cpu_ms_per_host'],
                                      row['module_runs_per_host'], row['module_runs_max'], row['tasks_per_host']),
          flush=True)
    return row


def growth(rows):
    """Per mode and forks: CPU per host and wall per host at the largest count over the smallest."""
    out = {}
    for mode in MODES:
        for forks in sorted({r['forks'] for r in rows}):
            series = sorted((r for r in rows if r['mode'] == mode and r['forks'] == forks), key=lambda r: r['hosts'])
            if len(series) > 1:
                lo, hi = series[0], series[-1]
                out['%s, forks %d' % (mode, forks)] = {
                    'hosts': [lo['hosts'], hi['hosts']],
                    'cpu_per_host_ratio': round(hi['cpu_ms_per_host'] / lo['cpu_ms_per_host'], 2),
                    'wall_per_host_ratio': round(hi['wall_ms_per_host'] / lo['wall_ms_per_host'], 2)}
    return out


def plot(rows, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for mode in MODES:
        for forks in sorted({r['forks'] for r in rows}):
            series = sorted((r for r in rows if r['mode'] == mode and r['forks'] == forks), key=lambda r: r['hosts'])
            label = '%s, forks %d' % (mode, forks)
            style = '-o' if mode == 'check' else '--s'
            axes[0].plot([r['hosts'] for r in series], [r['wall_s'] for r in series], style, label=label)
            axes[1].plot([r['hosts'] for r in series], [r['cpu_ms_per_host'] for r in series], style, label=label)
    axes[0].set(title='enable.yml wall time', xlabel='inventory hosts', ylabel='seconds')
    axes[1].set(title='controller CPU per host', xlabel='inventory hosts', ylabel='ms per host')
    axes[1].set_ylim(bottom=0)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--hosts', type=int, nargs='+', default=[25, 100, 200])
    parser.add_argument('--forks', type=int, nargs='+', default=[10, 50])
    parser.add_argument('--modes', nargs='+', choices=MODES, default=list(MODES))
    parser.add_argument('--vms', type=int, default=4, help='VMs per host')
    parser.add_argument('--append', action='store_true', help='add to the rows already in --json')
    parser.add_argument('--json', help='write the results here (docs/benchmarks-fleet.json)')
    parser.add_argument('--plot', help='write the plot here (docs/benchmarks-fleet.png)')
    args = parser.parse_args()

    env = dict(os.environ)
    env.setdefault('ANSIBLE_COLLECTIONS_PATH', os.path.join(ROOT, '.build', 'collections'))
    env.update(ANSIBLE_LOCALHOST_WARNING='false', ANSIBLE_FORCE_COLOR='0', ANSIBLE_CALLBACK_PLUGINS=CALLBACKS,
               ANSIBLE_CALLBACKS_ENABLED='module_count', ANSIBLE_HOST_KEY_CHECKING='false')
    rows = []
    if args.append and args.json and os.path.exists(args.json):
        with open(args.json) as f:
            rows = json.load(f)['rows']
    with tempfile.TemporaryDirectory(prefix='pf-fleet-bench.') as tmp:
        for hosts in args.hosts:
            for forks in args.forks:
                for mode in args.modes:
                    rows.append(measure(tmp, env, hosts, forks, mode, args.vms))
                    # Written after every run: a long benchmark stopped half-way keeps what it measured.
                    result = write_results(rows, args)
    print(json.dumps(result['growth'], indent=2))
    if args.plot:
        plot(rows, args.plot)


def write_results(rows, args):
    result = {'what': 'playbooks/enable.yml over N local inventory hosts, one libvirt test-driver node each',
              'machine': {'cpus': os.cpu_count(), 'python': platform.python_version(),
                          'load_at_end': [round(x, 2) for x in os.getloadavg()]},
              'vms_per_host': args.vms, 'rows': rows, 'growth': growth(rows)}
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
            f.write('\n')
    return result


if __name__ == '__main__':
    main()
