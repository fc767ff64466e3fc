"""The modem transport on the MicroPython unix port, against the simulator's pty: run by
tests/test_httpat_sim.py (``micropython tests/httpat_mp.py PTY BASE_URL OUT_FILE SIZE``).

Prints one JSON object: the answers of a GET with a token, a PUT, a POST, the Range
download into OUT_FILE (a MicroPython file is a sink: ``write(buf, off, n)``), its time,
and the failures met on the way (the download resumes from the file's size).
"""

import json
import sys

from qfota.compat import ticks_diff, ticks_ms
from qfota.errors import FotaError
from qfota.httpdrv import ModemTransport
from qfota.tty import TtyPort

WAITS = {"response_ms": 10000, "read_ms": 10000, "command_ms": 3000, "pdp_ms": 5000}


def main(path, base, out, size):
    port = TtyPort(path, 921600, flow_hw=True)
    t = ModemTransport(port, timeouts=WAITS, rx=4096)
    res = {}
    auth = ("Authorization", "TargetToken mp-t0ken")
    st, body = t.request("GET", base + "/small.json", (auth,))
    res["get"] = [st, body.decode()]
    st, body = t.request("PUT", base + "/cfg", (auth,), b'{"mode":"merge"}')
    res["put"] = [st, body.decode()]
    st, body = t.request("POST", base + "/feedback", body=b'{"a":1}')
    res["post"] = [st, body.decode()]
    # The Range download resumes from the file's size after a failure (the sink holds only
    # body bytes), as a device resumes from what is on flash.
    step = 32768
    f = open(out, "wb")
    faults = []
    pos = 0
    t0 = ticks_ms()
    while pos < size:
        rng = ("Range", "bytes=%d-%d" % (pos, min(pos + step, size) - 1))
        try:
            st, n = t.request("GET", base + "/pkg.bin", (auth, rng), sink=f)
            res["range"] = [st, n]
        except FotaError as e:
            faults.append([e.stage, e.code, e.kind, str(e)])
            if len(faults) > 2:
                raise
        pos = f.tell()
    res["ms"] = ticks_diff(ticks_ms(), t0)
    f.close()
    res["faults"] = faults
    st, body = t.request("GET", base + "/small.json")
    res["after"] = [st, body.decode()]
    port.close()
    print(json.dumps(res))


main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
