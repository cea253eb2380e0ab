"""Read a store the way an operator would, with SQL, from outside the collector process: the
same query against a SQLite file or a PostgreSQL URL. JSON columns come back as text from both,
and a store whose tables do not exist yet reads as empty."""
import sqlite3
from pathlib import Path

from routerwatch import jsonio
from routerwatch_collector.stores import is_postgres


def store_rows(url, sql, args=()):
    """[dict] for `sql` with ? placeholders."""
    url = str(url)
    if is_postgres(url):
        return _postgres_rows(url, sql, args)
    if not Path(url).exists():
        return []
    con = sqlite3.connect("file:%s?mode=ro" % url, uri=True, timeout=5)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    except sqlite3.OperationalError:     # the collector has not created its tables yet
        return []
    finally:
        con.close()


def _postgres_rows(url, sql, args):
    import psycopg
    from psycopg.rows import dict_row
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as con:
        try:
            found = con.execute(sql.replace("?", "%s"), args).fetchall()
        except psycopg.errors.UndefinedTable:
            return []
    return [{k: jsonio.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()}
            for row in found]
