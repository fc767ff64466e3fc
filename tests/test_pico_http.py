"""The simulated modem's HTTP AT commands from the real MicroPython rp2 firmware on the
emulated Pico: UART0 joined to the modem model in-process (``PicoSim(modem=...)``), a real
HTTP server on 127.0.0.1 behind it. The board's script is plain MicroPython (``UART``),
run with the real mpremote."""

import hashlib
import os
import time

import pytest
from at_http import WebServer
from pico_rig import NEW_REV, fixtures_or_skip, modem, mpremote

from qfota_tools.simulators import pico

pytestmark = pytest.mark.timeout(240)

FW, ROM = fixtures_or_skip()

# Runs on the board: the contract's commands over UART0, the body read by count.
BOARD = r"""
import time, hashlib
from machine import UART, Pin
u = UART(0, 921600, tx=Pin(0), rx=Pin(1), rxbuf=4096, timeout=0)
buf = b''
def until(want, ms=8000):
    global buf
    t = time.ticks_ms()
    while want not in buf:
        if time.ticks_diff(time.ticks_ms(), t) > ms:
            raise SystemExit('timeout waiting for %r in %r' % (want, buf[-80:]))
        b = u.read()
        if b:
            buf += b
    i = buf.index(want) + len(want)
    head, buf = buf[:i], buf[i:]
    return head
def cmd(s, want=b'OK\r\n'):
    u.write(s + '\r')
    return until(want)
cmd('ATE0')
cmd('AT+QIACT=1')
cmd('AT+QHTTPCFG="contextid",1')
url = ART_URL
cmd('AT+QHTTPURL=%d,10' % len(url), b'CONNECT\r\n')
u.write(url)
until(b'OK\r\n')
cmd('AT+QHTTPGET=10')
until(b'+QHTTPGET: ', 15000)
nums = until(b'\r\n').strip().decode().split(',')
print('GET', ','.join(nums))
n = int(nums[2])
cmd('AT+QHTTPREAD=10', b'CONNECT\r\n')
h = hashlib.sha256()
got = 0
t = time.ticks_ms()
while got < n:
    if buf:
        k = min(len(buf), n - got)
        h.update(buf[:k]); got += k; buf = buf[k:]
        continue
    b = u.read()
    if b:
        buf = b
    elif time.ticks_diff(time.ticks_ms(), t) > 20000:
        raise SystemExit('body stopped at %d of %d' % (got, n))
until(b'+QHTTPREAD: ')
print('READ', until(b'\r\n').strip().decode())
print('SHA', ''.join('%02x' % x for x in h.digest()))
"""


def test_board_fetches_over_the_modems_http():
    body = os.urandom(20_000)
    with WebServer() as srv:
        srv.files["/art.bin"] = body
        m = modem()
        script = BOARD.replace("ART_URL", repr(srv.url("/art.bin")))
        with pico.PicoSim(FW, ROM, modem=m) as sim:
            r = mpremote(sim.repl_path, "exec", script, timeout=180)
            with sim.lock:
                log = [dict(e) for e in m.http_log]
    assert r.returncode == 0, (r.stdout, r.stderr)
    out = r.stdout
    assert "GET 0,200,%d" % len(body) in out, out
    assert "READ 0" in out, out
    assert "SHA " + hashlib.sha256(body).hexdigest() in out, out
    assert [(e["method"], e["path"], e["status"]) for e in log] == [("GET", "/art.bin", 200)]
    assert log[0]["down"] > len(body)


URL_MODE = r"""
import time
from machine import UART, Pin
u = UART(0, 921600, tx=Pin(0), rx=Pin(1), rxbuf=1024, timeout=0)
buf = b''
def cmd(s, ms=8000):
    global buf
    u.write(s + '\r')
    t = time.ticks_ms()
    while b'OK\r\n' not in buf:
        if time.ticks_diff(time.ticks_ms(), t) > ms:
            raise SystemExit('no OK to %s: %r' % (s, buf[-80:]))
        b = u.read()
        if b:
            buf += b
    buf = b''
cmd('AT+QIACT=1')
cmd('AT+QFOTADL="' + PKG_URL + '",1,0,5')
print('SENT')
"""


def test_url_mode_from_the_board_fetches_for_real():
    """AT+QFOTADL=<http url> from the board: the joined modem downloads the package from
    the server itself (URL mode), checks it and updates."""
    pkg = os.urandom(30_000)
    with WebServer() as srv:
        srv.files["/ec200.bin"] = pkg
        m = modem(image_md5=hashlib.md5(pkg).hexdigest())
        with pico.PicoSim(FW, ROM, modem=m) as sim:
            script = URL_MODE.replace("PKG_URL", repr(srv.url("/ec200.bin")))
            r = mpremote(sim.repl_path, "exec", script, timeout=180)
            assert r.returncode == 0 and "SENT" in r.stdout, (r.stdout, r.stderr)
            done = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with sim.lock:
                    done = (m.outcome, m.received_md5, m.revision)
                if done[0] == "END 0":
                    break
                time.sleep(0.05)
    assert done == ("END 0", hashlib.md5(pkg).hexdigest(), NEW_REV), done
    assert [s[0] for s in srv.seen] == ["GET"]
