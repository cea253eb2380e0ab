from routerwatch.bounded import BoundedDict


def test_lru_cap_evicts_oldest_and_counts():
    table = BoundedDict(3)
    for key in "abcd":
        table.set(key, key.upper())
    assert len(table) == 3 and "a" not in table and table.evicted == 1
    table.get("b")               # touch b so c is now the oldest
    table.set("e", "E")
    assert "c" not in table and "b" in table and table.evicted == 2


def test_setdefault_creates_once():
    table = BoundedDict(2)
    first = table.setdefault("k", list)
    first.append(1)
    assert table.setdefault("k", list) == [1]
