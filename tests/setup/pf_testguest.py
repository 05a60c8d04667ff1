# pf-testguest: define, start, wait for, stop and remove the tiny TCG test guests of the
# pagefusion.core integration tests. Talks to libvirt only through `virsh` (argument lists).
# Python 3 standard library only. Run `pf-testguest --help` for the commands.
"""Manage pagefusion.core test guests (busybox initramfs under QEMU TCG, via virsh)."""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape as xml_escape

DEFAULT_URI = os.environ.get("PF_LIBVIRT_URI", "qemu:///system")
DEFAULT_GUEST_DIR = os.environ.get("PF_GUEST_DIR", "/var/cache/pagefusion-test/guest")
DEFAULT_LOG_DIR = os.environ.get("PF_GUEST_LOG_DIR", "/var/log/libvirt/qemu")
DEFAULT_TIMEOUT = float(os.environ.get("PF_GUEST_TIMEOUT", "180"))
QEMU_STATE_DIR = "/run/libvirt/qemu"
META_NS = "https://github.com/pagefusion/core/testguest/1"
READY_MARK = b"PF-READY"
# Guest kernel + busybox + page cache need about this much besides the fill.
GUEST_OVERHEAD_MIB = 80


class Error(Exception):
    """A failure reported as one line on stderr (plus optional detail lines)."""

    def __init__(self, message, detail=None):
        super().__init__(message)
        self.detail = detail or []


class VirshError(Error):
    """virsh exited non-zero."""

    def __init__(self, args, proc):
        text = (proc.stderr or proc.stdout or "").strip()
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        msg = "; ".join(lines) if lines else "exit %d" % proc.returncode
        super().__init__("virsh %s: %s" % (args[0], msg))
        self.text = text


def virsh(uri, *args, check=True):
    """Run virsh with an argument list; return stdout. Never goes through a shell."""
    env = dict(os.environ, LC_ALL="C", LANG="C")
    env["PATH"] = env.get("PATH", "") + ":/usr/bin:/usr/sbin:/bin:/sbin"
    try:
        proc = subprocess.run(
            ["virsh", "-q", "-c", uri, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
            check=False,
        )
    except FileNotFoundError as exc:
        raise Error("virsh not found (install libvirt-clients)") from exc
    if check and proc.returncode != 0:
        raise VirshError(args, proc)
    return proc if not check else proc.stdout


def domain_exists(uri, name):
    proc = virsh(uri, "domuuid", "--domain", name, check=False)
    return proc.returncode == 0


def domain_uuid(uri, name):
    return virsh(uri, "domuuid", "--domain", name).strip()


def domain_state(uri, name):
    """'running', 'shut off', ... or None when the domain does not exist."""
    proc = virsh(uri, "domstate", "--domain", name, check=False)
    if proc.returncode != 0:
        if not domain_exists(uri, name):
            return None
        raise VirshError(("domstate",), proc)
    return proc.stdout.strip()


def domain_xml(uri, name, inactive=False):
    args = ["dumpxml", "--domain", name]
    if inactive:
        args.append("--inactive")
    return ET.fromstring(virsh(uri, *args))


def console_log_path(uri, name):
    """The file the guest's serial console is written to (from the domain XML)."""
    root = domain_xml(uri, name, inactive=True)
    for dev in root.findall("./devices/serial"):
        if dev.get("type") == "file":
            src = dev.find("source")
            if src is not None and src.get("path"):
                return src.get("path")
        log = dev.find("log")
        if log is not None and log.get("file"):
            return log.get("file")
    raise Error("domain %r has no file-backed serial console" % name)


def log_tail(path, lines=15):
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 8192))
            data = fh.read()
    except OSError as exc:
        return ["(cannot read %s: %s)" % (path, exc.strerror)]
    text = data.decode("utf-8", "replace").replace("\r", "")
    out = [ln for ln in text.splitlines() if ln.strip()][-lines:]
    return out or ["(console log %s is empty)" % path]


