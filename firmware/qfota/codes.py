"""The Application Note's error codes (chapter 4) and their meanings.

Loaded only when a code is to be named (``qfota.errors.meaning``): the tables cost
RAM on a small heap and most updates never need them.

>>> meaning(506)
'FOTA firmware MD5 check error'
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
    # Seen in Quectel's DFOTA guides, not in this note's tables (docs/FIELD.md,
    # "Error codes beyond the note").
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
