# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""How pagefusion.core.vm scales: one task for N VMs against N tasks of one VM each.

Writes a node file for libvirt's test driver with N shut-off VMs (page fusion disabled) and times, with the venv's
ansible-playbook on localhost:

* one pagefusion.core.vm task that enables page fusion on all of them by pattern,
* the same with the N names as a list,
* a loop of N pagefusion.core.vm tasks, one VM each (what a playbook without list support would do),

and an empty playbook (Ansible's own start-up cost, subtracted in the last column). The test driver keeps changes
only for one connection, so every task starts from the node file again and all runs do the same work.

    .venv/bin/python benchmarks/vm_scale.py [--vms 200] [--repeat 1]

Needs the collection installed (./dev setup): ANSIBLE_COLLECTIONS_PATH defaults to .build/collections.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from xml.sax.saxutils import escape

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, '.venv', 'bin')

DOMAIN = """  <domain type='kvm' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>{name}</name>
    <memory unit='MiB'>512</memory>
    <vcpu>1</vcpu>
    <os><type arch='x86_64'>hvm</type></os>
    <memoryBacking><nosharepages/></memoryBacking>
    <test:runstate>5</test:runstate>
  </domain>
"""

PLAY = """- name: {title}
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
{tasks}"""

TASKS = {
    'empty': """    - name: Nothing
      ansible.builtin.meta: noop
""",
    'pattern': """    - name: Enable page fusion on every VM, one task (pattern)
      pagefusion.core.vm:
        uri: "{{{{ uri }}}}"
        pattern: "bench-*"
        state: enabled
      register: result
    - name: Check
      ansible.builtin.assert:
        that: result.vms | selectattr('changed') | list | length == {n}
""",
    'list': """    - name: Enable page fusion on every VM, one task (list of names)
      pagefusion.core.vm:
        uri: "{{{{ uri }}}}"
        name: "{{{{ range(1, {n} + 1) | map('string') | map('regex_replace', '^', 'bench-') | list }}}}"
        state: enabled
      register: result
    - name: Check
      ansible.builtin.assert:
        that: result.vms | selectattr('changed') | list | length == {n}
""",
    'loop': """    - name: Enable page fusion, one task per VM
      pagefusion.core.vm:
        uri: "{{{{ uri }}}}"
        name: "bench-{{{{ item }}}}"
        state: enabled
      loop: "{{{{ range(1, {n} + 1) | list }}}}"
      register: result
    - name: Check
      ansible.builtin.assert:
        that: result.results | selectattr('changed') | list | length == {n}
""",
}


def run(playbook, uri, env):
    start = time.monotonic()
    proc = subprocess.run(
        [os.path.join(VENV_BIN, 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
         '-e', 'ansible_python_interpreter=%s' % os.path.join(VENV_BIN, 'python'), '-e', 'uri=%s' % uri, playbook],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit('vm_scale: %s failed:\n%s' % (playbook, proc.stdout[-3000:]))
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--vms', type=int, default=200)
    parser.add_argument('--repeat', type=int, default=1, help='runs per variant; the best time is shown')
    args = parser.parse_args()
    n = args.vms

    env = dict(os.environ)
    env.setdefault('ANSIBLE_COLLECTIONS_PATH', os.path.join(ROOT, '.build', 'collections'))
    env.update(ANSIBLE_LOCALHOST_WARNING='false', ANSIBLE_INVENTORY_UNPARSED_WARNING='false', ANSIBLE_FORCE_COLOR='0')

    with tempfile.TemporaryDirectory(prefix='pf-vm-scale.') as tmp:
        node = os.path.join(tmp, 'node.xml')
        with open(node, 'w') as f:
            f.write('<node>\n')
            for i in range(1, n + 1):
                f.write(DOMAIN.format(name=escape('bench-%d' % i)))
            f.write('</node>\n')
        uri = 'test://' + node
        times = {}
        for variant in ('empty', 'pattern', 'list', 'loop'):
            playbook = os.path.join(tmp, variant + '.yml')
            with open(playbook, 'w') as f:
                f.write(PLAY.format(title=variant, tasks=TASKS[variant].format(n=n)))
            times[variant] = min(run(playbook, uri, env) for dummy in range(args.repeat))

    base = times['empty']
    rows = [
        ('one task, pattern', 1, times['pattern']),
        ('one task, list of names', 1, times['list']),
        ('loop, one task per VM', n, times['loop']),
    ]
    print('pagefusion.core.vm enabling page fusion on %d shut-off VMs (libvirt test driver, ansible-playbook, local)' % n)
    print('ansible-playbook start-up (empty playbook): %.2f s' % base)
    print()
    print('| %-24s | %12s | %10s | %13s | %11s |' % ('variant', 'module calls', 'wall s', 'minus start s', 'ms per VM'))
    print('|%s|%s|%s|%s|%s|' % ('-' * 26, '-' * 14, '-' * 12, '-' * 15, '-' * 13))
    for label, calls, secs in rows:
        print('| %-24s | %12d | %10.2f | %13.2f | %11.1f |' % (label, calls, secs, secs - base, (secs - base) * 1000.0 / n))
    print()
    print('loop / one task (minus start-up): %.0fx' % ((times['loop'] - base) / max(times['pattern'] - base, 0.001)))


if __name__ == '__main__':
    main()
