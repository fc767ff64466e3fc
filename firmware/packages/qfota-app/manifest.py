# qfota-app: the on-device application (``qfota.app``) and the ``main.py`` that runs it at
# boot: staged image and manifest, hash check, journal, resume. Needs a ``board`` module
# (one of the repository's boards/*.py, installed as board.py).
metadata(
    version="0.2.0",
    description="qfota: the boot-time app that updates the modem once from a staged image.",
    license="MIT",
)

require("qfota-core")

package("qfota", files=("app.py",), base_path="../..")
module("main.py", base_path="../..")
