"""Cutting attacker-chosen text to size: the one clip() (contract.py re-exports it). A module of
its own so the log parsers need not import the whole message contract (check-log starts faster)."""

MAX_STRING_CHARS = 1024       # any string inside evidence / inventory


def clip(text, limit=MAX_STRING_CHARS):
    """Cut attacker-chosen text to a size the contract accepts, marking that it was cut."""
    text = str(text)
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "\u2026"
