"""Parsers: pure text -> typed records, no state and no I/O (the code that faces the attacker)."""
