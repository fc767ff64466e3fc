"""The DDI client, SWU reader and server-mode cases, on CPython and on the real
MicroPython interpreter."""

import ddi_cases
import pytest
from conftest import micropython_cases


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
