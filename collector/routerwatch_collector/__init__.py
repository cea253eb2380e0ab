"""routerwatch collector: the server side.

    ingest.py      validate (routerwatch.contract), drop duplicates, note gaps, raise agent.silent
    store.py       the Store interface and its SQLite backend
    subscriber.py  the MQTT client: subscribe, batch, acknowledge after commit, reconnect
    cli.py         routerwatch-collector run | anomalies | devices
"""

__version__ = "0.1.0"   # as in collector/pyproject.toml
