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
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
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
