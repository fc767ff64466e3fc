# qfota-fleet: server mode. The modem updated when a hawkBit DDI server (gooseBit) says so:
# the sans-I/O DDI client (``qfota.ddi``), the SWU reader (``qfota.swu``: the modem gets
# the image inside the wrapper) and the poll/download/update/feedback logic with its
# journal (``qfota.fleet``; an offer's download and check ``qfota.fleetdl``, its update
# phase ``qfota.fleetupd``, what the phases share ``qfota.action``, a deploymentBase
# answer read by ``qfota.deployment``; the app's server mode ``qfota.serve`` and its
# settings ``qfota.servecfg``), over a transport that the product gives.
metadata(
    version="0.2.0",
    description="qfota: server mode, the modem updated from a hawkBit DDI server.",
    license="MIT",
)

require("qfota-core")
require("qfota-http")  # serve.py: the app in server mode reaches the server through the modem

package(
    "qfota",
    files=(
        "action.py",
        "ddi.py",
        "deployment.py",
        "swu.py",
        "fleet.py",
        "fleetdl.py",
        "fleetupd.py",
        "serve.py",
        "servecfg.py",
    ),
    base_path="../..",
)
