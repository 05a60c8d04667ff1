# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ee stage's fleet run: the collection's playbooks from the EE image, through ansible-runner inside it, over
SSH against the containers of fleet_hosts.py.

    python tests/ee/fleet_run.py EE_IMAGE HOST_IMAGE
    (python tests/ee/fleet_run.py daemon-step RUNNER_DIR EE_IMAGE: the host_daemon step; run_stage runs it under the
    KSM lock)

check -> enable (one libvirt host restarts its running guest) -> enable again (changed=0) -> report ->
host_daemon on one libvirt host -> disable; each step checked on the hosts themselves. Fails with a message naming
the step and the host; the containers are removed at the end, also on failure."""

import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import yaml

import fleet_hosts as hosts

PROJECT = {
    'enable.yml': 'pagefusion.core.enable',
    'disable.yml': 'pagefusion.core.disable',
    'report.yml': 'pagefusion.core.report',
}
DAEMON_PLAY = [{'name': 'Run pagefusiond on one libvirt host', 'hosts': 'pfee-hv1', 'gather_facts': False,
                'roles': [{'role': 'pagefusion.core.host_daemon'}]}]


class StageError(Exception):
    pass


def step(text):
    print('\n=== ee fleet: %s (%.0fs)' % (text, time.monotonic() - START), flush=True)


START = time.monotonic()


def write_runner_dir(base):
    """ansible-runner's private data dir: inventory, project (thin wrappers around the collection's playbooks),
    env, and the SSH key made for this run."""
    for sub in ('inventory', 'project', 'env', 'ssh'):
        os.makedirs(os.path.join(base, sub))
    key = os.path.join(base, 'ssh', 'id_ed25519')
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'pagefusion-ee-stage', '-f', key], check=True)
    with open(os.path.join(base, 'inventory', 'hosts.yml'), 'w') as out:
        yaml.safe_dump(hosts.inventory('/runner/ssh/id_ed25519'), out)
    for name, fqcn in PROJECT.items():
        with open(os.path.join(base, 'project', name), 'w') as out:
            yaml.safe_dump([{'name': 'The collection playbook %s' % fqcn, 'ansible.builtin.import_playbook': fqcn}],
                           out, sort_keys=False)
    with open(os.path.join(base, 'project', 'host_daemon.yml'), 'w') as out:
        yaml.safe_dump(DAEMON_PLAY, out, sort_keys=False)
    with open(os.path.join(base, 'env', 'envvars'), 'w') as out:
        yaml.safe_dump({'ANSIBLE_HOST_KEY_CHECKING': 'False', 'ANSIBLE_NOCOLOR': '1'}, out)
    with open(key + '.pub') as pub:
        return pub.read()


def runner(base, image, ident, playbook, *cmdline):
    """ansible-runner inside the EE; returns (rc, stats) with stats from the run's playbook_on_stats event."""
    argv = ['podman', 'run', '--rm', '--network', 'host', '--user', 'root', '--volume', '%s:/runner' % base,
            image, 'ansible-runner', 'run', '/runner', '--ident', ident, '-p', playbook]
    # ansible-runner keeps a --cmdline in env/cmdline and reuses it when a later run gives none (--check would stick).
    stale = os.path.join(base, 'env', 'cmdline')
    if os.path.exists(stale):
        os.remove(stale)
    if cmdline:
        argv.append('--cmdline=' + ' '.join(cmdline))
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    print('  %s %s: rc=%d in %.1fs' % (playbook, ' '.join(cmdline), proc.returncode, time.monotonic() - started))
    stats = None
    for path in glob.glob(os.path.join(base, 'artifacts', ident, 'job_events', '*.json')):
        with open(path) as handle:
            event = json.load(handle)
        if event.get('event') == 'playbook_on_stats':
            stats = event['event_data']
    if stats is None:
        raise StageError('%s: ansible-runner produced no stats (rc %d): %s%s'
                         % (ident, proc.returncode, proc.stdout[-3000:], proc.stderr[-2000:]))
    return proc.returncode, stats, proc.stdout


def expect(condition, message, output=''):
    if not condition:
        if output:
            print(output[-6000:])
        raise StageError(message)


def check_recap(ident, stats, output, changed=None):
    """Every working host ran without failure (with `changed` true: changed>0, false: changed=0); the broken host
    was not reached."""
    for host in hosts.working_hosts():
        expect(not stats['failures'].get(host) and not stats['dark'].get(host),
               '%s: %s failed or was unreachable' % (ident, host), output)
        if changed is not None:
            count = stats['changed'].get(host, 0)
            wanted = 'changes' if changed else 'none'
            expect((count > 0) == changed, '%s: %s changed=%d, expected %s' % (ident, host, count, wanted), output)
    broken = hosts.BROKEN_HOST[0]
    expect(stats['dark'].get(broken) or stats['failures'].get(broken),
           '%s: the broken host %s was neither unreachable nor failed' % (ident, broken), output)


