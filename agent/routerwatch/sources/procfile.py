"""A small /proc file parsed again only when its text changed.

The router's routes and addresses change a few times a day (a PPPoE reconnect, a new IPv6
prefix), yet they are read every poll; on a router CPU parsing them costs far more than reading
them. So the text is read whole (up to max_bytes) and parsed only when it differs from the last
read; a larger file is parsed streaming every time, as it would be without this.
"""
MAX_BYTES = 256 * 1024     # a home router's fib_trie is a few kB; a BGP table's is not cached


class ParsedFile:
    """parse(lines) -> a result, for one path; .read() -> (result, changed since last read)."""

    __slots__ = ("path", "parse", "max_bytes", "_text", "_result")

    def __init__(self, path, parse, max_bytes=MAX_BYTES):
        self.path = path
        self.parse = parse
        self.max_bytes = max_bytes
        self._text = None        # None: never read, or unreadable the last time
        self._result = None

    def read(self):
        try:
            with open(self.path, "r", encoding="ascii", errors="replace") as handle:
                text = handle.read(self.max_bytes + 1)
                if len(text) > self.max_bytes:
                    # too big to keep: parse this read streaming, and keep nothing
                    handle.seek(0)
                    self._text = self._result = None
                    return self.parse(handle), True
        except OSError:
            changed = self._text is not None or self._result is None
            self._text, self._result = None, set()
            return set(), changed
        if text == self._text:
            return self._result, False
        self._text = text
        self._result = self.parse(text.splitlines(keepends=True))
        return self._result, True
