"""The application in server mode: the modem updated when a DDI server says so.

``qfota.app`` runs this instead of the staged-image mode when its settings (``fota/qfota.cfg``
or the board's ``SETTINGS``) name a ``server``::

    {"server": "http://fleet.example:8080", "tenant": "DEFAULT", "controller": "pump-0042"}

It reaches the server through the modem's own HTTP AT commands (``qfota.httpdrv``), and
``qfota.fleet`` does the rest: poll, configData with the modem's model and revision, a
deployment downloaded in ranges into ``<storage>/fleet`` (resumed after a reset), its
hash checked, an SWU unwrapped, the FILE-mode update with the revision gate and the power
check of the staged mode (``min_voltage_mv``), the result posted once. URL mode (the
modem fetches the package itself) only when ``url_mode`` is on and ``download_auth`` off.

The TargetToken is read from ``token_file`` (one line) and never printed; without the
file the device polls without ``Authorization`` (a server with device auth off).
"""

import gc

from qfota.action import DUE, UPDATE
from qfota.compat import release, sleep_ms

# The poll phase's own modules, released before the download phase
_POLL = ("fleet", "ddi", "fleetdl", "fleetupd")
# The modem's HTTP and the download's, released before the update phase (the engine's
# stay: the app's); codes: the meanings of a failure.
_HTTP = ("fleetdl", "swu", "httpdrv", "httpat", "httpcfg", "httpreq", "httptail", "codes")
# The update phase's modules nothing holds between its runs, released before the poll
# phase (session, report and app's stay: the app holds them); codes: a failure's meanings.
_ENGINE = (
    "fleetupd",
    "driver",
    "session",
    "steps",
    "answers",
    "recovery",
    "cut",
    "checks",
    "codes",
)


# Each phase is called through a function of its own: a local of run() holding a phase's
# function would keep its module's code in the heap through the other phases.
def _settings(app):
    from qfota.servecfg import settle

    try:
        return settle(app)
    finally:
        release("servecfg")  # the defaults are in app.cfg by now


def _update(app, journal, folder, rev, read):
    from qfota.fleetupd import phase

    return phase(app, journal, folder, rev, read)


def _transport(app):
    from qfota.httpdrv import ModemTransport

    cfg = app.cfg
    t = ModemTransport(app._open(), cid=cfg["cid"], apn=cfg["apn"])  # polling: httpdrv.RX
    t.core.keep_checks = False  # polling: qfota.httpreq let go after each request's making
    return t


def _poll(*args):
    from qfota.fleet import phase

    return phase(*args)


def _download(*args):
    from qfota.fleetdl import phase

    return phase(*args)


def run(app, root):
    """Server mode for ``app`` (a ``qfota.app.App``) with storage at ``root``; returns the
    exit status after ``polls`` steps (never, by default).

    Three phases, one at a time in the heap: polling (``qfota.fleet.phase`` with the DDI
    client and the modem's HTTP), the download and its check (``qfota.fleetdl.phase``,
    the modem's HTTP), and the modem's update (``qfota.fleetupd.phase`` over the engine);
    between them plain data (the deployment's links, the controller's URL) and the
    action's journal. The modules of one are released (``qfota.compat.release``) and
    collected before the next runs; this module holds only the loop."""
    from qfota.errors import FotaError
    from qfota.journal import Journal
    from qfota.report import EXIT_FAILED, EXIT_OK

    status, controller, token = _settings(app)
    if status is not None:
        return status
    cfg = app.cfg
    folder = root + "/fleet"
    journal = Journal(folder + "/action.json")
    journal.load()
    app.say("server mode: %s, tenant %s, device %s" % (cfg["server"], cfg["tenant"], controller))
    polls = cfg["polls"]
    n = 0
    rev = None
    config = True  # the configData: at the first poll phase and after every update
    while True:
        more = polls is None or n < polls
        # An update the last step left due runs even after the last step, as it did inside it.
        if rev is None or journal.data.get("state") in (DUE, UPDATE):
            config = True  # the revision read or changed: the server is told
        rev = _update(app, journal, folder, rev, more)
        if not more:
            return EXIT_OK
        if rev is None:
            sleep_ms(cfg["poll_min_s"] * 1000)  # the modem did not answer: not at once again
        for name in _ENGINE:
            release(name)
        gc.collect()
        # A new transport after the update phase: an update reboots the modem, which
        # drops the PDP context and the HTTP settings a transport set (found against the
        # simulator: the result's POST after the upgrade failed with 708, HTTP(S) network
        # not configured). The download phase goes on with the poll phase's.
        transport = _transport(app)
        try:
            k, hand = _poll(
                app, transport, journal, folder, controller, token, rev,
                None if polls is None else polls - n, config,
            )  # fmt: skip
            n += k
            config = False
            for name in _POLL:
                release(name)
            gc.collect()
            if hand is not None and not _download(app, transport, journal, folder, rev, hand):
                sleep_ms(cfg["poll_min_s"] * 1000)  # a failed download: not at once again
        except FotaError as e:
            app.say("failed: %s" % e)
            return EXIT_FAILED
        hand = transport = None
        for name in _HTTP:
            release(name)
        gc.collect()
