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
