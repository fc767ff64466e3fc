"""A small JSON state file, replaced atomically at each change.

The on-device app keeps its journal in one (``qfota.app``); ``qfota update`` keeps one
per serial port on the host (``qfota.runner``), so that a run after one that was cut in
the middle of a transfer listens before it probes.

``save()`` writes ``<path>.tmp`` and renames it over ``<path>`` (atomic on LittleFS and
POSIX; on FAT the rename removes the old file first, so ``load()`` falls back to the
temp file, which is complete by then). ``save`` allocates the JSON text.
"""

import json
import os


class Journal:
    def __init__(self, path):
        self.path = path
        self.tmp = path + ".tmp"
        self.data = {}

    def load(self):
        for p in (self.path, self.tmp):
            try:
                with open(p) as f:
                    data = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(data, dict):
                self.data = data
                return data
        self.data = {}
        return self.data

    def save(self, **changes):
        """Raises OSError when it cannot be written (the temp file is removed then: a
        full disk keeps no half file)."""
        self.data.update(changes)
        try:
            with open(self.tmp, "w") as f:
                f.write(json.dumps(self.data))
        except OSError:
            try:
                os.remove(self.tmp)
            except OSError:
                pass
            raise
        os.rename(self.tmp, self.path)

    def get(self, key, default=None):
        return self.data.get(key, default)

    def clear(self):
        self.data = {}
        for p in (self.path, self.tmp):
            try:
                os.remove(p)
            except OSError:
                pass
