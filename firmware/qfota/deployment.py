"""A hawkBit DDI ``deploymentBase`` answer read into the small ``info`` dict of
``qfota.ddi``'s ``("deployment", info)`` event. Its own module, loaded by the client for
that answer and released after (on MicroPython code is heap): a device holds it only
while an offer is read, not while it polls.
"""

from qfota.action import dict_at, href, link_ok, shape
from qfota.compat import const

NAME_MAX = const(64)  # longest artifact file name
MODES = ("forced", "attempt", "skip")
WINDOWS = (None, "available", "unavailable")
HASHES = (("sha256", 64), ("sha1", 40), ("md5", 32))  # strongest first


def name_ok(name):
    """A plain file name: letters, digits, ``.-_+``, not starting with a dot."""
    if not isinstance(name, str) or not 0 < len(name) <= NAME_MAX or name[0] == ".":
        return False
    for ch in name:
        if not (ch.isalpha() or ch.isdigit() or ch in ".-_+") or ord(ch) > 126:
            return False
    return True


def _hex(text):
    for ch in text:
        if ch not in "0123456789abcdefABCDEF":
            return False
    return True


def read(d, aid):
    """The ``info`` of the answer ``d`` (a dict) for action ``aid``; ValueError when it
    is not shaped as hawkBit's documentation shows or does not name one plain artifact
    with a plain http(s) link."""
    if d.get("id") != aid:
        raise shape("id differs from the link's")
    dep = dict_at(d, "deployment", "deployment")
    info = {"id": aid}
    for key in ("download", "update"):
        v = dep.get(key)
        if v not in MODES:
            raise shape("deployment." + key)
        info[key] = v
    w = dep.get("maintenanceWindow")
    if w not in WINDOWS:
        raise shape("deployment.maintenanceWindow")
    info["window"] = w
    chunks = dep.get("chunks")
    if not isinstance(chunks, list):
        raise shape("deployment.chunks")
    found = None
    count = 0
    for ch in chunks:
        arts = ch.get("artifacts") if isinstance(ch, dict) else None
        if not isinstance(arts, list):
            raise shape("chunks[].artifacts")
        for a in arts:
            count += 1
            found = (ch, a)
    if count != 1 or found is None:
        raise ValueError("%d artifacts; one (the modem's package) expected" % count)
    ch, a = found
    if not isinstance(a, dict):
        raise shape("artifact")
    for key in ("name", "version"):
        v = ch.get(key)
        info[key] = v[:NAME_MAX] if isinstance(v, str) else None
    name = a.get("filename")
    if not name_ok(name):
        raise ValueError("artifact file name missing or not a plain name")
    info["filename"] = name
    size = a.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise shape("artifact.size")
    info["size"] = size
    hashes = a.get("hashes") or {}
    if not isinstance(hashes, dict):
        raise shape("artifact.hashes")
    info["hashes"] = got = []
    for alg, n in HASHES:
        h = hashes.get(alg)
        if h is None:
            continue
        if not isinstance(h, str) or len(h) != n or not _hex(h):
            raise ValueError("artifact %s is not %d hex digits" % (alg, n))
        got.append((alg, h.lower()))
    links = a.get("_links") or {}
    if not isinstance(links, dict):
        raise shape("artifact._links")
    for key, name in (("link", "download"), ("link_http", "download-http")):
        link = href(links, name)
        if link is not None and not link_ok(link):
            raise ValueError("the %s link is not a plain http(s) URL" % name)
        info[key] = link
    if info["link"] is None and info["link_http"] is None:
        raise ValueError("the artifact has no download link")
    return info
