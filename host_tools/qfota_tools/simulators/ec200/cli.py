"""``qfota sim``: an EC200T on a pseudo-terminal, for trying qfota without a modem.

Prints the pty path on the first line of stdout, then serves until Ctrl-C or SIGTERM
(or ``--exit-after`` completed updates).
"""

import argparse
import hashlib
import signal
import sys
import threading
import time

from .model import FAST, FAULT_NAMES, FAULTS, REAL, Modem


def _fault_help():
    return "faults (--fault NAME, repeatable):\n" + "\n".join(
        "  %-20s %s" % (name, text) for name, text in FAULTS
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
    p.add_argument(
        "--image", metavar="FILE", help="the package the modem expects: END 506 if another arrives"
    )
    p.add_argument(
        "--revision",
        default="EC200TCNDAR02A07M16_01.001.01.001",
        help="firmware revision before the update",
    )
    p.add_argument(
        "--new-revision",
        default="EC200TCNDAR02A08M16_01.001.01.001",
        help="revision after a successful update",
    )
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
    p.add_argument("--seed", type=int, default=0, help="picks URC shapes and noise (deterministic)")
    p.add_argument("--voltage-mv", type=int, default=3900, help="what AT+CBC reports")
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
    p.add_argument("--exit-grace", type=float, default=2.0, help=argparse.SUPPRESS)
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


def run(args):
    from .pty_sim import PtySimulator

    if "list" in args.fault:
        print(_fault_help())
        return 0
    bad = [f for f in args.fault if f not in FAULT_NAMES]
    if bad:
        print("qfota sim: unknown fault %s (see --fault list)" % ", ".join(bad), file=sys.stderr)
        return 2
    expect = md5_of(args.image) if args.image else None
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
    path = sim.start()
    print(path, flush=True)
    if args.log:
        log(
            "EC200 simulator on %s (%s, baud %d, faults: %s)"
            % (path, model.revision, args.baud, ", ".join(args.fault) or "none")
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
