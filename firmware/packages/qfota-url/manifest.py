# qfota-url: updates in which the modem fetches the package itself (HTTP/HTTPS/FTP,
# ``update(port, url=...)``): the note's URL rules. The session imports it only in URL mode.
metadata(
    version="0.2.0",
    description="qfota: URL (HTTP/FTP) updates, the modem fetching the package itself.",
    license="MIT",
)

require("qfota-core")

package("qfota", files=("urls.py",), base_path="../..")
