# qfota-unix: the MicroPython unix port only (termios, POSIX files), never on an MCU: the
# serial port as a tty (``qfota.tty``), the command line's glue (``qfota.runner``),
# ``qfota info``, and the engine's relay to the CLI (``qfota.relay``). ``qfota deploy --board unix`` installs it; boards/unix.py needs it.
metadata(
    version="0.2.0",
    description="qfota on the MicroPython unix port: tty port, CLI glue, modem info.",
    license="MIT",
)

require("qfota-core")

package("qfota", files=("tty.py", "runner.py", "info.py", "relay.py"), base_path="../..")
