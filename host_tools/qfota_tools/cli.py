"""``qfota``: one command, one subcommand per job.

Each subcommand lives in its own module, which provides ``add_parser(subparsers)``
(registering its arguments and ``set_defaults(func=run)``) and ``run(args) -> int``.
Modules are imported only when registered, so a missing optional piece never breaks
the others.
"""

import argparse
import importlib
import sys

# (subcommand, module): the order here is the order in ``qfota --help``.
SUBCOMMANDS = (
    ("update", "qfota_tools.commands.update"),
    ("recover, info", "qfota_tools.commands.modem"),
    ("sim", "qfota_tools.simulators.ec200.cli"),
    ("board-sim", "qfota_tools.simulators.board_sim"),
    ("pico-sim", "qfota_tools.simulators.pico"),
    ("stm32-sim", "qfota_tools.simulators.stm32"),
    ("stage", "qfota_tools.commands.stage"),
    ("deploy", "qfota_tools.commands.deploy"),
    ("swu", "qfota_tools.commands.swu"),
    ("agent", "qfota_tools.commands.agent"),
)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (exit 2): no usage block, no traceback. Subcommand
    parsers are of the same class."""

    def error(self, message):
        self.exit(2, "%s: error: %s (see %s --help)\n" % (self.prog, message, self.prog))


def build_parser():
    import qfota

    parser = Parser(
        prog="qfota",
        description="FOTA updates for Quectel EC200T/EC200S/EG912Y modems.",
    )
    parser.add_argument("--version", action="version", version="qfota " + qfota.__version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _name, module in SUBCOMMANDS:
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            if exc.name != module:
                raise
            continue
        mod.add_parser(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("qfota: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