def run_stage(base, ee_image, host_image):
    step('hosts: containers with systemd, sshd, libvirtd and TCG guests')
    hosts.start_fleet(host_image, write_runner_dir(base))
    for host in hosts.LIBVIRT_HOSTS:
        expect(hosts.fusion_on(host) == {vm: False for vm in hosts.guest_names(host)}, '%s: fusion on at start' % host)
    before = {host: hosts.snapshot(host) for host in hosts.working_hosts()}

    step('enable --check: predicts, changes nothing on any host')
    rc, stats, out = runner(base, ee_image, 'enable-check', 'enable.yml', '--check')
    check_recap('enable --check', stats, out, changed=True)
    for host in hosts.working_hosts():
        expect(hosts.snapshot(host) == before[host], 'enable --check changed %s' % host)

    step('enable: pfee-hv1 restarts its running guest (max 1 at a time), pfee-hv2 skips its running one')
    rc, stats, out = runner(base, ee_image, 'enable', 'enable.yml', '-e', 'page_fusion_serial=2')
    check_recap('enable', stats, out, changed=True)
    check_enabled()

    step('enable again: changed=0 on every working host')
    rc, stats, out = runner(base, ee_image, 'enable-again', 'enable.yml', '-e', 'page_fusion_serial=2')
    check_recap('enable again', stats, out, changed=False)

    step('report: every host, the broken one as unreachable or failed')
    rc, stats, out = runner(base, ee_image, 'report', 'report.yml', '-e', 'report_dir=/runner/report')
    check_report(os.path.join(base, 'report'), out)

    step('host_daemon on pfee-hv1 (under the KSM lock): pagefusiond under the container\'s systemd')
    # pagefusiond drives the machine's KSM: the KSM lock, the knobs saved before and put back after, held only
    # while the daemon runs (it is stopped again at the end of the step).
    with_lock = [sys.executable, '-m', 'pagefusion_dev.ksm_reset', 'run', '--']
    proc = subprocess.run(with_lock + [sys.executable, os.path.abspath(__file__), 'daemon-step', base, ee_image],
                          check=False)
    expect(proc.returncode == 0, 'the host_daemon step failed (rc %d)' % proc.returncode)

    step('disable: page fusion off again')
    rc, stats, out = runner(base, ee_image, 'disable', 'disable.yml', '-e', 'page_fusion_serial=2')
    check_recap('disable', stats, out, changed=True)
    for host in hosts.working_hosts():
        expected = {vm: False for vm in hosts.fusion_on(host)}
        if host == 'pfee-hv2':
            expected = {'pfee-hv2-run': False, 'pfee-hv2-off': False}
        expect(hosts.fusion_on(host) == expected, '%s after disable: %s' % (host, hosts.fusion_on(host)))


def daemon_step(base, ee_image):
    """The host_daemon role from the EE; pagefusiond active under pfee-hv1's systemd; then stopped (it restores
    the KSM knobs it changed, and the caller's KSM lock restores the rest)."""
    try:
        rc, stats, out = runner(base, ee_image, 'host-daemon', 'host_daemon.yml')
        expect(rc == 0 and not stats['failures'], 'host_daemon failed (rc %d)' % rc, out)
        state = hosts.in_host('pfee-hv1', 'systemctl', 'is-active', 'pagefusiond', check=False).strip()
        expect(state == 'active', 'pfee-hv1: pagefusiond is %r, not active' % state,
               hosts.in_host('pfee-hv1', 'journalctl', '-u', 'pagefusiond', '--no-pager', check=False))
        print('  pfee-hv1: pagefusiond is active under the container\'s systemd')
    except (StageError, hosts.HostError) as err:
        print('ee fleet: FAILED: %s' % err, file=sys.stderr)
        return 1
    finally:
        hosts.in_host('pfee-hv1', 'systemctl', 'stop', 'pagefusiond', check=False)
    return 0


def check_enabled():
    expect(hosts.fusion_on('pfee-hv1') == {'pfee-hv1-run': True, 'pfee-hv1-off': True},
           'pfee-hv1 after enable: %s' % hosts.fusion_on('pfee-hv1'))
    expect(hosts.snapshot('pfee-hv1')['pfee-hv1-run']['state'] == 'running', 'pfee-hv1-run is not running again')
    expect(hosts.fusion_on('pfee-hv2') == {'pfee-hv2-run': False, 'pfee-hv2-off': True},
           'pfee-hv2 after enable (running guest skipped): %s' % hosts.fusion_on('pfee-hv2'))
    expect(hosts.fusion_on('pfee-vbox') == {'win10': True, 'debian': False},
           'pfee-vbox after enable (Windows only): %s' % hosts.fusion_on('pfee-vbox'))


def check_report(report_dir, output):
    for name in ('report.json', 'report.md', 'report.html'):
        expect(os.path.isfile(os.path.join(report_dir, name)), 'report: no %s' % name, output)
    with open(os.path.join(report_dir, 'report.json')) as handle:
        report = json.load(handle)
    by_host = {entry['host']: entry for entry in report['hosts']}
    everyone = hosts.working_hosts() + [hosts.BROKEN_HOST[0]]
    expect(sorted(by_host) == sorted(everyone), 'report.json hosts: %s' % sorted(by_host))
    for host in hosts.working_hosts():
        expect(by_host[host]['status'] == 'ok', 'report.json: %s is %s' % (host, by_host[host]['status']))
    expect(by_host[hosts.BROKEN_HOST[0]]['status'] in ('unreachable', 'failed'), 'report.json: broken host is ok')
    for name in ('report.md', 'report.html'):
        with open(os.path.join(report_dir, name)) as handle:
            text = handle.read()
        missing = [host for host in everyone if host not in text]
        expect(not missing, 'report: %s does not mention %s' % (name, missing))


def main(ee_image, host_image):
    base = tempfile.mkdtemp(prefix='pagefusion-ee-fleet.', dir='/var/tmp')
    hosts.remove_fleet()
    try:
        run_stage(base, ee_image, host_image)
    except (StageError, hosts.HostError) as err:
        print('ee fleet: FAILED: %s (artifacts in %s)' % (err, base), file=sys.stderr)
        return 1
    finally:
        hosts.remove_fleet()
    step('passed')
    subprocess.run(['rm', '-rf', base], check=False)
    return 0


if __name__ == '__main__':
    if sys.argv[1] == 'daemon-step':
        sys.exit(daemon_step(*sys.argv[2:4]))
    sys.exit(main(*sys.argv[1:3]))
