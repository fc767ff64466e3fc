"""``--runtime micropython``: the engine runs in a MicroPython child (``qfota.relay``) and
the CLI reports what it relays. What the CLI does when the child does not finish its
side: it ends without a result line, or it says something that is not the protocol."""

import json
import os
import stat

from qfota_tools.commands import update
from qfota_tools.commands.update import run_micropython


def fake_micropython(tmp_path, monkeypatch, body):
    """A stand-in for the interpreter: a shell script that prints ``body`` and exits."""
    script = tmp_path / "micropython"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(update, "micropython_binary", lambda: str(script))
    return script


def run(tmp_path, monkeypatch, body, **opts):
    fake_micropython(tmp_path, monkeypatch, body)
    image = tmp_path / "fw.bin"
    image.write_bytes(b"\x5a" * 1000)
    lines = []
    base = {"command": "update", "port": "/dev/null", "baud": 115200, "image": str(image)}
    base.update(opts)
    status = run_micropython(base, out=lines.append)
    return status, lines


def test_a_child_that_ends_without_a_result_is_a_stated_failure(tmp_path, monkeypatch):
    status, lines = run(
        tmp_path,
        monkeypatch,
        "echo 'E [1, \"PREFLIGHT\", null]'\n"
        "echo 'Traceback (most recent call last):'\n"
        "echo 'MemoryError: memory allocation failed, allocating 96 bytes'\n"
        "exit 3\n",
    )
    assert status == 1, lines
    assert lines[-1] == (
        "qfota: failed: PREFLIGHT: the MicroPython process ended without a result (exit 3): "
        "MemoryError: memory allocation failed, allocating 96 bytes"
    ), lines


def test_the_relayed_result_and_heap_are_reported_as_the_cpython_runtime_does(
    tmp_path, monkeypatch
):
    session = {
        "result": "updated",
        "revision_before": "A",
        "revision_after": "B",
        "recovered": None,
        "end_code": 0,
        "sent": 1000,
        "stream_ms": 500,
        "supported": None,
        "flow_setting": None,
        "voltage_mv": None,
        "pdp": None,
        "events_dropped": 0,
    }
    end = json.dumps({"session": session, "heap": [61000, 64768]})
    status, lines = run(
        tmp_path,
        monkeypatch,
        "echo 'E [1, \"PREFLIGHT\", null]'\necho 'E [2, \"before\", \"A\"]'\necho 'R %s'\n" % end,
        mem=True,
    )
    assert status == 0, lines
    assert "qfota: revision before: A" in lines, lines
    assert "qfota: sent 1000 bytes in 0.5 s (2000 B/s)" in lines, lines
    assert (
        "qfota: heap: live high-water 61000 bytes (after a collect at every event) of 64768"
        in lines
    )
    assert lines[-1] == "qfota: done: A -> B", lines


def test_a_relayed_failure_keeps_its_stage_code_and_exit_status(tmp_path, monkeypatch):
    end = json.dumps({"error": ["FotaError", "FILEEND", 500, None, "modem"]})
    status, lines = run(tmp_path, monkeypatch, "echo 'R %s'\n" % end)
    assert status == 3, lines
    assert lines[-1].startswith("qfota: failed: FILEEND: 500: "), lines


def test_the_call_goes_in_the_environment_not_on_the_command_line(tmp_path, monkeypatch):
    # The interpreter build crashes on a long argument: the call is in QFOTA_CALL, with the
    # session's options, the port and the flow the child opens it with.
    dump = tmp_path / "call.json"
    status, _lines = run(
        tmp_path,
        monkeypatch,
        'printf "%%s" "$QFOTA_CALL" > %s\n' % dump,
        download_urcs=50,
    )
    call = json.loads(dump.read_text())
    assert call["call"] == "update" and call["port"] == "/dev/null" and call["flow_hw"] is True
    assert call["kwargs"]["download_urcs"] == 50 and call["kwargs"]["image"].endswith("fw.bin")
    assert status == 1  # and no result: a stated failure, as above
    assert os.environ.get("QFOTA_CALL") is None
