"""``qfota agent``: the config refused before anything is opened (exit 2, one line naming
the key), tokens never shown, the simulator's AT+CGSN read by the engine's info plan."""

import contextlib
import json
import subprocess
import sys

import pytest

from qfota import driver
from qfota_tools.commands import agent
from qfota_tools.simulators.ec200 import model as sim_model
from qfota_tools.simulators.ec200.pty_sim import PtySimulator
from qfota_tools.transport.serial_port import SerialPort

pytestmark = pytest.mark.timeout(120)

SECRET = "s3cr3t-token-0123456789"


def _run(tmp_path, cfg, *extra):
    path = tmp_path / "agent.json"
    path.write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    return subprocess.run(
        [sys.executable, "-m", "qfota_tools.cli", "agent", "--config", str(path), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


@contextlib.contextmanager
def _agent(tmp_path, cfg):
    """``qfota agent --json`` on ``cfg`` (``agent.json``), stdout and stderr piped; on the
    way out killed if still running, reaped, its pipes closed."""
    path = tmp_path / "agent.json"
    path.write_text(json.dumps(cfg))
    cmd = [sys.executable, "-m", "qfota_tools.cli", "agent", "--config", str(path), "--json"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(30)
        p.stdout.close()
        p.stderr.close()


def _good(tmp_path):
    return {
        "server": "http://127.0.0.1:9",
        "ports": ["/dev/qfota-no-such-port"],
        "state_dir": str(tmp_path / "state"),
        "tokens": {"ec200-867531000000014": SECRET},
    }


@pytest.mark.parametrize(
    "change, key",
    [
        ({"server": "ftp://x"}, "server"),
        ({"server": "http://h:1/path"}, "server"),
        ({"server": 'http://h"\r\nAT+QFOTADL'}, "server"),
        ({"tenant": "a b"}, "tenant"),
        ({"ports": []}, "ports"),
        ({"ports": ["ttyUSB0"]}, "ports"),
        ({"tokens": {"ec200-1": "has space"}}, "tokens"),
        ({"tokens": {"ec200-1": 'q"uote' + SECRET}}, "tokens"),
        ({"tokens": {"bad id!": SECRET}}, "tokens"),
        ({"token_dir": "/no/such/folder"}, "token_dir"),
        ({"poll": {"min_s": 0}}, "poll.min_s"),
        ({"poll": {"min_s": 60, "max_s": 10}}, "poll"),
        ({"poll": {"every": 3}}, "poll"),
        ({"state_dir": "/no/such/parent/state"}, "state_dir"),
        ({"url_mode": "yes"}, "url_mode"),
        ({"baud": 12345}, "baud"),
        ({"flow": "rts"}, "flow"),
        ({"timeouts": {"nope": 3}}, "timeouts"),
        ({"timeouts": {"fileend": -1}}, "timeouts.fileend"),
        ({"usb": 1}, "usb"),
        ({"id_prefix": "a/b"}, "id_prefix"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_config_is_refused_with_its_key(tmp_path, change, key):
    cfg = _good(tmp_path)
    cfg.update(change)
    r = _run(tmp_path, cfg)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qfota agent: config "), r.stderr
    assert (" %s: " % key) in lines[0], lines[0]
    assert SECRET not in r.stderr + r.stdout
    assert not (tmp_path / "state").exists()  # nothing made, nothing opened


def test_not_json_and_missing_file_are_refused(tmp_path):
    r = _run(tmp_path, "{nope")
    assert r.returncode == 2 and "not JSON" in r.stderr, r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "qfota_tools.cli", "agent", "--config", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "cannot read it" in r.stderr, r.stderr


def test_token_dir_gives_each_modem_its_token_and_never_the_text(tmp_path):
    d = tmp_path / "tokens"
    d.mkdir()
    (d / "ec200-1").write_text(SECRET + "\n")
    (d / "ec200-2").write_text("bad token\n")
    cfg = _good(tmp_path)
    del cfg["tokens"]
    cfg["token_dir"] = str(d)
    path = tmp_path / "a.json"
    path.write_text(json.dumps(cfg))
    c = agent.load_config(str(path))
    assert agent.token_for(c, "ec200-1") == SECRET
    for cid in ("ec200-2", "ec200-3"):
        with pytest.raises(agent.NoToken) as e:
            agent.token_for(c, cid)
        assert cid in str(e.value) and "bad token" not in str(e.value)


@pytest.mark.parametrize("sig, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_port_that_is_not_there_is_a_stated_failure_and_stop_is_prompt(tmp_path, sig, code):
    """No modem: the worker says why and retries with a backoff; SIGTERM (SIGINT) ends it
    at once with 143 (130) and the status file names the port."""
    import signal
    import time

    with _agent(tmp_path, _good(tmp_path)) as p:
        first = json.loads(p.stdout.readline())
        assert first["event"] == "port", first
        failed = json.loads(p.stdout.readline())
        assert failed["event"] == "failed" and "PORT: cannot open" in failed["text"], failed
        t0 = time.monotonic()
        p.send_signal(getattr(signal, sig))
        out, err = p.communicate(timeout=30)
        assert p.returncode == code, (out, err)
        assert time.monotonic() - t0 < 10
    status = [sys.executable, "-m", "qfota_tools.cli", "agent", "status", "--config"]
    st = subprocess.run(status + [str(tmp_path / "agent.json")], capture_output=True, text=True,
                        timeout=60)  # fmt: skip
    assert st.returncode == 0 and "/dev/qfota-no-such-port" in st.stdout, st
    assert "(not running)" in st.stdout, st.stdout
    assert SECRET not in out + err + st.stdout + (tmp_path / "state" / "status.json").read_text()


def test_the_engine_reads_the_imei_with_at_cgsn(tmp_path):
    m = sim_model.Modem(timing=sim_model.FAST, baud=921_600, imei="356938035643809")
    with PtySimulator(m) as sim:
        s = driver.info(lambda: SerialPort(sim.path, 921_600))
    assert s.imei == "356938035643809"
    assert "AT+CGSN" in [c if isinstance(c, str) else c.decode() for c in m.commands]
    assert sim_model.Modem(seed=7).imei != sim_model.Modem(seed=8).imei
    assert len(sim_model.imei_of(7)) == 15


def test_one_updater_per_port_the_agent_holds_its_modems_port(tmp_path):
    """While the agent serves a modem (here its server does not answer: the polls fail,
    stated), ``qfota update`` on that port is refused as busy before anything is sent."""
    import signal

    m = sim_model.Modem(timing=sim_model.FAST, baud=921_600, seed=5)
    image = tmp_path / "EC200T.bin"
    image.write_bytes(b"\x00" * 1000)
    with PtySimulator(m) as sim:
        cfg = _good(tmp_path)
        cfg.update(ports=[sim.path], baud=921_600, tokens={})
        with _agent(tmp_path, cfg) as p:
            seen = []
            for line in p.stdout:
                seen.append(json.loads(line))
                if seen[-1]["event"] == "failed":
                    break
            assert seen[-2]["event"] == "modem", seen
            assert seen[-2]["modem"] == "ec200-" + m.imei, seen
            assert "HTTP" in seen[-1]["text"], seen  # the poll's failure, stated
            ncmd = len(sim.inspect(lambda mm: mm.commands))
            r = subprocess.run(
                [sys.executable, "-m", "qfota_tools.cli", "update", "--port", sim.path]
                + ["--image", str(image), "--baud", "921600"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert r.returncode == 2, (r.stdout, r.stderr)
            assert "busy" in r.stdout + r.stderr, (r.stdout, r.stderr)
            assert len(sim.inspect(lambda mm: mm.commands)) == ncmd  # nothing reached it
            p.send_signal(signal.SIGTERM)
            p.communicate(timeout=30)
            assert p.returncode == 143


def test_a_reader_that_goes_away_costs_nothing_but_its_lines(tmp_path):
    """stdout's reader closes: said once on stderr, the agent goes on (its status file
    still written) and stops cleanly."""
    import signal
    import time

    with _agent(tmp_path, _good(tmp_path)) as p:
        p.stdout.readline()
        p.stdout.close()  # the JSON consumer is gone
        status = tmp_path / "state" / "status.json"
        end = time.monotonic() + 30
        while not status.exists():  # written just after the line was
            assert time.monotonic() < end, "no status file"
            time.sleep(0.1)
        before = status.stat().st_mtime_ns
        while status.stat().st_mtime_ns == before:  # a retry after the backoff: still served
            assert time.monotonic() < end, "the status file was not written again"
            time.sleep(0.2)
        p.send_signal(signal.SIGTERM)
        err = p.stderr.read()
        p.wait(30)
    assert p.returncode == 143, err
    assert err.count("qfota agent: output stopped (BrokenPipeError)") == 1, err
    assert "Traceback" not in err and "Exception ignored" not in err, err


@pytest.mark.parametrize(
    "state, said",
    [
        ("download", "downloading; the part on disk is resumed at the next start"),
        ("downloaded", "waiting for the server to allow the update"),
        ("due", "the update not begun (nothing sent to the modem); the next start runs it"),
        ("report", "the server had not taken its result: the next start posts it"),
        ("reported", "in a request to the server: nothing under way on the modem"),
    ],
)
def test_a_stop_says_what_it_leaves_of_the_action_by_its_journal_state(tmp_path, state, said):
    # A stop while busy names what the next start does with the action: a checked
    # download not yet sent to the modem ("due") is not "in a request to the server".
    from types import SimpleNamespace

    path = tmp_path / "agent.json"
    path.write_text(json.dumps(_good(tmp_path)))
    a = agent.Agent(agent.load_config(str(path)))
    w = agent.Worker(a, "/dev/ttyUSB2")
    w.fleet = SimpleNamespace(journal=SimpleNamespace(data={"id": "17", "state": state}))
    text = w.left()
    assert said in text, text
    assert text.startswith("action 17: ") == (state != "reported"), text
