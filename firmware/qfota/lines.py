"""Line framing for the AT channel: bytes in, whole lines out, in fixed RAM.

The modem ends lines with CR LF, but echo adds a lone CR (``AT+QGMR\\r\\r\\n``) and
bootloaders double or drop CR LF; so any run of CR/LF ends a line and empty lines
are skipped. A line longer than the buffer is dropped whole and counted, never grown.

    >>> f = LineFramer(on_line=lambda buf, n: print(bytes(buf[:n])))
    >>> f.feed(b'\\r\\nOK\\r\\n+QIND: "FOTA","FILESTART"\\r\\n', 0, 36)
    b'OK'
    b'+QIND: "FOTA","FILESTART"'

``feed`` allocates nothing: it copies into the framer's own buffer and hands the
consumer that buffer and a length. The consumer must copy what it wants to keep.
"""

from qfota.compat import const

_CR = const(13)
_LF = const(10)
LINE_MAX = const(256)


class LineFramer:
    def __init__(self, on_line, size=LINE_MAX):
        self.buf = bytearray(size)
        self.n = 0
        self.on_line = on_line
        self.dropped = 0  # lines longer than the buffer, dropped
        self._overflow = False

    def feed(self, data, start, end):
        """Take ``data[start:end]``; call ``on_line(buf, n)`` for each complete line."""
        buf = self.buf
        size = len(buf)
        n = self.n
        i = start
        while i < end:
            c = data[i]
            i += 1
            if c == _CR or c == _LF:
                if self._overflow:
                    self._overflow = False
                    self.dropped += 1
                elif n:
                    self.n = 0
                    self.on_line(buf, n)
                n = 0
            elif self._overflow:
                pass
            elif n < size:
                buf[n] = c
                n += 1
            else:
                self._overflow = True
                n = 0
        self.n = n

    def pending(self):
        """Bytes of a line not yet ended (e.g. a prompt without CR LF)."""
        return self.n
