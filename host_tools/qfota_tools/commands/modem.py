"""``qfota recover`` and ``qfota info``: the two commands that talk to a modem without
sending it a package. They share ``qfota update``'s checks, port lock, signals and
runtimes (``commands/update.py``).

    qfota recover --port /dev/ttyUSB0     # follow an update under way to END, RDY, revision
    qfota info --port /dev/ttyUSB0 --json # revision, flow control, ranges, supply, PDP
"""

from qfota_tools.commands import update as U


def _common(p, what):
    p.add_argument("--port", required=True, help="serial device of the modem's AT port")
    p.add_argument(
        "--usb", action="store_true", help="the port is the module's USB AT port (%s)" % what
    )
    U.add_port_options(p)
    p.add_argument("--json", action="store_true", help="JSON objects instead of text, for scripts")
    p.add_argument("--log", metavar="FILE", help="append every line, timestamped, to FILE")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="print every AT line (passwords redacted)"
    )


def _options(args, command):
    timeouts = U.check_port_options(args)
    U.check_log(args.log, command, args.port)
    return {
        "command": command,
        "port": args.port,
        "usb": args.usb,
        "baud": args.baud,
        "flow": "hw",
        "timeouts": timeouts,
        "json": args.json,
        "log": args.log,
        "verbose": args.verbose,
        "live": False,
    }


def _run(args, command):
    try:
        opts = _options(args, command)
    except U.Refused as e:
        return U.refused(args, str(e))
    return U.launch(opts, args.runtime)


def run_recover(args):
    return _run(args, "recover")


def run_info(args):
    return _run(args, "info")


def add_parser(sub):
    p = sub.add_parser(
        "recover",
        help="follow an update already under way (after a cut run or an MCU reset) to its end",
        description="Listens first (a cut FILE transfer must not get AT as package data: the "
        "modem ends it by itself), follows the upgrade's URCs to END and RDY, then reads the "
        "revision. Sends nothing that starts an update. Exit codes as for qfota update.",
    )
    _common(p, "no setting is changed")
    p.set_defaults(func=run_recover)
    p = sub.add_parser(
        "info",
        help="read the modem's revision, flow control, AT+QFOTADL=? ranges, supply, PDP state",
        description="Reads only: changes nothing on the modem.",
    )
    _common(p, 'reads AT+QCFG="usbifc" instead of AT+IFC?')
    p.set_defaults(func=run_info)
