"""``qfota sim``: an EC200T on a pseudo-terminal, for trying qfota without a modem.

Prints the pty path on the first line of stdout, then serves until Ctrl-C or SIGTERM
(or ``--exit-after`` completed updates).
"""

import argparse
import hashlib
import os
import signal
import sys
import threading
import time

from .model import FAST, FAULTS, NEW_REVISION, PROFILES, REAL, REVISION, Modem, fault_known


def _fault_help():
    return "faults (--fault NAME, repeatable):\n" + "\n".join(
        "  %-20s %s" % (row[0], row[1]) for row in FAULTS
    )


def add_package_args(p, when=""):
    """``--image``, ``--revision``, ``--new-revision``: the package the modem expects and
    the revisions it runs before and after (``qfota sim``; the emulated boards' ``--modem``,
    ``when`` prefixing their help)."""
    p.add_argument(
        "--image",
        metavar="FILE",
        help=when + "the package the modem expects: END 506 if another arrives",
    )
    p.add_argument(
        "--revision", default=REVISION, help=when + "firmware revision before the update"
    )
    p.add_argument(
        "--new-revision", default=NEW_REVISION, help=when + "revision after a successful update"
    )


def add_parser(subparsers):
    p = subparsers.add_parser(
        "sim",
        help="simulate an EC200T modem on a pty",
        description=__doc__,
        epilog=_fault_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--link", metavar="PATH", help="also make PATH a symlink to the pty")
    p.add_argument(
        "--baud",
        type=int,
        default=115200,
        help="line rate (baud/10 bytes/s with flow control; 0 = unlimited)",
    )
    add_package_args(p)
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME",
        help="inject a fault (repeatable; 'list' lists them)",
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="tens of ms instead of realistic seconds for every delay",
    )
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default="default",
        help="note: answer only the Application Note's documented commands (and Quectel's HTTP "
        "commands but custom_header and QHTTPPUT), ERROR to the rest",
    )
    p.add_argument("--seed", type=int, default=0, help="picks URC shapes and noise (deterministic)")
    p.add_argument("--voltage-mv", type=int, default=3900, help="what AT+CBC reports")
    p.add_argument("--imei", help="what AT+CGSN reports: 15 digits (default: derived from --seed)")
    p.add_argument(
        "--rx-buffer",
        type=int,
        default=4096,
        help="receive buffer without flow control, bytes (the model's default is 1024; a pty adds scheduling jitter)",
    )
    p.add_argument("--fetch-timeout", type=float, default=10.0, help="URL modes: socket timeout, s")
    p.add_argument("--cafile", help="URL modes: CA bundle to trust for https")
    p.add_argument(
        "--exit-after",
        type=int,
        metavar="N",
        help="exit after N completed updates (once the host has been quiet for --exit-grace s)",
    )
    p.add_argument(
        "--exit-grace",
        type=float,
        default=2.0,
        metavar="S",
        help="with --exit-after: how long the host must be quiet first (default 2)",
    )
    p.add_argument(
        "--log",
        action="store_true",
        help="print every line sent and received to stderr (passwords redacted)",
    )
    p.set_defaults(func=run)
    return p


def md5_of(path):
    """Hex md5 of a file, read in blocks (the package the simulated modem expects)."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def _refusal(args):
    """The one-line reason to refuse the arguments, or None."""
    bad = [f for f in args.fault if not fault_known(f)]
    if bad:
        return "unknown fault %s (see --fault list)" % ", ".join(bad)
    for name, minimum in (
        ("baud", 0),
        ("voltage_mv", 0),
        ("rx_buffer", 1),
        ("fetch_timeout", 0.001),
        ("exit_after", 1),
        ("exit_grace", 0),
        ("seed", 0),
    ):
        value = getattr(args, name)
        if value is not None and not value >= minimum:  # also catches nan
            return "--%s %s: must be %s or more" % (name.replace("_", "-"), value, minimum)
    if args.imei is not None and (len(args.imei) != 15 or not args.imei.isdigit()):
        return "--imei %s: must be 15 digits" % args.imei
    if args.image is not None:
        if not os.path.isfile(args.image):
            return "--image %s: no such file" % args.image
        if not os.access(args.image, os.R_OK):
            return "--image %s: not readable" % args.image
    if args.link is not None:
        parent = os.path.dirname(os.path.abspath(args.link))
        if not os.path.isdir(parent):
            return "--link %s: no such folder %s" % (args.link, parent)
        if os.path.lexists(args.link) and not os.path.islink(args.link):
            return "--link %s: exists and is not a symlink (not replacing it)" % args.link
        if not os.access(parent, os.W_OK):
            return "--link %s: cannot write in %s" % (args.link, parent)
    if args.cafile is not None and not os.path.isfile(args.cafile):
        return "--cafile %s: no such file" % args.cafile
    return None


def run(args):
    from .pty_sim import PtySimulator

    if "list" in args.fault:
        print(_fault_help())
        return 0
    why = _refusal(args)
    if why:
        print("qfota sim: %s" % why, file=sys.stderr)
        return 2
    try:
        expect = md5_of(args.image) if args.image else None
    except OSError as e:
        print("qfota sim: --image %s: %s" % (args.image, e.strerror or e), file=sys.stderr)
        return 2
    model = Modem(
        revision=args.revision,
        new_revision=args.new_revision,
        expect_md5=expect,
        faults=tuple(args.fault),
        baud=args.baud,
        timing=dict(FAST if args.fast else REAL),
        seed=args.seed,
        voltage_mv=args.voltage_mv,
        rx_buffer=args.rx_buffer,
        keep_received=False,
        profile=args.profile,
        imei=args.imei,
    )
    t0 = time.monotonic()

    def log(line):
        print("%9.3f %s" % (time.monotonic() - t0, line), file=sys.stderr, flush=True)

    sim = PtySimulator(
        model,
        link=args.link,
        log=log if args.log else None,
        fetch_timeout=args.fetch_timeout,
        cafile=args.cafile,
    )
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    old = signal.signal(signal.SIGTERM, on_signal)
    try:
        path = sim.start()
    except OSError as e:  # the link could not be made after all (a race, a full disk)
        sim.stop()
        signal.signal(signal.SIGTERM, old)
        print("qfota sim: %s" % (e.strerror or e), file=sys.stderr)
        return 2
    print(path, flush=True)
    if args.log:
        log(
            "EC200 simulator on %s (%s, baud %d, profile %s, faults: %s)"
            % (path, model.revision, args.baud, args.profile, ", ".join(args.fault) or "none")
        )
    done_at = None
    try:
        while not stop.wait(0.05):
            if sim.error is not None:
                print("qfota sim: %r" % sim.error, file=sys.stderr)
                return 1
            if args.exit_after is None:
                continue
            if done_at is None:
                if sim.inspect(lambda m: m.updates_completed) >= args.exit_after:
                    done_at = time.monotonic()
                continue
            quiet_since = max(done_at, sim.last_input or 0)
            if time.monotonic() - quiet_since >= args.exit_grace:
                break
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        signal.signal(signal.SIGTERM, old)
        if args.log:
            m = sim.model
            log(
                "stopped: %d updates, outcome %s, revision %s"
                % (m.updates_completed, m.outcome, m.revision)
            )
    return 0
