# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The B4 guests: real Debian 12 (the guest_agent scenario's image) under TCG through the real libvirtd.

The image is copied once into a directory of B4's own (the build script may change under us), each guest boots
a qcow2 overlay on that copy with direct kernel boot, and is reached over SSH through QEMU user networking
forwarded to 127.0.0.1 only. Every call is an argument list; only the fixed remote commands are shell text.
"""

import os
import shutil
import subprocess
import time
from xml.sax.saxutils import escape

SOURCE_DIR = '/var/cache/pagefusion-test/debian12-grub'  # the guest_agent scenario's image (tests/setup/build-debian-guest.sh)
IMAGE_DIR = '/var/cache/pagefusion-test/b4-grub'
IMAGE_FILES = ('disk.qcow2', 'vmlinuz', 'initrd.img', 'id_ed25519')
URI = 'qemu:///system'
BASE_PORT = 22840
BALLOON = {False: "<memballoon model='none'/>",
           True: "<memballoon model='virtio' freePageReporting='on'/>"}

DOMAIN_XML = """<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <memory unit='MiB'>{mib}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{dir}/vmlinuz</kernel>
    <initrd>{dir}/initrd.img</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{overlay}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'><source path='{console}' append='off'/><target port='0'/></serial>
    <console type='file'><source path='{console}' append='off'/><target type='serial' port='0'/></console>
    {balloon}
  </devices>
  <qemu:commandline>
    <qemu:arg value='-netdev'/>
    <qemu:arg value='user,id=pfnet0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='virtio-net-pci,netdev=pfnet0,addr=0x1e'/>
  </qemu:commandline>
</domain>
"""


def ensure_image(build_script):
    """Copy the cached Debian image into IMAGE_DIR once (building it first through ``build_script`` if absent)."""
    if all(os.path.exists(os.path.join(IMAGE_DIR, f)) for f in IMAGE_FILES):
        return IMAGE_DIR
    if not all(os.path.exists(os.path.join(SOURCE_DIR, f)) for f in IMAGE_FILES):
        subprocess.run([build_script, SOURCE_DIR], check=True)
    os.makedirs(IMAGE_DIR, mode=0o755, exist_ok=True)
    for name in IMAGE_FILES:
        shutil.copy2(os.path.join(SOURCE_DIR, name), os.path.join(IMAGE_DIR, name))
    return IMAGE_DIR


def virsh(*args, check=True):
    return subprocess.run(['virsh', '-q', '-c', URI] + list(args), check=check, capture_output=True, text=True)


class Guest(object):
    """One B4 guest: its overlay, console log, SSH port, domain, QEMU pid."""

    def __init__(self, index, mib, init_on_free, reporting, run_dir):
        self.name = 'pf-b4-%d' % index
        self.port = BASE_PORT + index
        self.overlay = os.path.join(run_dir, self.name + '.qcow2')
        self.console = os.path.join(run_dir, self.name + '.console.log')
        self.xml_path = os.path.join(run_dir, self.name + '.xml')
        cmdline = 'root=/dev/vda1 rw console=ttyS0' + (' init_on_free=1' if init_on_free else '')
        self.xml = DOMAIN_XML.format(name=self.name, mib=mib, dir=escape(IMAGE_DIR), cmdline=cmdline,
                                     overlay=escape(self.overlay), console=escape(self.console),
                                     balloon=BALLOON[reporting], port=self.port)

    def start(self):
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b',
                        os.path.join(IMAGE_DIR, 'disk.qcow2'), self.overlay], check=True)
        with open(self.xml_path, 'w') as handle:
            handle.write(self.xml)
        virsh('create', self.xml_path)  # transient: gone from libvirt once destroyed

    def pid(self):
        with open('/run/libvirt/qemu/%s.pid' % self.name) as handle:
            return int(handle.read().strip())

    def ssh(self, command, timeout=600, attempts=4):
        """Run ``command`` in the guest; ssh's own failures (255: a TCG guest under load answers slowly) retried."""
        argv = ['ssh', '-i', os.path.join(IMAGE_DIR, 'id_ed25519'), '-p', str(self.port),
                '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes',
                '-o', 'ConnectTimeout=30', '-o', 'ServerAliveInterval=15', '-o', 'LogLevel=ERROR',
                'root@127.0.0.1', command]
        for attempt in range(attempts):
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
            if proc.returncode != 255 or attempt == attempts - 1:
                return proc
            time.sleep(3)
        return proc

    def wait_ssh(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.ssh('true', timeout=60, attempts=1).returncode == 0:
                    return True
            except subprocess.TimeoutExpired:
                pass
            time.sleep(3)
        return False

    def destroy(self):
        """Idempotent: the domain (transient) and its files go; a second call finds nothing."""
        virsh('destroy', self.name, check=False)
        for path in (self.overlay, self.xml_path):
            if os.path.exists(path):
                os.unlink(path)


def destroy_leftovers():
    """Destroy B4 domains a crashed earlier run left behind (only ours: the pf-b4- prefix)."""
    listed = virsh('list', '--name', check=False).stdout.split()
    for name in listed:
        if name.startswith('pf-b4-'):
            virsh('destroy', name, check=False)
