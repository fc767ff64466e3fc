"""Error codes of the Application Note, chapter 4, and qfota's one exception type.

>>> from qfota.errors import FotaError, meaning
>>> meaning(506)
'FOTA firmware MD5 check error'
>>> str(FotaError("FILEEND", 500))
'FILEEND: 500: File download error'
"""

# Table 2: <FTP_err>
_FTP = (  # one string, not 30 objects: this table lives in RAM on the unix port
    "FTP unknown error\n"
    "FTP service blocked\n"
    "FTP service busy\n"
    "DNS parse failed\n"
    "Network error\n"
    "Control connection closed\n"
    "Data connection closed\n"
    "Socket closed by peer\n"
    "Timeout error\n"
    "Invalid parameter\n"
    "Failed to open file\n"
    "File position invalid\n"
    "File error\n"
    "Service not available, closing control connection\n"
    "Failed to open data connection\n"
    "Connection closed, transfer aborted\n"
    "Requested file action not taken\n"
    "Requested action aborted: local error in processing\n"
    "Requested action not taken: insufficient system storage\n"
    "Syntax error, command unrecognized\n"
    "Syntax error in parameters or arguments\n"
    "Command not implemented\n"
    "Bad sequence of commands\n"
    "Command parameter not implemented\n"
    "Failed to login FTP\n"
    "Need account for storing files\n"
    "Requested action not taken\n"
    "Requested action aborted: page type unknown\n"
    "Requested file action aborted\n"
    "Requested file name invalid\n"
)

# Table 3: <HTTP_err>
_HTTP = (  # one string, not 30 objects: this table lives in RAM on the unix port
    "HTTP(S) unknown error\n"
    "HTTP(S) timeout\n"
    "HTTP(S) busy\n"
    "HTTP(S) UART busy\n"
    "HTTP(S) does not get/post request\n"
    "HTTP(S) network busy\n"
    "HTTP(S) network open failed\n"
    "HTTP(S) network not configured\n"
    "HTTP(S) network deactivated\n"
    "HTTP(S) network error\n"
    "HTTP(S) URL error\n"
    "HTTP(S) URL empty\n"
    "HTTP(S) IP address error\n"
    "HTTP(S) DNS error\n"
    "HTTP(S) socket creation error\n"
    "HTTP(S) socket connection error\n"
    "HTTP(S) socket read error\n"
    "HTTP(S) socket write error\n"
    "HTTP(S) socket closed\n"
    "HTTP(S) data encode error\n"
    "HTTP(S) data decode error\n"
    "HTTP(S) read timeout\n"
    "HTTP(S) response failed\n"
    "Incoming call busy\n"
    "Voice call busy\n"
    "Input timeout\n"
    "Wait data timeout\n"
    "Wait HTTP(S) response timeout\n"
    "Allocate memory failed\n"
    "Invalid parameter\n"
)

# Table 4: <file_err> and Table 5: <err>; the 50x codes share one number space.
_OTHER = {
    500: "File download error",
    504: "FOTA upgrade failed",
    506: "FOTA firmware MD5 check error",
    # Seen in Quectel's DFOTA guides (FIELD_NOTES), not in this note's tables.
    505: "FOTA package verification error (DFOTA guides; the module may retry)",
    507: "FOTA package verification error (DFOTA guides; the module may retry)",
    552: "FOTA error 552 (DFOTA guides)",
    553: "FOTA error 553 (DFOTA guides)",
}

# Success text per table, for the 0 code of each stage's URC.
_SUCCESS = {
    "FTPEND": "FTP download operation successful",
    "HTTPEND": "HTTP(S) download operation successful",
    "FILEEND": "File download operation successful",
    "END": "FOTA upgrade successful",
}


def _line(table, i):
    start = 0
    for _ in range(i):
        start = table.index("\n", start) + 1
    return table[start : table.index("\n", start)]


def meaning(code, stage=None):
    """The note's meaning of ``code``; unknown codes are named by number."""
    if code is None:
        return ""
    if code == 0:
        return _SUCCESS.get(stage or "", "success")
    if 601 <= code <= 630:
        return _line(_FTP, code - 601)
    if 701 <= code <= 730:
        return _line(_HTTP, code - 701)
    text = _OTHER.get(code)
    if text is not None:
        return text
    return "unknown error code %d (not in the Application Note)" % code


# Kinds of failure; each has its exit status (``qfota`` and the app return it).
REFUSED = "refused"  # bad input or a gate said no: nothing reached the modem's FOTA
FAILED = "failed"  # stopped for another stated reason
MODEM = "modem"  # the modem reported an error code
TIMEOUT = "timeout"  # a wait ran out
INTERRUPTED = "interrupted"  # the user (or a signal) stopped it

EXIT = {REFUSED: 2, FAILED: 1, MODEM: 3, TIMEOUT: 4, INTERRUPTED: 130}


class FotaError(Exception):
    """The one exception qfota raises: where it stopped, the code, why, and what kind.

    ``stage`` is the note's own word for the step (``FILESTART``, ``FILEEND``,
    ``END``, ...) or qfota's (``PARAMS``, ``PREFLIGHT``, ``STREAM``, ``REBOOT``).
    ``code`` is the modem's numeric code when it gave one, else ``None``.
    ``detail`` says the rest (a timeout, a refusal, what the modem printed).
    ``kind`` is one of REFUSED, FAILED, MODEM, TIMEOUT, INTERRUPTED; by default MODEM
    when there is a code, REFUSED for the PARAMS stage, else FAILED. ``exit_status``
    follows from it.
    """

    def __init__(self, stage, code=None, detail=None, kind=None):
        super().__init__(stage, code, detail)
        self.stage = stage
        self.code = code
        self.detail = detail
        if kind is None:
            kind = MODEM if code is not None else REFUSED if stage == "PARAMS" else FAILED
        self.kind = kind

    @property
    def meaning(self):
        return meaning(self.code, self.stage)

    @property
    def exit_status(self):
        return EXIT[self.kind]

    def __str__(self):
        parts = [self.stage]
        if self.code is not None:
            parts.append("%d: %s" % (self.code, self.meaning))
        if self.detail:
            parts.append(self.detail)
        return ": ".join(parts)


def refuse(stage, detail):
    """A ``FotaError`` of kind REFUSED (bad input: nothing sent)."""
    return FotaError(stage, None, detail, REFUSED)


def redact(text):
    """``text`` with the password of every ``scheme://user:password@`` replaced by ``***``."""
    if text is None:
        return None
    out = ""
    rest = text
    while True:
        i = rest.find("://")
        if i < 0:
            return out + rest
        head = rest[: i + 3]
        tail = rest[i + 3 :]
        # The authority ends at the first '/', quote or space; a password may hold '@'.
        stop = len(tail)
        for ch in '/" ,':
            k = tail.find(ch)
            if 0 <= k < stop:
                stop = k
        at = tail.rfind("@", 0, stop)
        colon = tail.find(":", 0, at) if at > 0 else -1
        if colon >= 0:
            out += head + tail[: colon + 1] + "***"
            rest = tail[at:]
        else:
            out += head
            rest = tail
