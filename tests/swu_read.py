"""A cpio "newc" reader for the tests, written from the format (cpio(5)), not from the
writer in ``qfota_tools.commands.swu``: [(name, data)] in archive order, TRAILER excluded."""


def members(blob):
    out = []
    off = 0
    while True:
        head = blob[off : off + 110]
        assert len(head) == 110, "archive ends inside a header at %d" % off
        assert head[:6] in (b"070701", b"070702"), head[:6]
        fields = [int(head[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        size, namesize = fields[6], fields[11]
        name_end = off + 110 + namesize
        name = blob[off + 110 : name_end - 1].decode()
        assert blob[name_end - 1] == 0
        data_at = name_end + (-name_end % 4)
        assert data_at % 4 == 0
        if name == "TRAILER!!!":
            return out
        out.append((name, blob[data_at : data_at + size]))
        off = data_at + size + (-(data_at + size) % 4)
