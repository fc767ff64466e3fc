"""A sans-I/O model of a Quectel EC200T (EC200S, EG912Y) for FOTA tests.

No threads, sockets, sleeps or clock reads: every call takes ``now_ms`` (monotonic int
milliseconds) and the model does what is due by then. It runs unchanged on CPython and on
MicroPython 1.29 (only ``hashlib`` and ``binascii``, plain classes).

    m = Modem(revision=..., new_revision=..., expect_md5=None, faults=(), baud=115200,
              timing=None, seed=0, voltage_mv=3900, imei=None)  # imei: AT+CGSN
    m.write(data, now_ms) -> int     host -> modem; how many bytes it took
    m.room(now_ms) -> int            how many it would take now
    m.read(now_ms) -> bytes          modem -> host bytes due by now
    m.next_due_ms(now_ms)            when it next has something to do (None: nothing)
    m.room_due_ms(now_ms, n)         when room() reaches n, or all it can reach (None: stalled)
    m.take_fetch() / m.fetch_done(code, data, now_ms)   URL modes: the driver fetches

Line and flow model
- Hardware flow control on (``AT+IFC=2,2`` or ``AT+QCFG="usbifc",2,2``): a token bucket
  filled at ``baud/10`` bytes/s (``baud=0``: no limit), capped at ``fc_buffer`` bytes
  (default: 50 ms of line rate, at least 1 KiB). ``write`` takes at most ``room()``.
- Off: ``write`` takes everything into a receive buffer of ``rx_buffer`` bytes (1 KiB)
  drained at ``rx_drain_bps`` (15 KiB/s, NOR flash); what does not fit is lost
  (``m.overflow_bytes``). In FILE mode a loss ends in ``FILEEND,500``.
- Flow control is off again after a reboot unless ``AT&W`` saved it; echo is always on
  again after a reboot; so is ``AT+CMEE=0``. Bytes from the host while the module reboots
  are dropped, and so are bytes that arrive while it upgrades (from *END,0 to END, RDY
  excepted in upgrade_mode 0); ``m.dropped`` counts. During a URL-mode download commands
  work (AT+QFOTADL answers ERROR until the update is over).

FILE mode: ``OK``, ``FILESTART`` after ``filestart_ms``; bytes before it are lost
(``m.image_bytes_before_filestart``). Exactly <length> bytes are taken, DOWNLOADING k of N
when k/N of them arrived, ``FILEEND,0``, md5 check against ``expect_md5`` (None: accept;
``upgrades={revision: (next, md5)}`` sets both from the revision it runs: a delta chain),
then for upgrade_mode 1: START, UPDATING 1..up, END,0, reboot; for upgrade_mode 0: reboot,
RDY + boot URCs, START, UPDATING, END,0, reboot again. A failed END (504/506) does not
reboot; the revision stays. If the line is quiet for ``download_idle_ms`` with fewer than
<length> bytes: ``FILEEND,500``. ``"FILE:<len>",2`` answers ``010003`` (EC200T only) and
then ignores input until the line is quiet for ``download_idle_ms``.

URL modes: ``OK``, FTPSTART/HTTPSTART after ``url_start_ms``; then ``m.fetch_request``
holds the URL until the driver calls ``fetch_done(code, data, now_ms)``; then DOWNLOADING
every ``dl_step_ms``, FTPEND/HTTPEnd with the code, and the upgrade as in FILE mode. If the
``AT+QFOTA="fota/cid"`` context is not active (``AT+QIACT=<cid>``) when the download
starts: ``HTTPEND,708`` (HTTP(S) network not configured) or ``FTPEND,605`` (Network error).
``AT+QIACT=<cid>`` on an active context answers ERROR (as Quectel modules do); a host
checks ``AT+QIACT?`` first. A reboot deactivates every context.

Errors: unknown commands answer ``ERROR``; bad parameters ``ERROR``, or ``+CME ERROR: 50``
after ``AT+CMEE=1`` or ``2`` (numeric in both); AT+QFOTADL while an update runs and
AT+QIACT on an active context: ``ERROR`` / ``+CME ERROR: 3``.

URC shapes (``quirks=True``, chosen from ``seed``): ``"FOTA", "X"`` or ``"FOTA","X"``,
``" DOWNLOADING"``, ``, 99``, ``HTTPEnd``/``HTTPEND``, UPDATING lines in bootloader
framing (no leading CRLF, doubled trailing CRLF), ``APP RDY`` after boot or not, and
non-FOTA URCs (``+CREG: 1``, ``+QIND: "csq",20,99`` ...) every ~``noise_ms`` and now and
then between the lines of a response. ``noise_ms=0`` turns the noise off.

Faults (``faults=(...)``, combinable; ``FAULTS`` holds them as rows, with what an update
ends in, for the CLI, the soak, the end-to-end tests and docs/FAULTS.md):
- ``qfotadl-error``: every write form of AT+QFOTADL answers ``ERROR``.
- ``cme-error``: AT+QFOTADL answers ``+CME ERROR: 3`` (operation not allowed), whatever AT+CMEE is.
- ``no-filestart``: ``OK``, then no FILESTART ever; package bytes are counted as lost; the
  module takes commands again once the line has been quiet for ``download_idle_ms``.
- ``fileend-500``: all bytes arrive, then ``FILEEND,500``; no START.
- ``end-504``: START, UPDATING up to half of <update_URC_max>, ``END,504``; no reboot.
- ``end-506``: START, then ``END,506`` (as if the md5 differed); no UPDATING, no reboot.
- ``reset-mid-transfer``: the module resets once at half the package (URL modes: halfway
  through the DOWNLOADING URCs): silence, RDY, boot URCs; no *END; ``outcome == "RESET"``.
- ``silent-after-reboot``: after END,0 it reboots and never says anything again.
- ``garbage``: non-UTF-8 bytes and 3000-5000 character lines among the noise URCs.
- ``no-start``: FILEEND/FTPEND/HTTPEND 0, then no START ever; commands work again.
- ``stall``: with flow control on, ``room()`` drops to 0 for good at half the package
  (without it, the rest is lost); no FILEEND, nothing more from the transfer.
- ``incomplete-urc``: once, right after FILESTART/FTPSTART/HTTPSTART, the cut line
  ``+QIND: "FOTA","DOWNLOA`` (ended by the next line's CRLF); the update goes on.
- ``pdp-inactive``: URL modes: the network drops the fota/cid context as the download
  starts: ``+QIURC: "pdpdeact",<cid>``, then ``HTTPEND,708`` / ``FTPEND,605``.
- ``no-qgmr``: AT+QGMR answers ``ERROR``; ATI still gives the revision.
- ``dead``: never says anything at all (a port with no modem behind it).
- ``http-7xx``: given as ``http-717`` (any of 701-730; ``http-7xx`` itself means 717): the
  first HTTP request ends ``+QHTTPGET: 717`` (``+QHTTPPOST: ...``); nothing is sent.
- ``http-no-answer``: the first HTTP request is never answered: ``+QHTTPGET: 728`` after
  ``<rsp_s>``; nothing is sent.
- ``http-short-read``: the first download's QHTTPREAD (a 206, or a body over 4 KiB) stops at
  half the body: ``OK``, ``+QHTTPREAD: 717``.
- ``reset-mid-download``: the module resets halfway through the first download's QHTTPREAD
  body (once): silence, RDY, boot URCs; ``outcome == "RESET"``.
The HTTP faults hit once each; the requests after work.

Profiles (``profile=``): ``"default"`` answers the commands above the way Quectel modules
do. ``"note"`` answers only what the Application Note documents and ``ERROR`` to
anything else, for proving a host depends on nothing more:
- ``AT`` (the command prefix itself) and ``ATI`` (chapter 2.1: the source revision);
- ``AT+QFOTADL=?`` and every write form of ``AT+QFOTADL`` (chapter 3.2.1);
- ``AT+IFC=2,2`` (3.2.1.3, step 2);
- ``AT+QCFG="usbifc",2,2`` and its read ``AT+QCFG="usbifc"`` (3.2.1.3, example);
- ``AT+QICSGP=<cid>,1,"<apn>","","",1``, ``AT+QFOTA="fota/cid",<cid>`` and
  ``AT+QIACT=<cid>``, write forms only (3.2.1.1/3.2.1.2 examples).
Everything else answers ``ERROR``: ``ATE0`` (echo stays on), ``AT+QGMR``, ``AT+CBC``, ``AT+CSQ``,
``AT+CMEE``, ``AT&W``, ``AT+IFC=0,0``, ``AT+QIACT?``, the read forms of ``AT+QICSGP`` and
``AT+QFOTA``... ``AT+QIACT=<cid>`` on an active context answers ``ERROR`` in both.

HTTP(S) AT commands (Quectel's HTTP(S) manual, not the note; docs/FIELD.md, "HTTP AT
commands"): ``AT+QHTTPCFG="contextid"|"requestheader"|"responseheader"|"contenttype"|
"sslctxid"[,<n>]``; ``AT+QHTTPURL=<len>[,<input_s>]`` -> CONNECT -> exactly <len> bytes ->
OK (not a plain printable http(s) URL: ``+CME ERROR: 711``; fewer bytes in time: 726);
``AT+QHTTPGET=<rsp_s>`` (requestheader 0: the modem builds the GET) or
``AT+QHTTPGET=<rsp_s>,<len>[,<input_s>]`` (requestheader 1: CONNECT, the host's whole
request) and ``AT+QHTTPPOST=<len>,<input_s>,<rsp_s>`` (the body, or with requestheader 1 the
whole request, a PUT too) -> OK, later ``+QHTTPGET: <err>[,<status>[,<length>]]`` (no length:
chunked or close-delimited); ``AT+QHTTPREAD[=<wait_s>]`` -> CONNECT, [status line and
headers with responseheader 1], the body at the line rate (held while 4 KiB are unread with
flow control on), ``OK``, ``+QHTTPREAD: <err>``. The request goes out through the driver:
``m.take_http()`` / ``m.http_done(id, result, now_ms)`` (``net.py`` does it on a socket);
``m.http_log`` counts each request's bytes up and down. Immediate failures answer ``+CME
ERROR: <err>`` whatever AT+CMEE: 703 busy, 705 nothing to read, 712 no URL, 730 a
``<data_len>`` that does not go with requestheader. The context (``"contextid"``) must be
active (``AT+QIACT``), else ``+QHTTPGET: 708``. Which <err> a real EC200T/S gives in each
of these cases, and for each network failure (``net.py``), is UNVERIFIED: these are the
simulator's picks by the meanings of the note's Table 3. A reboot restores the settings' defaults and
forgets the URL and the answer. ``custom_header`` and ``AT+QHTTPPUT`` (UNVERIFIED on
EC200T/S) answer ``ERROR`` in both profiles; ``"note"`` answers the others (they are
Quectel's documented commands, not the note's, and a FOTA host may use them).

``m.outcome`` is the last terminal event: ``"FILEEND 500"``, ``"HTTPEND 708"``,
``"FTPEND 625"``, ``"END 0"``, ``"END 506"``, ``"RESET"`` (reset-mid-transfer). ``m.history``
lists what happened in clean form (``"FILESTART"``, ``"DOWNLOADING 3"``, ``"REBOOT"``...).
"""

