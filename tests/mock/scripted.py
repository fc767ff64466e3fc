"""A scripted modem: answers command lines from a table and plays URCs on cue.

    m = ScriptedModem({b"AT": b"\\r\\nOK\\r\\n"}, after_image=b'\\r\\n+QIND: "FOTA","FILEEND",0\\r\\n')

``replies`` maps a command line (as sent, without CR, upper case) to the bytes it answers,
or to a list of answers used in turn. A reply may contain ``FILESTART``; after the
modem has said it, incoming bytes are package data, not commands, until ``length``
bytes arrived; then ``after_image`` is played. ``at_bytes`` maps a byte count of the
package to bytes said when that many arrived (URCs in the middle of the transfer).
``room``: how many bytes it takes per write (flow control), 0 = all.
"""


class ScriptedModem:
    def __init__(
        self, replies, after_image=b"", at_bytes=None, room=0, echo=False, delay_ms=0, slow=None
    ):
        self.replies = replies
        self.after_image = after_image
        self.at_bytes = at_bytes or {}
        self.room = room
        self.echo = echo
        self.delay_ms = delay_ms
        self.slow = slow or {}  # command -> ms it takes to answer
        self.commands = []
        self.data = bytearray()
        self.data_mode = False
        self.length = 0
        self.bytes_before_filestart = 0
        self.awaiting_filestart = False
        self._pending_filestart = False
        self._line = b""
        self._out = []  # (due_ms, bytes)

    def say(self, data, now=0, delay=0):
        due = now + self.delay_ms + delay
        i = len(self._out)
        while i and self._out[i - 1][0] > due:  # keep the order of equal times
            i -= 1
        self._out.insert(i, (due, data))

    def read(self, now):
        out = b""
        while self._out and self._out[0][0] <= now:
            chunk = self._out.pop(0)[1]
            if b"FILESTART" in chunk:
                self.data_mode = True  # from the moment the host can see it
                self.awaiting_filestart = False
            out += chunk
        return out

    def write(self, data, now):
        if self.room and len(data) > self.room:
            data = data[: self.room]
        if self.awaiting_filestart:
            self.bytes_before_filestart += len(data)
            return len(data)
        if self.data_mode:
            take = data[: self.length - len(self.data)]
            before = len(self.data)
            self.data.extend(take)
            for mark in sorted(self.at_bytes):
                if before < mark <= len(self.data):
                    self.say(self.at_bytes[mark], now)
            if len(self.data) >= self.length:
                self.data_mode = False
                self.say(self.after_image, now)
            return len(data)
        for i in range(len(data)):
            c = data[i : i + 1]
            if c == b"\r":
                self._command(self._line, now)
                self._line = b""
            elif c != b"\n":
                self._line += c
        return len(data)

    def _command(self, line, now):
        if not line:
            return
        self.commands.append(line)
        if self.echo:
            self.say(line + b"\r", now)
        key = line.upper()
        if key.startswith(b'AT+QFOTADL="FILE:'):
            self.length = int(key.split(b":")[1].split(b'"')[0])
            self._pending_filestart = True
        reply = self.replies.get(key)
        if reply is None:
            for k in self.replies:
                if k.endswith(b"*") and key.startswith(k[:-1]):
                    reply = self.replies[k]
                    break
        if isinstance(reply, list):
            reply = reply.pop(0) if len(reply) > 1 else reply[0]
        if reply is None:
            reply = b"\r\nERROR\r\n"
        if reply:
            self.say(reply, now, self.slow.get(key, 0))
        if self._pending_filestart:
            self._pending_filestart = False
            self.awaiting_filestart = True
