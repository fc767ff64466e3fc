"""qfota: FOTA updates of Quectel EC200T/EC200S/EG912Y modems from a MicroPython MCU.

Importing ``qfota`` loads nothing else, so a small heap takes the engine module by
module (``qfota.errors`` alone does not pull in the session and the driver)::

    from qfota.driver import update
    from qfota.errors import FotaError
    from qfota.uart import UartPort
    try:
        s = update(UartPort(uart), "/sd/fota/EC200T.bin", upgrade_mode=1, download_urcs=50)
        print("now running", s.revision_after)
    except FotaError as e:
        print(e)        # e.g. "FILEEND: 500: File download error"
"""

__version__ = "0.2.0"