import binascii
import hashlib

# Faults, one self-describing row each: (name, what the modem does (``qfota sim --fault
# list``), what a FILE-mode update ends in, what a URL-mode one ends in). An outcome is
# None (the update succeeds, the image intact) or (stages, code, exit status, text of
# the last line); SAME: as in FILE mode; in a URL outcome "{START}"/"{END}" stand for
# FTPSTART/HTTPSTART, FTPEND/HTTPEND and the code "{PDP}" for 605/708. The model acts on
# them where it checks ``name in self.faults``. The soak (devtools/soak.py), the
# end-to-end table (tests/test_e2e.py) and docs/FAULTS.md read these rows; a test fails
# when one of them drifts from them (tests/test_faults.py).
SAME = "same"
_RESET = "the modem rebooted (RDY) during the download"
# fmt: off
FAULTS = (
    ("qfotadl-error", "AT+QFOTADL (any write form) answers ERROR",
     (("QFOTADL",), None, 1, "modem answered ERROR"), SAME),
    ("cme-error", "AT+QFOTADL (any write form) answers +CME ERROR: 3, whatever AT+CMEE says",
     (("QFOTADL",), None, 1, "+CME ERROR: 3"), SAME),
    ("no-filestart", "OK but never FILESTART; bytes are lost; back to commands after quiet",
     (("FILESTART",), None, 4, 'no +QIND: "FOTA","FILESTART"'), None),
    ("fileend-500", "all bytes arrive, then FILEEND,500; no START",
     (("FILEEND",), 500, 3, "500: File download error"), None),
    ("end-504", "START, UPDATING up to half, END,504; no reboot, old revision",
     (("END",), 504, 3, "504: FOTA upgrade failed"), SAME),
    ("end-506", "START, END,506 at once (as if the md5 differed); no reboot",
     (("END",), 506, 3, "506: FOTA firmware MD5 check error"), SAME),
    # STREAM, or FILEEND when the pty had taken the last byte before the modem reset.
    ("reset-mid-transfer", "module resets (once) at half the package: silence, RDY, boot URCs",
     (("STREAM", "FILEEND"), None, 1, _RESET), (("{START}", "{END}"), None, 1, _RESET)),
    ("silent-after-reboot", "never says anything after the final reboot (after END,0)",
     (("REBOOT",), None, 4, "did not answer AT after its reboot"), SAME),
    ("garbage", "non-UTF-8 bytes and very long lines among the URCs now and then",
     None, SAME),
    ("no-start", "FILEEND/FTPEND/HTTPEND 0, then never START; back to commands",
     (("START",), None, 4, 'no +QIND: "FOTA","START"'), SAME),
    ("stall", "flow on: room() becomes 0 forever at half the package, nothing more",
     (("STREAM",), None, 4, "took no byte"), None),
    ("incomplete-urc", 'prints a truncated +QIND: "FOTA","DOWNLOA once after *START',
     None, SAME),
    ("pdp-inactive", 'URL modes: +QIURC: "pdpdeact",<cid>, then HTTPEND 708 / FTPEND 605',
     None, (("{END}",), "{PDP}", 3, "")),
    ("no-qgmr", "AT+QGMR answers ERROR (ATI still works)",
     None, SAME),
    ("dead", "never says anything at all: a port with no modem behind it",
     (("PREFLIGHT",), None, 4, "the modem did not answer AT"), SAME),
    # The modem's HTTP AT commands (each hits once; see _http_* below); an update (FILE
    # or URL mode) never uses them: no effect on it.
    ("http-7xx", "as http-717 (any 701-730): the first HTTP request ends +QHTTPGET/POST: 7xx",
     None, SAME),
    ("http-no-answer", "the first HTTP request gets no answer: +QHTTPGET/POST: 728 after rsp_s",
     None, SAME),
    ("http-short-read", "the first download's QHTTPREAD body stops at half: +QHTTPREAD: 717",
     None, SAME),
    ("reset-mid-download", "the module resets (once) halfway through a download's QHTTPREAD body",
     None, SAME),
)
# fmt: on
FAULT_NAMES = tuple(f[0] for f in FAULTS)


def fault_known(name):
    """Whether ``name`` is a fault: a FAULTS row, or ``http-7NN`` (701-730) of "http-7xx"."""
    return name in FAULT_NAMES or _http_fault_code((name,)) is not None


def _http_fault_code(faults):
    """(name, <err>) of an ``http-7NN`` fault among ``faults`` (None: none); "http-7xx": 717."""
    for f in faults:
        if f == "http-7xx":
            return f, 717
        if f[:5] == "http-" and f[5:].isdigit() and 701 <= int(f[5:]) <= 730:
            return f, int(f[5:])
    return None


def fault_outcome(name, source="file"):
    """What an update with fault ``name`` ends in, the package from ``source`` ("file",
    "http" or "ftp"): None (success) or (stages, code, exit status, text)."""
    row = FAULTS[FAULT_NAMES.index(name)]
    want = row[2] if source == "file" or row[3] == SAME else row[3]
    if want is None or source == "file":
        return want
    word = source.upper()
    stages = tuple(x.format(START=word + "START", END=word + "END") for x in want[0])
    code = want[1] if want[1] != "{PDP}" else (605 if source == "ftp" else 708)
    return stages, code, want[2], want[3]


PROFILES = ("default", "note")

