# qfota-core: the engine. ``qfota.driver.update()``/``recover()`` over a ``machine.UART``
# (``qfota.uart``), the Reporter that prints what happened and gives the exit status, and
# the Journal a program keeps so that a reset mid-update is followed by ``recover()``.
# Not shipped (unix port / host only): tty.py (termios), runner.py (the CLI's glue),
# info.py (``qfota info``).
metadata(
    version="0.2.0",
    description="FOTA updates of Quectel EC200T/EC200S/EG912Y modems over a UART: the engine.",
    license="MIT",
)

package(
    "qfota",
    files=(
        "__init__.py",
        "compat.py",
        "errors.py",
        "codes.py",
        "defaults.py",
        "lines.py",
        "urc.py",
        "at.py",
        "checks.py",
        "steps.py",
        "answers.py",
        "session.py",
        "driver.py",
        "uart.py",
        "recovery.py",
        "cut.py",
        "report.py",
        "journal.py",
    ),
    base_path="../..",
)
