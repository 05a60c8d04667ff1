# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ee stage's managed hosts: podman containers with systemd as PID 1 and sshd on a 127.0.0.1 port.

Two libvirt hosts (libvirtd inside, the tests' tiny TCG guest: one running, one defined), one VirtualBox host (the
tests' VBoxManage stand-in on the PATH) and one broken host (its port has no container behind it).
Everything goes through argument lists (podman exec), never a shell string."""

import json
import os
import subprocess
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
GUEST_DIR = '/var/cache/pagefusion-test/guest'
PREFIX = 'pfee-'
LIBVIRT_HOSTS = {'pfee-hv1': 22501, 'pfee-hv2': 22502}
VBOX_HOST = ('pfee-vbox', 22503)
BROKEN_HOST = ('pfee-broken', 22509)
# The VMs each libvirt host gets: (name, running).
GUESTS = (('run', True), ('off', False))
VBOX_STATE = '/var/lib/vbox-standin/state.json'
VBOX_VMS = [
    {'name': 'win10', 'uuid': '6b0c4f3e-2a51-4d8e-9f43-0d2a7c1e5b01', 'ostype': 'Windows10_64', 'state': 'poweroff',
     'pagefusion': False, 'memory': 2048},
    {'name': 'debian', 'uuid': '6b0c4f3e-2a51-4d8e-9f43-0d2a7c1e5b02', 'ostype': 'Debian_64', 'state': 'poweroff',
     'pagefusion': False, 'memory': 1024},
]


class HostError(Exception):
    pass


def run(*argv, check=True, stdin=None):
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise HostError('%s exited %d: %s' % (' '.join(argv), proc.returncode, (proc.stderr or proc.stdout)[-2000:]))
    return proc.stdout


def in_host(host, *argv, check=True, stdin=None):
    extra = ['-i'] if stdin is not None else []
    return run('podman', 'exec', *extra, host, *argv, check=check, stdin=stdin)


def guest_names(host):
    return ['%s-%s' % (host, suffix) for suffix, _running in GUESTS]


def start_container(image, name, port, ksm=False):
    argv = ['podman', 'run', '--detach', '--name', name, '--hostname', name, '--publish', '127.0.0.1:%d:22' % port]
    if ksm:
        # host_daemon runs here: the machine's KSM (restored by the stage's KSM lock) and ptrace for smaps.
        argv += ['--volume', '/sys/kernel/mm/ksm:/sys/kernel/mm/ksm:rw', '--cap-add', 'SYS_PTRACE']
    run(*argv, image, '/sbin/init')


def wait_booted(name, timeout=120):
    state = in_host(name, 'systemctl', 'is-system-running', '--wait', check=False).strip()
    if state not in ('running', 'degraded'):
        failed = in_host(name, 'systemctl', '--failed', '--no-legend', check=False)
        raise HostError('%s: systemd is %r after boot; failed units: %s' % (name, state, failed))
    deadline = time.monotonic() + timeout
    while in_host(name, 'systemctl', 'is-active', 'ssh', check=False).strip() != 'active':
        if time.monotonic() > deadline:
            raise HostError('%s: sshd did not start' % name)
        time.sleep(0.5)


def authorize(name, public_key):
    in_host(name, 'install', '-d', '-m', '0700', '/root/.ssh')
    in_host(name, 'tee', '/root/.ssh/authorized_keys', stdin=public_key)
    in_host(name, 'chmod', '0600', '/root/.ssh/authorized_keys')


def copy_in(name, source, target):
    run('podman', 'cp', source, '%s:%s' % (name, target))


def setup_libvirt_host(name):
    """The test guest's kernel and initramfs and pf_testguest.py copied in; one guest running, one defined, both
    with page fusion off (<nosharepages/>) so that enable has work to do."""
    in_host(name, 'install', '-d', GUEST_DIR)
    for item in ('vmlinuz', 'initrd.gz'):
        copy_in(name, os.path.join(GUEST_DIR, item), '%s/%s' % (GUEST_DIR, item))
    copy_in(name, os.path.join(ROOT, 'tests', 'setup', 'pf_testguest.py'), '/usr/local/bin/pf_testguest.py')
    wait_active(name, 'libvirtd')
    for (suffix, running), vm in zip(GUESTS, guest_names(name)):
        argv = ['python3', '/usr/local/bin/pf_testguest.py', 'define', vm, '--memory-mib', '96', '--fill-mib', '8',
                '--nosharepages']
        if running:
            # pfee-hv1 restarts its running guest: it must have booted to answer the ACPI power button.
            argv.append('--wait-ready' if name == 'pfee-hv1' else '--start')
        in_host(name, *argv)


def wait_active(name, unit, timeout=60):
    deadline = time.monotonic() + timeout
    while in_host(name, 'systemctl', 'is-active', unit, check=False).strip() != 'active':
        in_host(name, 'systemctl', 'start', unit, check=False)
        if time.monotonic() > deadline:
            raise HostError('%s: %s is not active' % (name, unit))
        time.sleep(0.5)


def setup_vbox_host(name):
    """The VBoxManage stand-in behind a wrapper that names its state file (modules run it without our env)."""
    copy_in(name, os.path.join(ROOT, 'tests', 'vbox', 'VBoxManage'), '/usr/local/lib/VBoxManage-standin')
    wrapper = '#!/bin/sh\nPF_VBOX_STATE=%s exec python3 /usr/local/lib/VBoxManage-standin "$@"\n' % VBOX_STATE
    in_host(name, 'tee', '/usr/local/bin/VBoxManage', stdin=wrapper)
    in_host(name, 'chmod', '0755', '/usr/local/bin/VBoxManage')
    in_host(name, 'install', '-d', os.path.dirname(VBOX_STATE))
    state = {'version': '7.1.12r169651', 'host_bits': 64, 'vms': VBOX_VMS}
    in_host(name, 'tee', VBOX_STATE, stdin=json.dumps(state, indent=1))
    # libvirtd stays off here: this host is a VirtualBox host.
    in_host(name, 'systemctl', 'mask', '--now', 'libvirtd.service', 'libvirtd.socket', 'libvirtd-ro.socket',
            'libvirtd-admin.socket', check=False)


def start_fleet(image, public_key):
    names = list(LIBVIRT_HOSTS) + [VBOX_HOST[0]]
    for name, port in list(LIBVIRT_HOSTS.items()) + [VBOX_HOST]:
        start_container(image, name, port, ksm=(name == 'pfee-hv1'))
    for name in names:
        wait_booted(name)
        authorize(name, public_key)
    for name in LIBVIRT_HOSTS:
        setup_libvirt_host(name)
    setup_vbox_host(VBOX_HOST[0])


def remove_fleet():
    names = list(LIBVIRT_HOSTS) + [VBOX_HOST[0]]
    run('podman', 'rm', '--force', '--time', '5', '--ignore', *names, check=False)


def inventory(key_path):
    """The inventory the EE sees: every host over SSH on 127.0.0.1 (the EE runs with --network host)."""
    libvirt_hosts = {name: {'ansible_port': port} for name, port in LIBVIRT_HOSTS.items()}
    libvirt_hosts['pfee-hv1'].update(page_fusion_when_running='restart', page_fusion_max_restarts=1,
                                     page_fusion_shutdown_timeout=60)
    libvirt_hosts['pfee-hv2'].update(page_fusion_when_running='skip')
    for name in libvirt_hosts:
        libvirt_hosts[name]['page_fusion_pattern'] = name + '-*'
    return {'all': {
        'vars': {
            'ansible_connection': 'ssh', 'ansible_host': '127.0.0.1', 'ansible_user': 'root',
            'ansible_ssh_private_key_file': key_path, 'ansible_python_interpreter': '/usr/bin/python3',
            'ansible_ssh_common_args': '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null',
            'page_fusion_poll_seconds': 1,
        },
        'children': {
            'libvirt_hosts': {'vars': {'page_fusion_backend': 'libvirt', 'page_fusion_uri': 'qemu:///system'},
                              'hosts': libvirt_hosts},
            'vbox_hosts': {'vars': {'page_fusion_backend': 'virtualbox'},
                           'hosts': {VBOX_HOST[0]: {'ansible_port': VBOX_HOST[1]}}},
            'broken_hosts': {'vars': {'page_fusion_backend': 'libvirt'},
                             'hosts': {BROKEN_HOST[0]: {'ansible_port': BROKEN_HOST[1]}}},
        },
    }}


def snapshot(name):
    """What page fusion looks like on a host, read on the host itself: libvirt domain XML (persistent and live),
    or the stand-in's VMs."""
    if name in LIBVIRT_HOSTS:
        result = {}
        for vm in guest_names(name):
            result[vm] = {
                'persistent': in_host(name, 'virsh', '-c', 'qemu:///system', 'dumpxml', '--inactive', vm),
                'state': in_host(name, 'virsh', '-c', 'qemu:///system', 'domstate', vm).strip(),
            }
        return result
    state = json.loads(in_host(name, 'cat', VBOX_STATE))
    return {vm['name']: {'pagefusion': vm['pagefusion'], 'state': vm['state']} for vm in state['vms']}


def fusion_on(name):
    """Per VM: is page fusion on in the persistent definition."""
    if name in LIBVIRT_HOSTS:
        return {vm: '<nosharepages/>' not in facts['persistent'] for vm, facts in snapshot(name).items()}
    return {vm: facts['pagefusion'] for vm, facts in snapshot(name).items()}


def working_hosts():
    return list(LIBVIRT_HOSTS) + [VBOX_HOST[0]]
