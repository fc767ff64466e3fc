"""The modem's HTTP AT commands (qfota.httpat, qfota.httpdrv), on CPython and on the real
MicroPython interpreter."""

import httpat_cases
import pytest
from conftest import micropython_cases


@pytest.mark.parametrize("case", httpat_cases.CASES)
def test_cpython(case):
    getattr(httpat_cases, case)()


@pytest.mark.parametrize("case", httpat_cases.CASES)
def test_micropython(case, micropython):
    results = micropython_cases("httpat_cases")
    assert case in results, (
        "case did not run on MicroPython:\n" + results["__stderr__"] + results["__stdout__"]
    )
    assert results[case] == "ok", results[case]


def test_every_phase_of_a_request_names_its_timeout():
    # A phase added to the core without its word in _WHERE would make a timeout in it an
    # IndexError instead of the stated failure (qfota.httptail.timed_out reads the name).
    from qfota import httpat

    phases = [v for k, v in vars(httpat).items() if k in ("_CMD_SENT", "_DATA_SENT", "_AWAIT",
              "_BODY", "_OPEN", "_TAIL", "_LF")]  # fmt: skip
    assert sorted(phases) == list(range(len(httpat._WHERE)))
    assert httpat._WHERE[httpat._BODY] == "body" and httpat._WHERE[httpat._OPEN] == "open"
    assert httpat._WHERE[httpat._TAIL] == "tail" and httpat._WHERE[httpat._AWAIT] == "await"
