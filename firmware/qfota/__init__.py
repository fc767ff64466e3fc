"""qfota: FOTA updates of Quectel EC200T/EC200S/EG912Y modems from a MicroPython MCU.

from qfota import update, FotaError
from qfota.uart import UartPort
try:
    s = update(UartPort(uart), "/sd/fota/EC200T.bin", upgrade_mode=1, download_urcs=50)
    print("now running", s.revision_after)
except FotaError as e:
    print(e)        # e.g. "FILEEND: 500: File download error"
"""

from qfota.driver import update
from qfota.errors import FotaError

__all__ = ["update", "FotaError"]
__version__ = "0.1.0"
