"""The checks of what a user gives a session and a driver: everything is refused here,
before a byte goes to the modem, as ``FotaError`` with stage PARAMS (``errors.refuse``).

Loaded by ``Session()`` and released once it has checked (``compat.release``): none of
this is needed while the package streams, and on MicroPython its code is heap. The
driver's few checks (chunk, pacing, the image file) stay in ``qfota.driver``: loading
this module once per update, not three times, keeps a small heap less fragmented.
"""

from qfota.defaults import APN_MAX, CID_MAX, TIMEOUT_MAX_MS, TIMEOUTS
from qfota.errors import refuse

REVISION_MAX = 80  # characters of a revision name (--expect-source, --target)


def check_params(upgrade_mode, download_urcs, update_urcs):
    """The note's ranges: upgrade_mode 0|1, URC max values 0 or 5-100."""
    if upgrade_mode not in (0, 1):
        raise refuse("PARAMS", "upgrade_mode must be 0 or 1, not %r" % (upgrade_mode,))
    for name, v in (("download_URC_max", download_urcs), ("update_URC_max", update_urcs)):
        if not isinstance(v, int) or not (v == 0 or 5 <= v <= 100):
            raise refuse("PARAMS", "%s must be 0 or 5-100, not %r" % (name, v))


def bad_char(text, extra=""):
    """The first character of ``text`` that must not stand inside an AT command, described;
    None when there is none. CR/LF would end the command line, a quote the string."""
    for ch in text:
        o = ord(ch)
        if ch == "\r":
            return "a carriage return (CR)"
        if ch == "\n":
            return "a line feed (LF)"
        if ch == '"':
            return "a double quote"
        if o < 32 or o == 127:
            return "a control character (0x%02x)" % o
        if o > 126:
            return "a non-ASCII character"
        if ch in extra:
            return "a %r" % ch
    return None


def check_text(name, value, limit):
    """Refuses a string that is to stand inside an AT command unless it is printable
    ASCII without quotes, at most ``limit`` bytes: nothing a user types may end the
    command line or start another (``x\\rATI``)."""
    if not isinstance(value, str):
        raise refuse("PARAMS", "%s must be text" % name)
    bad = bad_char(value)
    if bad:
        raise refuse("PARAMS", "%s holds %s" % (name, bad))
    if len(value) > limit:
        raise refuse("PARAMS", "%s is longer than %d characters" % (name, limit))


def check_timeouts(timeouts):
    """``{name: ms}`` with known names and 0 < ms <= a day; returns the whole table."""
    out = dict(TIMEOUTS)
    for k, v in (timeouts or {}).items():
        if k not in TIMEOUTS:
            raise refuse("PARAMS", "unknown timeout %r (names: %s)" % (k, ", ".join(TIMEOUTS)))
        if not isinstance(v, int) or not 0 < v <= TIMEOUT_MAX_MS:
            raise refuse(
                "PARAMS", "timeout %s must be 1-%d ms, not %r" % (k[:-3], TIMEOUT_MAX_MS, v)
            )
        out[k] = v
    return out


def session_options(s, length, url, cid, apn, timeouts, protocol_download, job):
    """Checks the options of Session ``s`` (its note parameters and revisions are set
    already) for ``job``: "update", "recover" or "info". Returns ``(scheme, timeouts)``."""
    scheme = "file"
    if job == "update" and (length is None) == (url is None):
        raise refuse("PARAMS", "give either an image length or a URL")
    if length is not None and (not isinstance(length, int) or length <= 0):
        raise refuse("PARAMS", "image length must be > 0, not %r" % (length,))
    if url is not None:
        from qfota.urls import check_url  # URL mode only: not loaded for FILE mode

        scheme = check_url(url)[0]
        if scheme == "https":
            scheme = "http"
    if protocol_download:
        raise refuse(
            "PARAMS",
            'protocol-download file mode ("FILE:<length>",2) is not supported: '
            "its framing is not published by the vendor",
        )
    check_params(s.upgrade_mode, s.download_urcs, s.update_urcs)
    if cid is not None and not (isinstance(cid, int) and 1 <= cid <= CID_MAX):
        raise refuse("PARAMS", "cid must be 1-%d, not %r" % (CID_MAX, cid))
    if apn is not None:
        check_text("APN", apn, APN_MAX)
    for name, rev in (("expected source revision", s.expect_source), ("target", s.target)):
        if rev is not None:
            check_text(name, rev, REVISION_MAX)
    return scheme, check_timeouts(timeouts)
