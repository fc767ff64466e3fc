"""Error codes of the Application Note, chapter 4, and qfota's one exception type.

>>> from qfota.errors import FotaError, meaning
>>> meaning(506)
'FOTA firmware MD5 check error'
>>> str(FotaError("FILEEND", 500))
'FILEEND: 500: File download error'
"""

# Table 2: <FTP_err>
_FTP = (
    "FTP unknown error",  # 601
    "FTP service blocked",
    "FTP service busy",
    "DNS parse failed",
    "Network error",
    "Control connection closed",
    "Data connection closed",
    "Socket closed by peer",
    "Timeout error",
    "Invalid parameter",  # 610
    "Failed to open file",
    "File position invalid",
    "File error",
    "Service not available, closing control connection",
    "Failed to open data connection",
    "Connection closed, transfer aborted",
    "Requested file action not taken",
    "Requested action aborted: local error in processing",
    "Requested action not taken: insufficient system storage",
    "Syntax error, command unrecognized",  # 620
    "Syntax error in parameters or arguments",
    "Command not implemented",
    "Bad sequence of commands",
    "Command parameter not implemented",
    "Failed to login FTP",
    "Need account for storing files",
    "Requested action not taken",
    "Requested action aborted: page type unknown",
    "Requested file action aborted",
    "Requested file name invalid",  # 630
)

# Table 3: <HTTP_err>
_HTTP = (
    "HTTP(S) unknown error",  # 701
    "HTTP(S) timeout",
    "HTTP(S) busy",
    "HTTP(S) UART busy",
    "HTTP(S) does not get/post request",
    "HTTP(S) network busy",
    "HTTP(S) network open failed",
    "HTTP(S) network not configured",
    "HTTP(S) network deactivated",
    "HTTP(S) network error",  # 710
    "HTTP(S) URL error",
    "HTTP(S) URL empty",
    "HTTP(S) IP address error",
    "HTTP(S) DNS error",
    "HTTP(S) socket creation error",
    "HTTP(S) socket connection error",
    "HTTP(S) socket read error",
    "HTTP(S) socket write error",
    "HTTP(S) socket closed",
    "HTTP(S) data encode error",  # 720
    "HTTP(S) data decode error",
    "HTTP(S) read timeout",
    "HTTP(S) response failed",
    "Incoming call busy",
    "Voice call busy",
    "Input timeout",
    "Wait data timeout",
    "Wait HTTP(S) response timeout",
    "Allocate memory failed",
    "Invalid parameter",  # 730
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


def meaning(code, stage=None):
    """The note's meaning of ``code``; unknown codes are named by number."""
    if code is None:
        return ""
    if code == 0:
        return _SUCCESS.get(stage, "success")
    if 601 <= code <= 630:
        return _FTP[code - 601]
    if 701 <= code <= 730:
        return _HTTP[code - 701]
    text = _OTHER.get(code)
    if text is not None:
        return text
    return "unknown error code %d (not in the Application Note)" % code


def all_codes():
    """Every code of the note's chapter 4 (for tests and docs)."""
    codes = list(range(601, 631)) + list(range(701, 731)) + [500, 504, 506]
    return codes


class FotaError(Exception):
    """The one exception qfota raises: where it stopped, the code, and why.

    ``stage`` is the note's own word for the step (``FILESTART``, ``FILEEND``,
    ``END``, ...) or qfota's (``PARAMS``, ``PREFLIGHT``, ``STREAM``, ``REBOOT``).
    ``code`` is the modem's numeric code when it gave one, else ``None``.
    ``detail`` says the rest (a timeout, a refusal, what the modem printed).
    """

    def __init__(self, stage, code=None, detail=None):
        super().__init__(stage, code, detail)
        self.stage = stage
        self.code = code
        self.detail = detail

    @property
    def meaning(self):
        return meaning(self.code, self.stage)

    @property
    def timeout(self):
        return self.detail is not None and self.detail.startswith("timeout")

    def __str__(self):
        parts = [self.stage]
        if self.code is not None:
            parts.append("%d: %s" % (self.code, self.meaning))
        if self.detail:
            parts.append(self.detail)
        return ": ".join(parts)
