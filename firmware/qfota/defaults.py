"""qfota's defaults and limits, in one place: the session, the driver, the app and the
``qfota`` command all read them from here.

Allocates one small dict of each at import; nothing after.
"""

# The note's parameters of AT+QFOTADL and qfota's own settings.
DEFAULTS = {
    "upgrade_mode": 1,  # <upgrade_mode>: 1 upgrade at once after the download, 0 reboot first
    "download_urcs": 0,  # <download_URC_max>: 0 (none) or 5-100
    "update_urcs": 100,  # <update_URC_max>: 0 (none) or 5-100
    "flow": "hw",  # "hw": RTS/CTS (AT+IFC=2,2); "none": paced pieces (AT+IFC=0,0)
    "baud": 115200,  # the module's default rate; its bootloader prints at the NV-saved one
    # bytes read from the image per write loop: a multiple of 512 (SD blocks), small for a
    # small heap (the whole update fits MicroPython's -X heapsize=64K with 1024; make
    # bench); a board with RAM to spare sets more (boards/rp2.py: 4096, littlefs blocks)
    "chunk": 1024,
    "rate": 15000,  # without flow control: at most this many bytes in any one second
    "piece": 32,  # ... in pieces of at most this many bytes
    "cid": 1,  # URL modes: the PDP context AT+QFOTA="fota/cid" names
}

# Limits: the note's, and bounds qfota puts on its own settings.
BAUDS = (9600, 57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000, 1152000)
RATE_MAX = 15000  # the note: at most 15 KB/s without flow control (NOR flash parts)
PIECE_MAX = 32  # the note: pieces of at most 32 bytes without flow control
CHUNK_MIN = 32
CHUNK_MAX = 65536
CID_MAX = 15  # AT+QICSGP=? on the EC200T: (1-15)
APN_MAX = 100  # 3GPP TS 23.003: an APN is at most 100 octets
TIMEOUT_MAX_MS = 86_400_000  # no single wait is longer than a day
IMAGE_MAX = 64 << 20  # the largest package qfota sends unless told otherwise

# Every wait, in ms; each can be overridden by name. Where each number comes from:
# docs/FIELD.md, "Waits".
TIMEOUTS = {
    "probe_ms": 10_000,  # modem answers AT before we start
    "command_ms": 5_000,  # an ordinary command's final response
    "pdp_ms": 150_000,  # AT+QIACT
    "filestart_ms": 10_000,  # OK/FILESTART after AT+QFOTADL="FILE:..."
    "stall_ms": 10_000,  # the port takes no byte for this long (CTS held)
    "fileend_ms": 30_000,  # FILEEND after the last byte; also the quiet window of recovery
    "dlstart_ms": 60_000,  # FTPSTART/HTTPSTART after AT+QFOTADL=<url>
    "download_ms": 1_800_000,  # whole URL download when no progress URCs come
    "progress_ms": 120_000,  # between two progress URCs (DOWNLOADING/UPDATING)
    "start_ms": 60_000,  # START after the download ended
    "end_ms": 300_000,  # END after START when no UPDATING URCs come
    "reboot_ms": 60_000,  # RDY after a reboot
    "settle_ms": 15_000,  # modem answers AT again after a reboot
}
