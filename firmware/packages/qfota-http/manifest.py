# qfota-http: HTTP requests through the modem's own HTTP(S) AT commands (AT+QHTTPCFG,
# AT+QHTTPURL, AT+QHTTPGET, AT+QHTTPPOST, AT+QHTTPREAD): the sans-I/O core (httpat.py; its
# options' checks, httpcfg.py, request checks, httpreq.py, and rare endings, httptail.py,
# loaded on demand) and the transport a device's server mode uses over its UART
# (httpdrv.py, ModemTransport).
metadata(
    version="0.2.0",
    description="qfota: HTTP through the modem's HTTP(S) AT commands (the device's transport).",
    license="MIT",
)

require("qfota-core")

package(
    "qfota",
    files=("httpat.py", "httpcfg.py", "httpreq.py", "httptail.py", "httpdrv.py"),
    base_path="../..",
)
