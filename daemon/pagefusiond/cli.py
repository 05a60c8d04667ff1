# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The command line of pagefusiond (``--once``, ``--status``, ``--check-config``, ``--print-defaults``)."""

from __future__ import annotations

import argparse
import errno
import os
import sys

from . import EXIT_CONFIG, EXIT_ERROR, EXIT_KSM_READ_ONLY, EXIT_NO_KSM, EXIT_OK, __version__
from .collection import _daemon_state, _ksm
from .config import DEFAULT_CONFIG_PATH, DEFAULTS, ConfigError, load_config, render_config
from .outputs import is_stale, state_json, status_text
from .service import Daemon, stderr_log


def _parser():
    parser = argparse.ArgumentParser(prog='pagefusiond', description='pagefusiond: drives Linux KSM so that most of the page-sharing savings '
                                     'arrive within seconds, at a small CPU cost afterwards (pagefusion.core).')
    parser.add_argument('--config', default=DEFAULT_CONFIG_PATH, help='config file (INI, section [pagefusiond]); default %(default)s')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--once', action='store_true', help='run one control step, print the state as JSON and exit')
    group.add_argument('--status', action='store_true', help='print the state file of the running daemon; exit 1 when absent or stale')
    group.add_argument('--check-config', action='store_true', help='validate the config file and exit (0 valid, 2 invalid)')
    group.add_argument('--print-defaults', action='store_true', help='print the built-in defaults as a config file')
    parser.add_argument('--version', action='version', version='pagefusiond %s' % __version__)
    return parser


def show_status(state_path):
    """``--status``: print the running daemon's state; EXIT_ERROR when there is none or it is stale."""
    state, warning = _daemon_state.read_state(state_path)
    if state is None:
        if warning:
            sys.stdout.write('pagefusiond is not running: %s\n' % warning)
        else:
            sys.stdout.write('pagefusiond is not running (no state in %s: %s)\n' % (state_path, os.strerror(errno.ENOENT)))
        return EXIT_ERROR
    sys.stdout.write(status_text(state) + '\n')
    if is_stale(state):
        sys.stdout.write('  STALE or stopped: the daemon is not updating %s\n' % state_path)
        return EXIT_ERROR
    return EXIT_OK


# The knobs every phase writes: without write access to them pagefusiond can do nothing.
REQUIRED_WRITABLE = ('run', 'pages_to_scan', 'sleep_millisecs')


def unwritable_knob(ksm):
    """``(path, reason)`` of the first KSM knob this process cannot open for writing, or None.

    Opening without writing changes nothing, and gives the kernel's own answer (EROFS for a read-only
    mount, EACCES without root) where ``os.access`` would guess.
    """
    for knob in REQUIRED_WRITABLE:
        path = ksm.path(knob)
        try:
            os.close(os.open(path, os.O_WRONLY))
        except OSError as err:
            return path, err.strerror or str(err)
    return None


def main(argv=None, ksm=None):
    """The command line of pagefusiond. Returns the exit code."""
    args = _parser().parse_args(argv)
    if args.print_defaults:
        sys.stdout.write(render_config(DEFAULTS))
        return EXIT_OK
    try:
        config = load_config(args.config, required=args.check_config and args.config != DEFAULT_CONFIG_PATH)
    except ConfigError as err:
        stderr_log('bad configuration: %s' % err)
        return EXIT_CONFIG
    if args.check_config:
        sys.stdout.write('%s: valid\n' % args.config if os.path.exists(args.config) else '%s: absent, built-in defaults\n' % args.config)
        return EXIT_OK
    if args.status:
        return show_status(config['state_path'])

    ksm = ksm or _ksm.KsmSysfs()
    if not ksm.present():
        stderr_log('KSM is not available: %s does not exist (this kernel has no CONFIG_KSM); nothing to do' % ksm.root)
        return EXIT_NO_KSM
    blocked = None if args.once else unwritable_knob(ksm)
    if blocked:
        # A clean exit that the unit's RestartPreventExitStatus names: restarting cannot make sysfs writable.
        stderr_log('cannot write the KSM settings: %s: %s. pagefusiond must run as root with %s writable '
                   '(not a read-only /sys, e.g. a container without a read-write bind mount of it); exiting' % (
                       blocked[0], blocked[1], ksm.root))
        return EXIT_KSM_READ_ONLY
    daemon = Daemon(args.config, config, ksm=ksm)
    if args.once:
        # One step, printed only: the files and the snapshot belong to a daemon that may be running.
        daemon.controller.snapshot.path = None
        sys.stdout.write(state_json(daemon.controller.step()))
        return EXIT_OK
    return daemon.run()