def build_xml(args, dom_uuid):
    kernel = os.path.join(args.guest_dir, "vmlinuz")
    initrd = os.path.join(args.guest_dir, "initrd.gz")
    for path in (kernel, initrd):
        if not os.path.isfile(path):
            raise Error(
                "%s missing: run tests/setup/build-guest.sh %s first" % (path, args.guest_dir)
            )
    log_path = os.path.join(args.log_dir, "pf-testguest-%s.console.log" % dom_uuid)

    cmdline = [
        "console=ttyS0",
        "panic=-1",
        "loglevel=4",
        "pf_fill_mib=%d" % args.fill_mib,
        "pf_unique_mib=%d" % args.unique_mib,
    ]
    if args.ignore_acpi:
        cmdline.append("pf_ignore_acpi=1")

    dom = ET.Element("domain", type="qemu")
    ET.SubElement(dom, "name").text = args.name
    ET.SubElement(dom, "uuid").text = dom_uuid
    ET.SubElement(dom, "title").text = "pagefusion.core test guest"
    meta = ET.SubElement(ET.SubElement(dom, "metadata"), "{%s}testguest" % META_NS)
    meta.set("fill-mib", str(args.fill_mib))
    meta.set("unique-mib", str(args.unique_mib))
    meta.set("ignore-acpi", "yes" if args.ignore_acpi else "no")
    ET.SubElement(dom, "memory", unit="MiB").text = str(args.memory_mib)
    ET.SubElement(dom, "currentMemory", unit="MiB").text = str(args.memory_mib)
    if args.nosharepages:
        ET.SubElement(ET.SubElement(dom, "memoryBacking"), "nosharepages")
    ET.SubElement(dom, "vcpu", placement="static").text = str(args.vcpus)
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_el, "kernel").text = kernel
    ET.SubElement(os_el, "initrd").text = initrd
    ET.SubElement(os_el, "cmdline").text = " ".join(cmdline)
    ET.SubElement(ET.SubElement(dom, "features"), "acpi")
    ET.SubElement(dom, "clock", offset="utc")
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "destroy"
    ET.SubElement(dom, "on_crash").text = "destroy"
    devices = ET.SubElement(dom, "devices")
    serial = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(serial, "source", path=log_path, append="off")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="file")
    ET.SubElement(console, "source", path=log_path, append="off")
    ET.SubElement(console, "target", type="serial", port="0")
    ET.SubElement(devices, "controller", type="usb", model="none")
    ET.SubElement(devices, "memballoon", model="none")
    ET.register_namespace("pftest", META_NS)
    return ET.tostring(dom, encoding="unicode"), log_path


def wait_ready(uri, name, timeout):
    if not domain_exists(uri, name):
        raise Error("domain %r does not exist" % name)
    path = console_log_path(uri, name)
    deadline = time.monotonic() + timeout
    next_state_check = 0.0
    while True:
        try:
            with open(path, "rb") as fh:
                if READY_MARK in fh.read():
                    # The log is truncated at each start (append='off'), but a shut-off
                    # domain keeps its last log: only a running guest counts.
                    if domain_state(uri, name) == "running":
                        return
        except FileNotFoundError:
            pass
        now = time.monotonic()
        if now >= next_state_check:
            state = domain_state(uri, name)
            if state is None:
                raise Error("domain %r does not exist" % name)
            if state != "running":
                raise Error(
                    "domain %r is %s, not running; console log %s:" % (name, state, path),
                    log_tail(path),
                )
            next_state_check = now + 1.0
        if now >= deadline:
            raise Error(
                "domain %r: no PF-READY within %g s; console log %s:" % (name, timeout, path),
                log_tail(path),
            )
        time.sleep(0.2)


def cmd_define(args):
    if args.fill_mib < 0 or args.unique_mib < 0 or args.memory_mib <= 0:
        raise Error("sizes must be non-negative (memory positive)")
    if args.fill_mib + args.unique_mib + GUEST_OVERHEAD_MIB > args.memory_mib:
        raise Error(
            "--memory-mib %d too small for %d MiB fill + %d MiB unique (+%d MiB guest overhead)"
            % (args.memory_mib, args.fill_mib, args.unique_mib, GUEST_OVERHEAD_MIB)
        )
    if domain_exists(args.uri, args.name):
        dom_uuid = domain_uuid(args.uri, args.name)  # redefine in place, like virsh define
    else:
        dom_uuid = str(uuid.uuid4())
    xml, log_path = build_xml(args, dom_uuid)
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".xml") as fh:
        fh.write(xml)
        fh.flush()
        virsh(args.uri, "define", "--file", fh.name)
    if args.start or args.wait_ready:
        start(args.uri, args.name)
        if args.wait_ready:
            wait_ready(args.uri, args.name, args.timeout)
    print(dom_uuid)


def start(uri, name):
    state = domain_state(uri, name)
    if state is None:
        raise Error("domain %r does not exist" % name)
    if state == "running":
        return
    virsh(uri, "start", "--domain", name)


def cmd_start(args):
    start(args.uri, args.name)
    if args.wait_ready:
        wait_ready(args.uri, args.name, args.timeout)


def cmd_wait_ready(args):
    wait_ready(args.uri, args.name, args.timeout)


def destroy(uri, name):
    proc = virsh(uri, "destroy", "--domain", name, check=False)
    if proc.returncode != 0:
        state = domain_state(uri, name)
        if state is None or state == "shut off":
            return
        raise VirshError(("destroy",), proc)


def cmd_destroy(args):
    destroy(args.uri, args.name)


