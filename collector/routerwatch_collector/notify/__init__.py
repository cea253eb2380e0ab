"""Notifications: stored anomalies of at least --notify-min-severity, grouped per router, sent to
every --notify URL with Apprise (ntfy, Gotify, Telegram, e-mail, Matrix, Discord, JSON webhooks…).

    grouping.py     Grouper     one message per burst and router, a per-router rate limit
    message.py      render()    the text: router, severity, summaries, what to do, dashboard link
    dispatcher.py   Notifier    a bounded intake and a grouping thread; Target: Apprise per URL
    delivery.py     Delivery    per URL: a thread and a bounded queue, retries, counted drops

The collector hooks in with one call per new row, `Notifier.anomaly_stored(row)`, which never
waits; see cli.py.
"""
from .dispatcher import InvalidTarget, Notifier, Target

__all__ = ["InvalidTarget", "Notifier", "Target"]
