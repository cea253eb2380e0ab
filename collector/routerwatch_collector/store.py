"""The collector's storage, kept importable under its first name: see stores/ (the interface in
stores/base.py, one module per backend)."""
from .stores import StoreError, StoreMissing, is_postgres, open_store  # noqa: F401
from .stores.base import *  # noqa: F401,F403
from .stores.base import GAP_CLAIM_MAX, MAX_READ_ROWS  # noqa: F401
from .stores.sqlite import SCHEMA, SqliteStore  # noqa: F401
