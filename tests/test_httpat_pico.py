"""The modem transport on the real MicroPython rp2 firmware (an emulated Pico): a download
through the simulated modem's HTTP commands on UART0 at 921,600 baud into a file on the
board's littlefs flash, bytes checked, and its rate in emulated time."""

import hashlib

import pytest
from at_http import WebServer
from pico_rig import deployed_flash, fixtures_or_skip, mpremote

from qfota_tools.simulators import pico
from qfota_tools.simulators.ec200.model import FAST, Modem

pytestmark = pytest.mark.timeout(300)

FW, ROM = fixtures_or_skip()

LINE = 921600 // 10  # bytes/s at 921,600 baud, 8N1
SIZE = 196_608
PKG = hashlib.sha256(b"pico").digest() * (SIZE // 32)

# On the board: UART0 with RTS/CTS at 921,600 baud, the transport reading 4 KB at a time
# into a littlefs file in 64 KB Range requests, the body under heap_lock; then the file's
# sha256 read back. (Each request costs about 60 ms of emulated time besides its body:
# 32 KB ranges measured 85% of the line, one request for all of it 96%.)
SCRIPT = """
import hashlib, binascii
from machine import UART, Pin
from qfota.compat import ticks_diff, ticks_ms
from qfota.httpdrv import ModemTransport
from qfota.uart import UartPort
uart = UART(0, 921600, tx=Pin(0), rx=Pin(1), cts=Pin(2), rts=Pin(3),
            flow=UART.RTS | UART.CTS, txbuf=1024, rxbuf=4096, timeout=0)
w = {"response_ms": 30000, "read_ms": 30000, "command_ms": 10000}
t = ModemTransport(UartPort(uart, txbuf=1024, baud=921600), timeouts=w, rx=4096, lock_heap=True)
auth = ("Authorization", "TargetToken pico-t0ken")
st0 = t.request("GET", "%(base)s/small.json", (auth,))[0]
f = open("/dl.bin", "wb")
pos = 0
t0 = ticks_ms()
while pos < %(size)d:
    rng = ("Range", "bytes=%%d-%%d" %% (pos, pos + 65535))
    st, n = t.request("GET", "%(base)s/pkg.bin", (auth, rng), sink=f)
    pos += n
ms = ticks_diff(ticks_ms(), t0)
f.close()
h = hashlib.sha256()
buf = bytearray(4096)
with open("/dl.bin", "rb") as f:
    while True:
        k = f.readinto(buf)
        if not k:
            break
        h.update(buf[:k])
print("RESULT", st0, st, pos, ms, binascii.hexlify(h.digest()).decode())
"""


@pytest.fixture(scope="module")
def flash(tmp_path_factory):
    path = tmp_path_factory.mktemp("pico") / "deployed.bin"
    proc = deployed_flash(path, FW, ROM)
    assert proc.returncode == 0, proc.stderr
    return path


def test_range_download_into_flash_at_921600(flash):
    with WebServer() as srv:
        srv.files["/pkg.bin"] = PKG
        srv.files["/small.json"] = b'{"config":{}}'
        m = Modem(timing=dict(FAST, noise_ms=0), baud=921600)
        with pico.PicoSim(FW, ROM, flash=str(flash), modem=m) as sim:
            code = SCRIPT % {"base": srv.url(""), "size": SIZE}
            proc = mpremote(sim.repl_path, "exec", code, timeout=240)
    out = proc.stdout + proc.stderr
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
    assert line, out
    _r, st0, st, got, ms, digest = line[0].split()
    assert (int(st0), int(st), int(got)) == (200, 206, SIZE), out
    assert digest == hashlib.sha256(PKG).hexdigest(), "the file on flash differs"
    rate = SIZE * 1000 // int(ms)
    print(
        "pico: %d bytes in %s ms emulated: %d B/s, %d%% of the line"
        % (SIZE, ms, rate, rate * 100 // LINE)
    )
    assert rate * 100 // LINE >= 80, (rate, ms)
    assert "pico-t0ken" in repr(srv.seen)  # the header went out; nothing else printed it
