"""Bounded containers: every table the agent keeps has a cap, and what a cap throws away is counted."""
from collections import OrderedDict


class BoundedDict:
    """An LRU map with a hard size cap; evictions are counted in .evicted for the heartbeat."""

    __slots__ = ("_data", "cap", "evicted")

    def __init__(self, cap):
        if cap < 1:
            raise ValueError("cap must be at least 1")
        self._data = OrderedDict()
        self.cap = cap
        self.evicted = 0

    def get(self, key, default=None):
        data = self._data
        if key in data:
            data.move_to_end(key)
            return data[key]
        return default

    def set(self, key, value):
        data = self._data
        if key in data:
            data.move_to_end(key)
        data[key] = value
        while len(data) > self.cap:
            data.popitem(last=False)
            self.evicted += 1

    def setdefault(self, key, factory):
        """Value for key, creating it with factory() (and evicting the oldest) when absent."""
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        value = factory()
        self.set(key, value)
        return value

    def pop(self, key, default=None):
        return self._data.pop(key, default)

    def resize(self, cap):
        """A new cap (a config reload): the least recently used entries beyond it go, counted."""
        if cap < 1:
            raise ValueError("cap must be at least 1")
        self.cap = cap
        while len(self._data) > cap:
            self._data.popitem(last=False)
            self.evicted += 1

    def same_as(self, other):
        """Same cap, entries in the same order and the same eviction count."""
        return (isinstance(other, BoundedDict) and self.cap == other.cap
                and self.evicted == other.evicted and self.items() == other.items())

    def oldest(self):
        """The least recently used (key, value), or None when empty (for expiring by age)."""
        for item in self._data.items():
            return item
        return None

    def __contains__(self, key):
        return key in self._data

    def __len__(self):
        return len(self._data)

    def items(self):
        return list(self._data.items())

    def keys(self):
        return list(self._data.keys())

    def values(self):
        return list(self._data.values())


# Memory a kept path may take, per file of integrity.max_files (sys.getsizeof of the str: about
# 90 bytes for OpenWrt's usual 40-character paths). A count alone does not bound memory: a path
# may be 4,095 bytes, and 15,000 such junk names took the agent to 88 MB without reaching a cap.
# The overlay walk's kept paths and the package files the plain scan checks share this budget.
PATH_BYTES_PER_FILE = 160


class BoundedLines:
    """The lines of a binary stream (bytes, without the newline), read in chunks: at most
    `max_bytes` of it, and no line longer than `max_line_bytes` is ever held whole.

    A longer line is skipped up to its newline and stands as one None in the iteration (so a
    record parser sees that something was there), counted in .overlong; a stream longer than
    max_bytes ends early with .truncated set. Memory: one chunk and one line, whatever the input.
    """

    CHUNK = 64 * 1024

    def __init__(self, handle, max_bytes, max_line_bytes):
        self._handle = handle
        self.max_bytes = max_bytes
        self.max_line_bytes = max_line_bytes
        self.bytes_read = 0
        self.lines = 0
        self.overlong = 0
        self.truncated = False

    def __iter__(self):
        pending = b""
        skipping = False            # inside an overlong line, up to its newline
        while True:
            room = self.max_bytes - self.bytes_read
            chunk = self._handle.read(min(self.CHUNK, room)) if room > 0 else b""
            if not chunk:
                if room <= 0 and self._handle.read(1):
                    self.truncated = True
                break
            self.bytes_read += len(chunk)
            start = 0
            while True:
                end = chunk.find(b"\n", start)
                if end < 0:
                    break
                if skipping:
                    skipping = False
                    yield None
                else:
                    line = pending + chunk[start:end] if pending else chunk[start:end]
                    pending = b""
                    if len(line) > self.max_line_bytes:
                        self.overlong += 1
                        yield None
                    else:
                        self.lines += 1
                        yield line
                start = end + 1
            if not skipping:
                pending += chunk[start:]
                if len(pending) > self.max_line_bytes:
                    pending, skipping = b"", True
                    self.overlong += 1
        if skipping:
            yield None
        elif pending and not self.truncated:
            self.lines += 1
            yield pending     # the last line, without a newline
