"""Storage backends behind one interface (base.Store): SQLite for one host, PostgreSQL for a fleet.

`open_store(location)` picks the backend from what the user gave as --db: a postgresql:// URL
(or postgres://) is PostgreSQL, anything else a SQLite file.
"""
import os
import re

from .base import (STATUS_OFFLINE, STATUS_ONLINE, STATUS_STOPPED, DeviceRow, Store,
                   StoredAnomaly)

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class StoreError(Exception):
    """The store cannot be opened or used; the text is for people (no driver traceback)."""


class StoreMissing(StoreError, FileNotFoundError):
    """A query command named a store that does not exist (yet)."""


def is_postgres(location):
    return str(location).startswith(POSTGRES_SCHEMES)


def safe_location(location):
    """--db as it may be shown in logs and messages: a URL's password replaced by ***."""
    return re.sub(r"\A(postgres(?:ql)?://[^:/@]*):[^@/]*@", r"\1:***@", str(location))


def open_store(location, create=True, **options):
    """The backend for `location`. With create=False nothing is created: a missing SQLite file
    or a PostgreSQL database without the collector's tables is StoreMissing (the query commands
    should not leave empty databases behind a typo). `options`: retention_days,
    heartbeat_sample_spacing, read_only (the backends take the same ones)."""
    location = str(location)
    if is_postgres(location):
        from .postgres import PostgresStore
        return PostgresStore(location, create=create, **options)
    import sqlite3

    from .sqlite import SqliteStore
    if not create and location != ":memory:" and not os.path.exists(location):
        raise StoreMissing("no database at %s" % location)
    try:
        return SqliteStore(location, **options)
    except sqlite3.Error as exc:
        raise StoreError("cannot open the database %s: %s" % (location, exc)) from None


__all__ = ["Store", "StoredAnomaly", "DeviceRow", "StoreError", "StoreMissing", "open_store",
           "is_postgres", "safe_location", "STATUS_ONLINE", "STATUS_OFFLINE", "STATUS_STOPPED"]
