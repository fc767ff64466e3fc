"""qfota's one exception type, its kinds, and password redaction.

>>> from qfota.errors import FotaError, meaning
>>> meaning(506)
'FOTA firmware MD5 check error'
>>> str(FotaError("FILEEND", 500))
'FILEEND: 500: File download error'
"""


def meaning(code, stage=None):
    """The note's meaning of ``code`` (``qfota.codes``, loaded on first use)."""
    from qfota.codes import meaning as _meaning

    return _meaning(code, stage)


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
        # The authority ends at the first '/', quote or space (not at a comma: a password
        # may hold one, and '@'); the last '@' before that ends the password.
        stop = len(tail)
        for ch in '/" ':
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