# Delays in ms: realistic values, and a FAST preset for tests and the demo.
REAL = {
    "cmd_ms": 20,  # command -> response
    "filestart_ms": 800,  # OK -> FILESTART
    "url_start_ms": 500,  # OK -> FTPSTART/HTTPSTART
    "download_idle_ms": 5000,  # quiet line with bytes missing -> FILEEND,500
    "fileend_ms": 300,  # last byte -> FILEEND (also fetch failure -> *END)
    "dl_step_ms": 100,  # URL modes: between DOWNLOADING URCs
    "start_ms": 2000,  # *END,0 or boot -> START
    "update_step_ms": 600,  # between UPDATING URCs (100 of them: a minute)
    "end_ms": 1000,  # last UPDATING -> END
    "reboot_delay_ms": 1000,  # END (or FILEEND in mode 0) -> reset
    "reboot_ms": 8000,  # silence before RDY
    "boot_urc_ms": 300,  # between boot URCs
    "pdp_ms": 1500,  # AT+QIACT=<cid> -> OK
    "noise_ms": 20000,  # mean interval of non-FOTA URCs (0: none)
}
FAST = {
    "cmd_ms": 1,
    "filestart_ms": 20,
    "url_start_ms": 10,
    # A quiet line this long ends a FILE transfer with FILEEND,500: well above any pause
    # a loaded 2-core machine puts between two writes of the host (0.5 s was seen).
    "download_idle_ms": 2500,
    "fileend_ms": 5,
    "dl_step_ms": 2,
    "start_ms": 20,
    "update_step_ms": 3,
    "end_ms": 10,
    "reboot_delay_ms": 10,
    "reboot_ms": 60,
    "boot_urc_ms": 3,
    "pdp_ms": 20,
    "noise_ms": 150,
}

# The engine's waits (``qfota update --timeout NAME=S``) for runs against FAST: short, and
# well above its delays on a loaded 2-core machine. One list for the end-to-end tests and
# the soak; URL_WAITS only matter to URL updates.
FILE_WAITS = {
    "probe": 3,
    "command": 2,
    "filestart": 1.5,
    "fileend": 2,
    "start": 2,
    "progress": 2,
    "end": 3,
    "reboot": 1.5,
    "settle": 2,
    "stall": 1,
}
URL_WAITS = {"pdp": 2, "dlstart": 2, "download": 5}


def wait_args(*waits):
    """``--timeout NAME=S`` options for the wait tables given (e.g. FILE_WAITS)."""
    return [a for w in waits for k, v in w.items() for a in ("--timeout", "%s=%g" % (k, v))]


def wait_ms(waits):
    """A wait table (e.g. FILE_WAITS) as the engine's ``timeouts``: ``{"NAME_ms": ms}``."""
    return {k + "_ms": int(v * 1000) for k, v in waits.items()}


_BIG = 1 << 30
_BOOT = ("+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE")
_NOISE = (
    "+CREG: 1",
    "+CGREG: 1",
    "+CEREG: 1",
    '+QIND: "csq",20,99',
    '+QIND: "csq",18,99',
    '+QIND: "act","LTE"',
    '+CTZE: "+32",0,"2024/05/01,10:00:00"',
)

# States
CMD = "cmd"  # AT commands
OFF = "off"  # rebooting: silent, input dropped
DEAD = "dead"  # silent-after-reboot, or the "dead" fault
PREFILE = "prefile"  # after AT+QFOTADL="FILE:..": waiting for FILESTART, bytes lost
FILE = "file"  # taking the package
BUSY = "busy"  # downloading (URL) or upgrading: input dropped
PROTO = "proto"  # protocol-download mode (010003): input ignored
DATA = "data"  # after CONNECT of QHTTPURL/QHTTPGET/QHTTPPOST: taking <len> bytes of data
HREAD = "hread"  # sending a QHTTPREAD body: input dropped, no URC in between

# The modem's HTTP(S) AT commands (Quectel's HTTP(S) manual; FLEET_NOTES): AT+QHTTPCFG
# settings with their ranges and defaults (a reboot restores the defaults).
_HTTP_CFG = {
    "contextid": (1, 15, 1),
    "requestheader": (0, 1, 0),
    "responseheader": (0, 1, 0),
    "contenttype": (0, 4, 0),
    "sslctxid": (0, 5, 1),
}
_CONTENT_TYPES = (
    "application/x-www-form-urlencoded",
    "text/plain",
    "application/octet-stream",
    "multipart/form-data",
    "application/json",
)
_HTTP_SLACK_MS = 2000  # the driver's own bound is <rsp_s>: this is only a backstop
_HTTP_DOWNLOAD = 4096  # a 206 or a body over this is "a download" for the HTTP faults
_HTTP_LOG_MAX = 4096  # http_log keeps the last this many requests (a simulator may run for days)
_HTTP_STEP_MS = 10  # a QHTTPREAD body goes out in slices of 10 ms of line rate
_HTTP_HOLD = 4096  # ... and waits while this much output is still unread (RTS)


def _args(s):
    """Split AT arguments on commas outside quotes: [(value, quoted), ...]."""
    out = []
    cur = ""
    inq = False
    quoted = False
    for ch in s:
        if ch == '"':
            inq = not inq
            quoted = True
        elif ch == "," and not inq:
            out.append((cur if quoted else cur.strip(), quoted))
            cur = ""
            quoted = False
        else:
            cur += ch
    if inq:
        raise ValueError("unbalanced quotes")
    out.append((cur if quoted else cur.strip(), quoted))
    return out


def _int(v, lo, hi):
    """Parse an unquoted integer in [lo, hi], else raise ValueError."""
    if v[1] or not v[0].isdigit():
        raise ValueError(v[0])
    n = int(v[0])
    if n < lo or n > hi:
        raise ValueError(v[0])
    return n


def _note_documented(body):
    """Whether ``AT<body>`` is a command form the Application Note documents."""
    ub = body.upper()
    if ub in ("", "I"):
        return True
    try:
        if ub == "+QFOTADL=?":
            return True
        if ub.startswith("+QFOTADL="):
            return True  # every write form; the command checks its own arguments
        if ub.startswith("+IFC="):
            return [a[0] for a in _args(body[5:])] == ["2", "2"]
        if ub.startswith("+QCFG="):
            args = _args(body[6:])
            vals = [(a[0].lower(), a[1]) for a in args]
            return vals in ([("usbifc", True)], [("usbifc", True), ("2", False), ("2", False)])
        if ub.startswith("+QICSGP="):
            a = _args(body[8:])
            return (
                len(a) == 6
                and not a[0][1]
                and a[0][0].isdigit()
                and a[1] == ("1", False)
                and a[2][1]
                and a[3] == ("", True)
                and a[4] == ("", True)
                and a[5] == ("1", False)
            )
        if ub.startswith("+QFOTA="):
            a = _args(body[7:])
            return len(a) == 2 and a[0] == ("fota/cid", True) and a[1][0].isdigit()
        if ub.startswith("+QIACT="):
            a = _args(body[7:])
            return len(a) == 1 and not a[0][1] and a[0][0].isdigit()
        if ub.startswith("+QHTTP"):
            # Not the note's: Quectel's documented HTTP(S) commands, which a FOTA host may
            # use to talk to its server; custom_header and QHTTPPUT are UNVERIFIED on
            # EC200T/S, so a host proven here must do without them.
            if ub.startswith("+QHTTPCFG="):
                return _args(body[10:])[0][0].lower() != "custom_header"
            return ub.split("=")[0] in ("+QHTTPURL", "+QHTTPGET", "+QHTTPPOST", "+QHTTPREAD")
    except ValueError:
        return False
    return False


def _urc_max(v):
    n = _int(v, 0, 100)
    if 0 < n < 5:
        raise ValueError(v[0])
    return n


def imei_of(seed):
    """A 15-digit IMEI for ``seed`` (a made-up TAC, the Luhn check digit last): modems
    of different seeds are different devices."""
    body = "8675310%07d" % (seed % 10000000)
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


# The revisions a simulated modem runs before and after an update, unless told otherwise.
REVISION = "EC200TCNDAR02A07M16_01.001.01.001"
NEW_REVISION = "EC200TCNDAR02A08M16_01.001.01.001"


