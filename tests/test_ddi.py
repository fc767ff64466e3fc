"""The DDI client, SWU reader and server-mode cases, on CPython and on the real
MicroPython interpreter."""

import json

import ddi_cases
import pytest
from conftest import micropython_cases
from hypothesis import given, settings
from hypothesis import strategies as st

from qfota import ddi, deployment


@pytest.mark.parametrize("case", ddi_cases.CASES)
def test_cpython(case):
    getattr(ddi_cases, case)()


@pytest.mark.parametrize("case", ddi_cases.CASES)
def test_micropython(case, micropython):
    results = micropython_cases("ddi_cases")
    assert case in results, (
        "case did not run on MicroPython:\n" + results["__stderr__"] + results["__stdout__"]
    )
    assert results[case] == "ok", results[case]


# ---- property: whatever a server answers, the core states it or takes it, never raises

_KEYS = st.sampled_from(
    "config polling sleep _links deploymentBase cancelAction configData href id deployment "
    "download update chunks artifacts filename size hashes sha256 sha1 md5 download-http "
    "maintenanceWindow stopId version name".split()
)
_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-5, 1 << 40)
    | st.sampled_from(["forced", "attempt", "skip", "available", "unavailable", "7", "00:00:09"])
    | st.sampled_from([ddi_cases.BASE + "/deploymentBase/7", ddi_cases.BASE + "/cancelAction/7"])
    | st.text(max_size=12)
)
_JSON = st.recursive(
    _LEAF,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(_KEYS | st.text(max_size=4), c, max_size=6),
    max_leaves=40,
)


def _client_at(kind):
    c = ddi.Client(ddi_cases.SERVER, "DEFAULT", "dev1", now=0)
    if kind == ddi.POLL:
        c.next_request(0)
        return c
    link = {"href": ddi_cases.BASE + ("/%s/7" % kind)}
    c.next_request(0)
    c.response(200, json.dumps({"_links": {kind: link}}).encode(), 0)
    assert c.next_request(0)[1] == link["href"]
    return c


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from([ddi.POLL, ddi.DEPLOYMENT, ddi.CANCEL]),
    doc=_JSON,
    raw=st.one_of(st.none(), st.binary(max_size=64)),
    status=st.sampled_from([200, 200, 204, 404, 409, 500]),
)
def test_any_answer_is_stated_or_taken(kind, doc, raw, status):
    c = _client_at(kind)
    body = raw if raw is not None else json.dumps(doc).encode()
    c.response(status, body, 0)
    while True:
        ev = c.next_event()
        if ev is None:
            break
        assert ev[0] in ("failed", "deployment", "cancel", "config", "idle"), ev
        if ev[0] == "deployment":
            info = ev[1]
            assert ddi.id_ok(info["id"]) and deployment.name_ok(info["filename"])
            assert isinstance(info["size"], int) and info["size"] > 0
            for link in (info["link"], info["link_http"]):
                assert link is None or ddi.link_ok(link)
        if ev[0] == "cancel":
            assert ddi.id_ok(ev[1]) and ddi.id_ok(ev[2])
    for now in (0, ddi.RETRY_MS, ddi.SLEEP_MAX + 1):
        req = c.next_request(now)
        if req is not None:
            assert ddi.link_ok(req[1]) and req[1].startswith(c.base), req
            c.response(404, b"", now)