def undefine(uri, name):
    if not domain_exists(uri, name):
        return
    try:
        path = console_log_path(uri, name)
    except Error:
        path = None
    destroy(uri, name)
    proc = virsh(uri, "undefine", "--domain", name, check=False)
    if proc.returncode != 0 and domain_exists(uri, name):
        raise VirshError(("undefine",), proc)
    if path and os.path.basename(path).startswith("pf-testguest-"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def cmd_undefine(args):
    undefine(args.uri, args.name)


def first_qemu_opt(value):
    """The first option of a QEMU option string, where ",," is an escaped comma."""
    out = []
    i = 0
    while i < len(value):
        if value[i] == ",":
            if value[i + 1:i + 2] != ",":
                break
            i += 1
        out.append(value[i])
        i += 1
    return "".join(out)


def qemu_pid(name):
    # libvirt 9.0 names the pid file after the XML-escaped name ("&" -> "&amp;" etc.), while
    # the status XML next to it uses the raw name: try both.
    candidates = [name, xml_escape(name, {'"': "&quot;", "'": "&apos;"})]
    for base in dict.fromkeys(candidates):
        pidfile = os.path.join(QEMU_STATE_DIR, base + ".pid")
        try:
            with open(pidfile, encoding="ascii") as fh:
                pid = int(fh.read().strip())
        except (OSError, ValueError):
            continue
        if os.path.exists("/proc/%d" % pid):
            return pid
    # Fallback: QEMU's "-name guest=<name>,..." argument (commas doubled).
    want = "guest=" + name
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        for i, arg in enumerate(argv[:-1]):
            if arg == b"-name" and first_qemu_opt(argv[i + 1].decode("utf-8", "replace")) == want:
                return int(entry)
    raise Error("no QEMU process for domain %r (is it running?)" % name)


def cmd_pid(args):
    print(qemu_pid(args.name))


def cmd_log(args):
    print(console_log_path(args.uri, args.name))


def cmd_cleanup(args):
    if not args.prefix:
        raise Error("--prefix must not be empty")
    names = [ln for ln in virsh(args.uri, "list", "--all", "--name").splitlines() if ln]
    failed = []
    for name in names:
        if name.startswith(args.prefix):
            try:
                undefine(args.uri, name)
            except Error as exc:
                failed.append("%s (%s)" % (name, exc))
    if failed:
        raise Error("cleanup failed for: " + ", ".join(failed))


def positive_float(text):
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def parse_args(argv):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--uri", default=DEFAULT_URI, help="libvirt URI (default %(default)s)")
    timeout = argparse.ArgumentParser(add_help=False)
    timeout.add_argument(
        "--timeout", type=positive_float, default=DEFAULT_TIMEOUT,
        help="seconds to wait for PF-READY (default %(default)s)",
    )

    parser = argparse.ArgumentParser(prog="pf-testguest", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("define", parents=[common, timeout], help="define (and start) a guest")
    p.add_argument("name")
    p.add_argument("--memory-mib", type=int, default=256)
    p.add_argument("--vcpus", type=int, default=1)
    p.add_argument("--nosharepages", action="store_true",
                   help="add <memoryBacking><nosharepages/></memoryBacking>")
    p.add_argument("--fill-mib", type=int, default=64,
                   help="MiB identical in every guest (default %(default)s)")
    p.add_argument("--unique-mib", type=int, default=0,
                   help="MiB random per guest (default %(default)s)")
    p.add_argument("--ignore-acpi", action="store_true", help="guest ignores the power button")
    p.add_argument("--guest-dir", default=DEFAULT_GUEST_DIR,
                   help="where build-guest.sh put vmlinuz/initrd.gz (default %(default)s)")
    p.add_argument("--log-dir", default=DEFAULT_LOG_DIR,
                   help="directory of the console log (default %(default)s)")
    p.add_argument("--start", action="store_true")
    p.add_argument("--wait-ready", action="store_true", help="start and wait for PF-READY")
    p.set_defaults(func=cmd_define)

    p = sub.add_parser("start", parents=[common, timeout], help="start a defined guest")
    p.add_argument("name")
    p.add_argument("--wait-ready", action="store_true")
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("wait-ready", parents=[common, timeout],
                       help="wait until the guest printed PF-READY")
    p.add_argument("name")
    p.set_defaults(func=cmd_wait_ready)

    for cmd, func, text in (
        ("destroy", cmd_destroy, "force the guest off (ok if not running)"),
        ("undefine", cmd_undefine, "destroy + undefine + remove the log (ok if missing)"),
        ("pid", cmd_pid, "print the QEMU pid"),
        ("log", cmd_log, "print the console log path"),
    ):
        p = sub.add_parser(cmd, parents=[common], help=text)
        p.add_argument("name")
        p.set_defaults(func=func)

    p = sub.add_parser("cleanup", parents=[common],
                       help="destroy + undefine every domain whose name starts with PREFIX")
    p.add_argument("--prefix", required=True)
    p.set_defaults(func=cmd_cleanup)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        args.func(args)
    except Error as exc:
        print("pf-testguest: error: %s" % exc, file=sys.stderr)
        for line in exc.detail:
            print("  | " + line, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pf-testguest: error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