class Modem:
    def __init__(
        self,
        revision=REVISION,
        new_revision=NEW_REVISION,
        expect_md5=None,
        faults=(),
        baud=115200,
        timing=None,
        seed=0,
        voltage_mv=3900,
        quirks=True,
        rx_buffer=1024,
        rx_drain_bps=15360,
        fc_buffer=None,
        keep_received=True,
        profile="default",
        http_max=16 << 20,
        upgrades=None,
        imei=None,
    ):
        if profile not in PROFILES:
            raise ValueError("unknown profile: %s" % profile)
        self.profile = profile
        for f in faults:
            if not fault_known(f):
                raise ValueError("unknown fault: %s" % f)
        self.t = dict(REAL)
        if timing:
            for k in timing:
                if k not in REAL:
                    raise ValueError("unknown timing key: %s" % k)
                self.t[k] = timing[k]
        self.revision = revision
        self.new_revision = new_revision
        if imei is None:
            imei = imei_of(seed)
        if len(imei) != 15 or not imei.isdigit():
            raise ValueError("imei must be 15 digits: %r" % imei)
        self.imei = imei  # AT+CGSN
        self.expect_md5 = expect_md5.lower() if expect_md5 else None
        # A delta chain: {revision: (next revision, md5 of its package)}; the modem takes
        # the package for the revision it runs (new_revision and expect_md5 follow it).
        self.upgrades = dict(upgrades or {})
        self._aim()
        self.faults = tuple(faults)
        self.baud = baud
        self.voltage_mv = voltage_mv
        self.rssi = 20  # AT+CSQ: <rssi> 0-31, 99 not known
        self.quirks = quirks
        self.rx_buffer = rx_buffer
        self.rx_drain_bps = rx_drain_bps
        self.fc_buffer = fc_buffer
        self.keep_received = keep_received
        self._x = ((seed * 2654435761) ^ 0x9E3779B9) & 0xFFFFFFFF or 1
        # Inspectable state
        self.flow_hw = False
        self.echo = True
        self.cmee = 0
        self.commands = []
        self.history = []
        self.received = bytearray()
        self.received_md5 = None
        self.fotadl = None
        self.reboots = 0
        self.outcome = None
        self.updates_completed = 0
        self.image_bytes_before_filestart = 0
        self.overflow_bytes = 0
        self.dropped = 0
        self.fetch_request = None
        self.contexts = {}  # cid -> [type, apn, user, pwd, auth]
        self.active = {}  # cid -> ip
        self.fota_cid = 1
        # Internals
        self._app_rdy = (not quirks) or (self._rand() & 1) == 1
        self._flow_saved = False
        self._state = DEAD if "dead" in self.faults else CMD
        self._out = bytearray()
        self._line = bytearray()
        self._sched = []  # [due, seq, life, fn, arg], sorted by (due, seq)
        self._seq = 0
        self._life = 0
        self._started = False
        self._resp_t = 0
        self._fc_credit = 0  # milli-bytes
        self._fc_t = 0
        self._rx_level = 0  # milli-bytes
        self._rx_t = 0
        self._stalled = False
        self._fota_active = False
        self._fetch_taken = False
        self._incomplete_done = False
        self._garbage_done = False
        self._complete_on_boot = False
        self._reset_done = False
        self._last_rx = 0
        self._job = {}
        self._md5 = hashlib.md5()
        self._got = 0
        self._lost = 0
        self._dl_sent = 0
        # HTTP(S) AT commands
        self.http_max = http_max  # the largest response body the modem keeps
        self.http_cfg = {}
        self.http_url = None
        self.http_request = None  # for the driver: {"id", "url", "data", "rsp_s", ...}
        self.http_log = []  # per request: method, path, up, down (bytes), status, err
        self._http_reset()
        self._http_id = 0
        self._http_hit = []  # the once-only HTTP faults already done

    # ---- public API -----------------------------------------------------------------
    def write(self, data, now_ms):
        """Host -> modem. Returns how many bytes it took now."""
        self._advance(now_ms)
        n = len(data)
        if n == 0:
            return 0
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data)
        if self.flow_hw:
            take = min(n, self._fc_room(now_ms))
            if take <= 0:
                return 0
            if take < n:
                data = data[:take]
            if self.baud > 0:
                self._fc_credit -= take * 1000
            self._feed(data, now_ms)
            return take
        # No flow control: a small FIFO drained at rx_drain_bps; what overflows is lost.
        free = self._rx_free(now_ms)
        take = n if n < free else free
        self._rx_level += take * 1000
        if take:
            self._feed(data if take == n else data[:take], now_ms)
        if take < n:
            self._overflow(n - take)
        return n

    def room(self, now_ms):
        """Bytes ``write`` would take now."""
        self._advance(now_ms)
        if not self.flow_hw:
            return _BIG
        return self._fc_room(now_ms)

    def room_due_ms(self, now_ms, n=1):
        """When ``room()`` reaches ``min(n, capacity, what the stall fault leaves)``;
        None if never (stalled)."""
        self._advance(now_ms)
        if not self.flow_hw or self.baud <= 0:
            return now_ms
        room = self._fc_room(now_ms)
        if self._stalled:
            return None
        n = min(n, self._fc_cap())
        left = self._stall_left()
        if left is not None and left < n:
            n = left
        if room >= n:
            return now_ms
        need = n * 1000 - self._fc_credit
        bps = self.baud // 10
        return now_ms + (need + bps - 1) // bps

    def read(self, now_ms):
        """Modem -> host bytes due by now. A driver that does not call it holds the modem's
        output, as RTS does: a QHTTPREAD body waits while 4 KiB of output are unread."""
        self._advance(now_ms)
        if not self._out:
            return b""
        out = bytes(self._out)
        self._out = bytearray()
        return out

    def next_due_ms(self, now_ms):
        """When the model next has something to do or say (None: nothing planned)."""
        self._advance(now_ms)
        if self._out:
            return now_ms
        if self._sched:
            return self._sched[0][0]
        return None

    def take_fetch(self):
        """URL modes: the URL to fetch, once (None when nothing new is requested)."""
        if self.fetch_request is not None and not self._fetch_taken:
            self._fetch_taken = True
            return self.fetch_request
        return None

    def fetch_done(self, code, data, now_ms):
        """URL modes: the driver's fetch result: the note's code (0 = ok) and the bytes."""
        self._advance(now_ms)
        if self.fetch_request is None:
            return
        self.fetch_request = None
        self._fetch_taken = False
        job = self._job
        if code != 0 or data is None:
            self._at(now_ms + self.t["fileend_ms"], self._url_end, code or 701)
            return
        self._md5 = hashlib.md5()
        self._md5.update(data)
        self.received = bytearray(data) if self.keep_received else bytearray()
        self._got = len(data)
        step = self.t["dl_step_ms"]
        t = now_ms
        n = job["dl"]
        if "reset-mid-transfer" in self.faults:
            self._at(now_ms + step * (n // 2), self._reset_mid, None)
        for k in range(1, n + 1):
            t += step
            self._at(t, self._fota_say, ("DOWNLOADING", k))
        self._at(t + self.t["fileend_ms"], self._url_end, 0)

    def take_http(self):
        """HTTP AT commands: the request for the driver to send, once (None: nothing new).
        ``{"id", "url", "data", "rsp_s", "max"}``: ``data`` is the whole request (request
        line, headers, body) to write to a socket to the URL's host; ``max`` bounds the body."""
        req = self.http_request
        if req is not None and not self._http_taken:
            self._http_taken = True
            return req
        return None

    def http_done(self, rid, res, now_ms):
        """HTTP AT commands: the driver's result for request ``rid``: a dict with ``err``
        (0 or 701-730), ``status``, ``head`` (status line and headers as received), ``body``,
        ``length`` (Content-Length, None without one), ``body_err`` (0, or why the body
        ended short), ``up``/``down`` (bytes sent/received on the network)."""
        self._advance(now_ms)
        req = self._http_busy
        if req is None or req["id"] != rid:
            return  # too late: timed out, or the module reset meanwhile
        self.http_request = None
        self._http_finish(now_ms, req, res)

    def _aim(self):
        nxt = self.upgrades.get(self.revision)
        if nxt is not None:
            self.new_revision, md5 = nxt
            self.expect_md5 = md5.lower()

    @property
    def md5_ok(self):
        return self.expect_md5 is None or self.received_md5 == self.expect_md5

    @property
    def model(self):
        return self.revision[:6]

    @property
    def state(self):
        return self._state

    @property
    def package_bytes(self):
        """Bytes of the FILE transfer under way (or the last one) the modem has taken."""
        return self._got

    def go_silent(self):
        """From now on the modem answers nothing, as a dead module."""
        self._state = DEAD

    # ---- scheduling -----------------------------------------------------------------
    def _rand(self):
        x = self._x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._x = x
        return x

    def _pick(self, n):
        return self._rand() % n

    def _at(self, due, fn, arg, life=True):
        """Schedule ``fn(t, arg)`` at ``due``; life-bound events die with a reboot."""
        self._seq += 1
        item = (due, self._seq, self._life if life else None, fn, arg)
        s = self._sched
        i = len(s)
        while i > 0 and s[i - 1][0] > due:
            i -= 1
        s.insert(i, item)

    def _advance(self, now):
        if not self._started:
            self._started = True
            self._fc_t = self._rx_t = self._resp_t = self._last_rx = now
            self._fc_credit = self._fc_cap() * 1000
            if self.t["noise_ms"] > 0:
                self._at(now + self._noise_gap(), self._noise, None, False)
        s = self._sched
        while s and s[0][0] <= now:
            due, _seq, life, fn, arg = s.pop(0)
            if life is None or life == self._life:
                fn(due, arg)

    # ---- flow control -----------------------------------------------------------------
    def _fc_cap(self):
        if self.fc_buffer:
            return self.fc_buffer
        return max(1024, self.baud // 10 // 20)

    def _fc_room(self, now):
        if self._stalled:
            return 0
        if self.baud <= 0:
            room = _BIG
        else:
            cap = self._fc_cap() * 1000
            if now > self._fc_t:
                self._fc_credit = min(cap, self._fc_credit + (now - self._fc_t) * (self.baud // 10))
                self._fc_t = now
            room = self._fc_credit // 1000
        left = self._stall_left()
        if left is not None and left < room:
            room = left
        return room

    def _stall_left(self):
        """``stall``: bytes the model still takes before it stalls; None: no limit."""
        if "stall" not in self.faults or self._state != FILE:
            return None
        left = self._job["length"] // 2 - self._got
        if left <= 0:
            self._stalled = True
            self.history.append("STALL")
            return 0
        return left

    def _rx_free(self, now):
        if now > self._rx_t:
            self._rx_level = max(0, self._rx_level - (now - self._rx_t) * self.rx_drain_bps)
            self._rx_t = now
        return self.rx_buffer - (self._rx_level + 999) // 1000

    def _overflow(self, k):
        self.overflow_bytes += k
        if self._state == FILE:
            self._lost += k
            self._check_file_done(self._rx_t)

    # ---- output -------------------------------------------------------------------------
    def _emit(self, data):
        if self._state == DEAD:
            return
        self._out.extend(data)

    def _say(self, t, s):
        """Scheduled output of text that is already framed."""
        self._emit(s.encode())

    def _urc(self, s):
        self._emit(("\r\n" + s + "\r\n").encode())

    def _fota_text(self, word, num):
        q = self.quirks
        sep = ", " if q and self._pick(4) == 0 else ","
        label = word
        if word == "DOWNLOADING" and q and self._pick(8) == 0:
            label = " DOWNLOADING"
        elif word == "HTTPEND" and (not q or self._pick(2) == 0):
            label = "HTTPEnd"
        s = '+QIND: "FOTA"' + sep + '"' + label + '"'
        if num is not None:
            s += (", " if q and self._pick(6) == 0 else ",") + str(num)
        return s

    def _fota_say(self, t, what):
        word, num = what
        self.history.append(word if num is None else "%s %d" % (word, num))
        s = self._fota_text(word, num)
        if word == "UPDATING" and self._job and self._job.get("boot_framing"):
            self._emit((s + "\r\n\r\n").encode())
        else:
            self._urc(s)

    def _noise_text(self):
        return _NOISE[self._pick(len(_NOISE))]

    def _noise_gap(self):
        n = self.t["noise_ms"]
        return n // 2 + self._pick(n + 1)

    def _noise(self, t, _arg):
        if self._state not in (OFF, DEAD, DATA, HREAD) and not self._line:
            if "garbage" in self.faults and (not self._garbage_done or self._pick(2) == 0):
                self._garbage_done = True
                self._emit(self._garbage())
            else:
                self._urc(self._noise_text())
        self._at(t + self._noise_gap(), self._noise, None, False)

    def _garbage(self):
        if self._pick(2) == 0:
            b = bytearray(b"\r\n")
            for _ in range(8 + self._pick(32)):
                b.append(0x80 + self._pick(128))
            b.extend(b"\xff\xfe\r\n")
            return bytes(b)
        return b"\r\n" + b"#" * (3000 + self._pick(2000)) + b"\r\n"

    def _respond(self, t, lines, final="OK", delay=None):
        """Schedule a response: info lines then the final result code."""
        d = self.t["cmd_ms"] if delay is None else delay
        due = max(t, self._resp_t) + d
        self._resp_t = due
        chunks = []
        for i, line in enumerate(lines):
            chunks.append(("\r\n" if i == 0 else "") + line + "\r\n")
        if final:
            chunks.append("\r\n" + final + "\r\n")
        out = ""
        for i, c in enumerate(chunks):
            if i and self.quirks and self.t["noise_ms"] > 0 and self._pick(6) == 0:
                out += "\r\n" + self._noise_text() + "\r\n"
            out += c
        self._at(due, self._say, out)
        return due

    def _error(self, t, code=None):
        if self.cmee and code is not None:
            return self._respond(t, [], "+CME ERROR: %d" % code)
        return self._respond(t, [], "ERROR")

    # ---- input ----------------------------------------------------------------------------
    def _feed(self, data, t):
        i = 0
        n = len(data)
        while i < n:
            st = self._state
            if st == CMD:
                j = data.find(b"\r", i)
                end = n if j < 0 else j + 1
                if self.echo:
                    self._emit(data[i:end])
                if j < 0:
                    self._line.extend(data[i:end])
                    if len(self._line) > 4096:
                        self._line = bytearray()
                else:
                    self._line.extend(data[i:j])
                    line = bytes(self._line)
                    self._line = bytearray()
                    self._command(line, t)
                i = end
            elif st == FILE:
                i += self._take(data, i, t)
            elif st == DATA:
                i += self._take_data(data, i, t)
            elif st == PREFILE:
                self.image_bytes_before_filestart += n - i
                self._last_rx = t
                return
            else:
                if st == PROTO:
                    self._last_rx = t
                self.dropped += n - i
                return

    def _take(self, data, i, t):
        job = self._job
        k = min(job["length"] - self._got - self._lost, len(data) - i)
        if self._stalled:
            self._overflow(len(data) - i)
            return len(data) - i
        half = job["length"] // 2
        if "stall" in self.faults and self._got + k > half:
            k = max(0, half - self._got)
        reset = "reset-mid-transfer" in self.faults and not self._reset_done
        if reset and self._got + k >= half:
            k = half - self._got
        chunk = data[i : i + k]
        if self.keep_received:
            self.received.extend(chunk)
        self._md5.update(chunk)
        self._got += k
        self._last_rx = t
        if reset and self._got >= half:
            self._reset_mid(t, None)
            self.dropped += len(data) - i - k
            return len(data) - i
        if "stall" in self.faults and self._got >= half:
            self._stalled = True
            self.history.append("STALL")
            self._overflow(len(data) - i - k)
            return len(data) - i
        self._progress(t)
        self._check_file_done(t)
        return k

    def _progress(self, t):
        job = self._job
        n = job["dl"]
        while self._dl_sent < n and self._got * n >= (self._dl_sent + 1) * job["length"]:
            self._dl_sent += 1
            self._fota_say(t, ("DOWNLOADING", self._dl_sent))

    def _check_file_done(self, t):
        job = self._job
        if self._state != FILE or self._stalled or self._got + self._lost < job["length"]:
            return
        self._state = BUSY
        code = 500 if self._lost or "fileend-500" in self.faults else 0
        self._at(t + self.t["fileend_ms"], self._file_end, code)

    def _idle_check(self, t, _arg):
        if self._state not in (FILE, PREFILE, PROTO) or self._stalled:
            return
        due = self._last_rx + self.t["download_idle_ms"]
        if t < due:
            self._at(due, self._idle_check, None)
            return
        if self._state == FILE:
            self._file_end(t, 500)
        else:
            self._state = CMD
            self._fota_active = False

    # ---- commands -------------------------------------------------------------------------
    def _command(self, line, t):
        try:
            s = line.decode().strip()
        except UnicodeError:
            s = None
        if s is None:
            if line.strip()[:2].upper() == b"AT":
                self._respond(t, [], "ERROR")
            return
        if len(s) < 2 or s[:2].upper() != "AT":
            return  # no AT prefix: not a command line
        self.commands.append(s)
        body = s[2:]
        if self.profile == "note" and not _note_documented(body):
            return self._respond(t, [], "ERROR")
        ub = body.upper()
        if ub in ("", "&W", "V1", "Q0", "&F", "Z", "E", "E0", "E1", "I", "I0"):
            if ub in ("E", "E0"):
                self.echo = False
            elif ub == "E1":
                self.echo = True
            elif ub == "&W":
                self._flow_saved = self.flow_hw
            elif ub in ("I", "I0"):
                rev = self.revision.split("_")[0]
                return self._respond(t, ["Quectel", self.model, "Revision: " + rev])
            return self._respond(t, [])
        if not ub.startswith("+"):
            return self._respond(t, [], "ERROR")
        k = 1
        while k < len(ub) and ub[k] not in "=?":
            k += 1
        name = ub[1:k]
        rest = body[k:]
        if rest == "":
            form = "exec"
        elif rest == "?":
            form = "read"
        elif rest == "=?":
            form = "test"
        elif rest[0] == "=":
            form = "write"
        else:
            return self._respond(t, [], "ERROR")
        fn = getattr(self, "_c_" + name, None)
        if fn is None:
            return self._respond(t, [], "ERROR")
        try:
            args = _args(rest[1:]) if form == "write" else []
            fn(t, form, args)
        except ValueError:
            self._error(t, 50)

    def _c_CGSN(self, t, form, args):
        if form not in ("exec", "test"):
            raise ValueError
        self._respond(t, [] if form == "test" else [self.imei])

    def _c_QGMR(self, t, form, args):
        if form != "exec" or "no-qgmr" in self.faults:
            return self._respond(t, [], "ERROR")
        self._respond(t, [self.revision])

    def _c_GMR(self, t, form, args):
        if form != "exec":
            raise ValueError
        self._respond(t, [self.revision.split("_")[0]])

    def _c_CGMR(self, t, form, args):
        self._c_GMR(t, form, args)

    def _c_IFC(self, t, form, args):
        v = 2 if self.flow_hw else 0
        if form == "read":
            return self._respond(t, ["+IFC: %d,%d" % (v, v)])
        if form == "test":
            return self._respond(t, ["+IFC: (0,2),(0,2)"])
        if form != "write" or len(args) != 2:
            raise ValueError
        a = _int(args[0], 0, 2)
        b = _int(args[1], 0, 2)
        if a == 1 or b == 1:
            raise ValueError
        self.flow_hw = a == 2 and b == 2
        self._respond(t, [])

    def _c_QCFG(self, t, form, args):
        if form != "write" or not args or args[0][0].lower() != "usbifc":
            raise ValueError
        if len(args) == 1:
            v = 2 if self.flow_hw else 0
            return self._respond(t, ['+QCFG: "usbifc",%d,%d' % (v, v)])
        self._c_IFC(t, form, args[1:])

    def _c_CBC(self, t, form, args):
        if form != "exec":
            raise ValueError
        pct = max(0, min(100, (self.voltage_mv - 3300) * 100 // 900))
        self._respond(t, ["+CBC: 0,%d,%d" % (pct, self.voltage_mv)])

    def _c_CMEE(self, t, form, args):
        if form == "read":
            return self._respond(t, ["+CMEE: %d" % self.cmee])
        if form == "test":
            return self._respond(t, ["+CMEE: (0-2)"])
        if form != "write" or len(args) != 1:
            raise ValueError
        self.cmee = _int(args[0], 0, 2)
        self._respond(t, [])

    def _c_IPR(self, t, form, args):
        if form == "read":
            return self._respond(t, ["+IPR: %d" % self.baud])
        if form != "write":
            raise ValueError
        self.baud = _int(args[0], 0, 4000000)
        self._respond(t, [])

    def _c_CSQ(self, t, form, args):
        self._respond(t, ["+CSQ: %d,99" % self.rssi])

    def _c_CPIN(self, t, form, args):
        self._respond(t, ["+CPIN: READY"])

    def _c_CFUN(self, t, form, args):
        self._respond(t, ["+CFUN: 1"] if form == "read" else [])

    def _c_CREG(self, t, form, args):
        self._respond(t, ["+CREG: 0,1"] if form == "read" else [])

    def _c_CEREG(self, t, form, args):
        self._respond(t, ["+CEREG: 0,1"] if form == "read" else [])

    def _c_QICSGP(self, t, form, args):
        if form == "test":
            return self._respond(t, ['+QICSGP: (1-15),(1-3),"APN","USERNAME","PASSWORD",(0-3)'])
        if form != "write":
            raise ValueError
        cid = _int(args[0], 1, 15)
        ctx = self.contexts.get(cid) or [1, "", "", "", 0]
        if len(args) == 1:
            line = '+QICSGP: %d,"%s","%s","%s",%d' % tuple(ctx)
            return self._respond(t, [line])
        if len(args) not in (3, 5, 6):
            raise ValueError
        new = [_int(args[1], 1, 3), args[2][0], "", "", 0]
        if len(args) >= 5:
            new[2] = args[3][0]
            new[3] = args[4][0]
        if len(args) == 6:
            new[4] = _int(args[5], 0, 3)
        self.contexts[cid] = new
        self._respond(t, [])

    def _c_QFOTA(self, t, form, args):
        if form != "write" or args[0][0].lower() != "fota/cid" or len(args) > 2:
            raise ValueError
        if len(args) == 1:
            return self._respond(t, ['+QFOTA: "fota/cid",%d' % self.fota_cid])
        self.fota_cid = _int(args[1], 1, 15)
        self._respond(t, [])

    def _c_QIACT(self, t, form, args):
        if form == "test":
            return self._respond(t, ["+QIACT: (1-15)"])
        if form == "read":
            lines = []
            for cid in sorted(self.active):
                typ = (self.contexts.get(cid) or [1])[0]
                lines.append('+QIACT: %d,1,%d,"%s"' % (cid, typ, self.active[cid]))
            return self._respond(t, lines)
        if form != "write" or len(args) != 1:
            raise ValueError
        cid = _int(args[0], 1, 15)
        if cid in self.active:
            return self._error(t, 3)  # already active: "operation not allowed"
        due = self._respond(t, [], delay=self.t["pdp_ms"])
        ip = "10.%d.%d.%d" % (self._pick(256), self._pick(256), 2 + self._pick(250))
        self._at(due, self._activate, (cid, ip))

    def _activate(self, t, arg):
        self.active[arg[0]] = arg[1]

    def _c_QIDEACT(self, t, form, args):
        if form != "write" or len(args) != 1:
            raise ValueError
        self.active.pop(_int(args[0], 1, 15), None)
        self._respond(t, [])

    def _c_QFOTADL(self, t, form, args):
        if form == "test":
            return self._respond(t, ["+QFOTADL: <url>,(0,1),(0,5-100),(0,5-100)"])
        if form != "write" or not args[0][1] or len(args) > 4:
            raise ValueError
        url = args[0][0]
        if len(url.encode()) > 255:
            raise ValueError
        low = url.lower()
        if low.startswith("file:"):
            length = _int((url[5:], False), 1, 0x7FFFFFFF)
            kind = "FILE"
        elif low.startswith("ftp://"):
            length, kind = None, "FTP"
        elif low.startswith("http://") or low.startswith("https://"):
            length, kind = None, "HTTP"
        else:
            raise ValueError
        proto = kind == "FILE" and len(args) == 2 and args[1] == ("2", False)
        job = {"url": url, "kind": kind, "length": length, "mode": 2}
        if proto:
            if self.model != "EC200T":
                raise ValueError
        else:
            job["mode"] = _int(args[1], 0, 1) if len(args) > 1 else 1
            job["dl"] = _urc_max(args[2]) if len(args) > 2 else 0
            job["up"] = _urc_max(args[3]) if len(args) > 3 else 100
        self.fotadl = job
        if "qfotadl-error" in self.faults:
            return self._respond(t, [], "ERROR")
        if "cme-error" in self.faults:
            return self._respond(t, [], "+CME ERROR: 3")
        if self._fota_active:
            return self._error(t, 3)
        if proto:
            return self._proto(t)
        self._fota_active = True
        self._job = dict(job)
        self._job["boot_framing"] = self.quirks and self._pick(2) == 0
        self._got = self._lost = self._dl_sent = 0
        self._md5 = hashlib.md5()
        self.received = bytearray()
        self.received_md5 = None
        self.outcome = None
        self._incomplete_done = False
        due = self._respond(t, [])
        if kind == "FILE":
            self.image_bytes_before_filestart = 0
            self._state = PREFILE
            self._last_rx = t
            if "no-filestart" in self.faults:
                self._at(t + self.t["download_idle_ms"], self._idle_check, None)
            else:
                self._at(due + self.t["filestart_ms"], self._file_start, None)
        else:  # URL modes: the module downloads over the air; commands still work
            self._at(due + self.t["url_start_ms"], self._url_start, None)

    def _proto(self, t):
        self._state = PROTO
        self._fota_active = True
        self._last_rx = t
        self._respond(t, [], "010003")
        self._at(t + self.t["download_idle_ms"], self._idle_check, None)

    # ---- FOTA flow ----------------------------------------------------------------------
    def _incomplete(self):
        if "incomplete-urc" in self.faults and not self._incomplete_done:
            self._incomplete_done = True
            self.history.append("INCOMPLETE")
            self._emit(b'\r\n+QIND: "FOTA","DOWNLOA')

    def _file_start(self, t, _arg):
        if self._state != PREFILE:
            return
        self._fota_say(t, ("FILESTART", None))
        self._state = FILE
        self._last_rx = t
        self._incomplete()
        self._at(t + self.t["download_idle_ms"], self._idle_check, None)

    def _file_end(self, t, code):
        self._fota_say(t, ("FILEEND", code))
        self.outcome = "FILEEND %d" % code
        self._downloaded(t, code)

    def _url_start(self, t, _arg):
        job = self._job
        self._fota_say(t, (job["kind"] + "START", None))
        self._incomplete()
        cid = self.fota_cid
        if "pdp-inactive" in self.faults and cid in self.active:
            del self.active[cid]
            self._urc('+QIURC: "pdpdeact",%d' % cid)
        if cid not in self.active:
            code = 605 if job["kind"] == "FTP" else 708
            self._at(t + self.t["fileend_ms"], self._url_end, code)
            return
        self.fetch_request = job["url"]
        self._fetch_taken = False

    def _url_end(self, t, code):
        word = self._job["kind"] + "END"
        self._fota_say(t, (word, code))
        self.outcome = "%s %d" % (word, code)
        self._downloaded(t, code)

    def _downloaded(self, t, code):
        """After FILEEND/FTPEND/HTTPEND: the upgrade, or back to commands."""
        if code == 0:
            self.received_md5 = binascii.hexlify(self._md5.digest()).decode()
        if code != 0 or "no-start" in self.faults:
            self._state = CMD
            self._fota_active = False
            return
        self._state = BUSY
        if self._job["mode"] == 0:
            self._at(t + self.t["reboot_delay_ms"], self._reboot, ("start", False))
        else:
            self._at(t + self.t["start_ms"], self._update_start, None)

    def _update_start(self, t, _arg):
        self._state = BUSY
        self._fota_say(t, ("START", None))
        up = self._job["up"]
        if "end-506" in self.faults or not self.md5_ok:
            self._at(t + self.t["end_ms"], self._end, 506)
            return
        code = 0
        if "end-504" in self.faults:
            code = 504
            up = up // 2
        step = self.t["update_step_ms"]
        for k in range(1, up + 1):
            self._at(t + k * step, self._fota_say, ("UPDATING", k))
        self._at(t + up * step + self.t["end_ms"], self._end, code)

    def _end(self, t, code):
        self._fota_say(t, ("END", code))
        self.outcome = "END %d" % code
        self._fota_active = False
        if code != 0:
            self._state = CMD
            return
        self.revision = self.new_revision
        self._aim()
        self._complete_on_boot = True
        self._at(t + self.t["reboot_delay_ms"], self._reboot, (None, True))

    def _reset_mid(self, t, _arg):
        self._reset_done = True
        self.outcome = "RESET"
        self._fota_active = False
        self._reboot(t, (None, False))

    def _reboot(self, t, arg):
        """Reset: silence for reboot_ms, then RDY and boot URCs; ``arg`` = (then, final)."""
        self._life += 1
        self._state = OFF
        self.reboots += 1
        self.history.append("REBOOT")
        self.flow_hw = self._flow_saved
        self.echo = True
        self.cmee = 0
        self._line = bytearray()
        self.active = {}
        self.fetch_request = None
        self._stalled = False
        self._http_reset()
        self._at(t + self.t["reboot_ms"], self._boot, arg)

    def _boot(self, t, arg):
        then, final = arg
        if final and "silent-after-reboot" in self.faults:
            self._state = DEAD
            self.history.append("DEAD")
            return
        self._state = CMD
        self._resp_t = t
        self.history.append("RDY")
        self._urc("RDY")
        urcs = _BOOT + (("APP RDY",) if self._app_rdy else ())
        step = self.t["boot_urc_ms"]
        for i, s in enumerate(urcs):
            self._at(t + (i + 1) * step, self._say, "\r\n" + s + "\r\n")
        t_end = t + len(urcs) * step
        self._resp_t = t_end
        if then == "start":
            self._at(t_end + self.t["start_ms"], self._update_start, None)
        if self._complete_on_boot:
            self._complete_on_boot = False
            self._at(t_end, self._completed, None)

    def _completed(self, t, _arg):
        self.updates_completed += 1
        self.history.append("COMPLETED")

    # ---- HTTP(S) AT commands (docs/FIELD.md, "HTTP AT commands") ---------------------
    def _http_reset(self):
        """Power-on HTTP state: the settings' defaults, no URL, nothing in flight."""
        for k in _HTTP_CFG:
            self.http_cfg[k] = _HTTP_CFG[k][2]
        self.http_url = None
        self.http_request = None
        self._http_taken = False
        self._http_busy = None  # the request out on the network
        self._http_resp = None  # the answer QHTTPREAD gives
        self._data = None  # the CONNECT data phase under way
        if self._state in (DATA, HREAD):
            self._state = CMD

    def _cme(self, t, code):
        """The HTTP commands' immediate failures: ``+CME ERROR: <err>`` whatever AT+CMEE."""
        return self._respond(t, [], "+CME ERROR: %d" % code)

    def _http_once(self, name):
        if name in self.faults and name not in self._http_hit:
            self._http_hit.append(name)
            self.history.append(name.upper())
            return True
        return False

    def _c_QHTTPCFG(self, t, form, args):
        if form != "write" or not args[0][1] or len(args) > 2:
            raise ValueError
        name = args[0][0].lower()
        if name not in _HTTP_CFG:  # custom_header too: UNVERIFIED on EC200T/S
            return self._respond(t, [], "ERROR")
        if len(args) == 1:
            return self._respond(t, ['+QHTTPCFG: "%s",%d' % (name, self.http_cfg[name])])
        lo, hi, _ = _HTTP_CFG[name]
        self.http_cfg[name] = _int(args[1], lo, hi)
        self._respond(t, [])

    def _connect(self, t, n, input_s, then):
        """CONNECT, then take exactly ``n`` bytes for ``then(t, data)``; fewer within
        ``input_s``: +CME ERROR: 726 (input timeout)."""
        self._respond(t, [], "CONNECT")
        self._state = DATA
        self._data = {"need": n, "buf": bytearray(), "then": then}
        self._at(t + input_s * 1000, self._data_timeout, self._data)

    def _take_data(self, data, i, t):
        d = self._data
        k = min(d["need"] - len(d["buf"]), len(data) - i)
        d["buf"].extend(data[i : i + k])
        if len(d["buf"]) >= d["need"]:
            self._state = CMD
            self._data = None
            d["then"](t, bytes(d["buf"]))
        return k

    def _data_timeout(self, t, d):
        if self._data is d and self._state == DATA:
            self._state = CMD
            self._data = None
            self._cme(t, 726)

    def _c_QHTTPURL(self, t, form, args):
        if form == "read":
            return self._respond(t, ['+QHTTPURL: "%s"' % (self.http_url or "")])
        if form != "write" or len(args) > 2:
            raise ValueError
        n = _int(args[0], 1, 700)
        input_s = _int(args[1], 1, 65535) if len(args) > 1 else 60
        if self._http_busy:
            return self._cme(t, 703)
        self._connect(t, n, input_s, self._url_given)

    def _url_given(self, t, data):
        # Only a plain http(s) URL is one: what the host sent is data, never a command, and
        # a CR, LF, space or control byte would end up in the request line (711).
        ok = True
        for b in data:
            if b <= 0x20 or b >= 0x7F:
                ok = False
        url = data.decode() if ok else ""
        low = url.lower()
        host = url.split("://", 1)[1] if "://" in url else ""
        if not (low.startswith("http://") or low.startswith("https://")) or host[:1] in "/":
            self.http_url = None
            return self._cme(t, 711)
        self.http_url = url
        self._respond(t, [])

    def _http_ready(self, t):
        """Whether a request may start now; if not, the +CME ERROR is said."""
        if self._http_busy:
            self._cme(t, 703)
            return False
        if not self.http_url:
            self._cme(t, 712)
            return False
        return True

    def _c_QHTTPGET(self, t, form, args):
        if form != "write" or len(args) > 3:
            raise ValueError
        rsp_s = _int(args[0], 1, 65535)
        raw = self.http_cfg["requestheader"] == 1
        if raw != (len(args) > 1):  # <data_len> goes with requestheader 1 only
            return self._cme(t, 730)
        n = _int(args[1], 1, 65535) if raw else 0
        input_s = _int(args[2], 1, 65535) if len(args) > 2 else 60
        if not self._http_ready(t):
            return
        if raw:
            self._connect(t, n, input_s, lambda t2, d: self._http_send(t2, "+QHTTPGET", d, rsp_s))
        else:
            self._http_send(t, "+QHTTPGET", self._http_build("GET", None), rsp_s)

    def _c_QHTTPPOST(self, t, form, args):
        if form != "write" or len(args) != 3:
            raise ValueError
        n = _int(args[0], 1, 1 << 20)
        input_s = _int(args[1], 1, 65535)
        rsp_s = _int(args[2], 1, 65535)
        if not self._http_ready(t):
            return
        if self.http_cfg["requestheader"] == 1:
            self._connect(t, n, input_s, lambda t2, d: self._http_send(t2, "+QHTTPPOST", d, rsp_s))
        else:
            self._connect(
                t,
                n,
                input_s,
                lambda t2, d: self._http_send(t2, "+QHTTPPOST", self._http_build("POST", d), rsp_s),
            )

    def _url_parts(self):
        """(host[:port], path?query) of the URL set by AT+QHTTPURL."""
        rest = self.http_url.split("://", 1)[1]
        i = rest.find("/")
        if i < 0:
            return rest, "/"
        return rest[:i], rest[i:]

    def _http_build(self, method, body):
        """requestheader 0: the request the modem makes of the URL (and the body)."""
        host, target = self._url_parts()
        head = "%s %s HTTP/1.1\r\nHost: %s\r\nAccept: */*\r\nUser-Agent: QUECTEL_MODULE\r\n" % (
            method,
            target,
            host,
        )
        if body is not None:
            ct = _CONTENT_TYPES[self.http_cfg["contenttype"]]
            head += "Content-Type: %s\r\nContent-Length: %d\r\n" % (ct, len(body))
        return (head + "Connection: close\r\n\r\n").encode() + (body or b"")

    def _http_send(self, t, cmd, data, rsp_s):
        """OK, then the request goes out (the driver sends it); later ``<cmd>: <err>...``."""
        due = self._respond(t, [])
        line = data[: data.find(b"\r\n")] if b"\r\n" in data else data[:200]
        try:
            parts = line.decode().split(" ")
        except UnicodeError:
            parts = ["?"]
        self._http_id += 1
        req = {
            "id": self._http_id,
            "cmd": cmd,
            "method": parts[0],
            "path": parts[1].split("?")[0] if len(parts) > 1 else "",  # logged: no query
            "url": self.http_url,
            "data": data,
            "rsp_s": rsp_s,
            "max": self.http_max,
        }
        self._http_busy = req
        self._http_resp = None  # a new request drops the last answer
        fault = _http_fault_code(self.faults)
        if self.http_cfg["contextid"] not in self.active:
            self._at(due + self.t["cmd_ms"], self._http_fail, (req, 708))
        elif fault is not None and self._http_once(fault[0]):
            self._at(due + self.t["fileend_ms"], self._http_fail, (req, fault[1]))
        elif self._http_once("http-no-answer"):
            self._at(t + rsp_s * 1000, self._http_fail, (req, 728))
        else:  # out once the OK is said: its answer can never come before that OK
            self._at(due, self._http_out, req)
            self._at(due + rsp_s * 1000 + _HTTP_SLACK_MS, self._http_fail, (req, 728))

    def _http_out(self, t, req):
        if self._http_busy is req:
            self.http_request = req
            self._http_taken = False

    def _http_fail(self, t, arg):
        req, code = arg
        if self._http_busy is req:
            self.http_request = None
            self._http_finish(t, req, {"err": code})

    def _http_finish(self, t, req, res):
        self._http_busy = None
        err = res.get("err") or 0
        status = res.get("status")
        if len(self.http_log) >= _HTTP_LOG_MAX:
            del self.http_log[0]
        self.http_log.append(
            {
                "method": req["method"],
                "path": req["path"],
                "up": res.get("up", 0),
                "down": res.get("down", 0),
                "status": status if not err else None,
                "err": err,
            }
        )
        if err:
            line = "%s: %d" % (req["cmd"], err)
        else:
            self._http_resp = res
            line = "%s: 0,%d" % (req["cmd"], status)
            if res.get("length") is not None:
                line += ",%d" % res["length"]
        # after any response still due (a command answered meanwhile), never inside it
        self._at(max(t, self._resp_t), self._say, "\r\n" + line + "\r\n")

    def _c_QHTTPREAD(self, t, form, args):
        if form == "write":
            if len(args) != 1:
                raise ValueError
            _int(args[0], 1, 65535)  # <wait_s>: the body is all here when the answer is
        elif form != "exec":
            raise ValueError
        res = self._http_resp
        if res is None:
            return self._cme(t, 703 if self._http_busy else 705)
        self._http_resp = None  # read once
        body = res.get("body") or b""
        out = (res.get("head") or b"") if self.http_cfg["responseheader"] else b""
        end = len(body)
        err = res.get("body_err") or 0
        stop = None
        if res.get("status") == 206 or len(body) > _HTTP_DOWNLOAD:
            if self._http_once("http-short-read"):
                end, err = end // 2, 717
            elif self._http_once("reset-mid-download"):
                end, stop = end // 2, "reset"
        due = self._respond(t, [], "CONNECT")
        self._state = HREAD
        rd = {"data": out + body[:end], "off": 0, "err": err, "stop": stop}
        self._at(due, self._read_slice, rd)

    def _read_slice(self, t, rd):
        """Send the body at the line rate (as the modem's UART does), then the trailer."""
        data = rd["data"]
        n = len(data) if self.baud <= 0 else max(1, self.baud * _HTTP_STEP_MS // 10000)
        if self.flow_hw and len(self._out) >= _HTTP_HOLD:
            return self._at(t + _HTTP_STEP_MS, self._read_slice, rd)
        off = rd["off"]
        self._emit(data[off : off + n])
        rd["off"] = off + n
        if rd["off"] < len(data):
            self._at(t + _HTTP_STEP_MS, self._read_slice, rd)
            return
        if rd["stop"] == "reset":
            self.outcome = "RESET"
            return self._reboot(t, (None, False))
        self._state = CMD
        self._resp_t = max(self._resp_t, t)
        self._emit(b"\r\nOK\r\n")
        self._urc("+QHTTPREAD: %d" % rd["err"])
