"""Waking an idle worker when deliveries arrive: LISTEN/NOTIFY on PostgreSQL, a short poll on SQLite.

The inbox writer on PostgreSQL (:mod:`receiver.ingest.postgres`) sends
``NOTIFY receiver_events`` with each group commit that stored at least one
new delivery (the notification is delivered when that commit is, never
before). :class:`PostgresWakeup` holds one dedicated connection per worker
process that ``LISTEN``\\ s on :data:`CHANNEL` from a daemon thread and sets a
flag the idle worker waits on; every worker listening wakes, and the claim
(``FOR UPDATE SKIP LOCKED``) shares the work out.

The worker still polls every ``WORKER_POLL_SECONDS`` while idle: retries
(``next_attempt_at``) and expired leases become due by time, not by a
notification, and a notification can be missed while the listening
connection is down. A lost connection is logged once
(``notify_listener_lost``), retried with back-off (0.5 s doubling to 30 s)
and logged again when it is back (``notify_listener_restored``); each
(re)connection wakes the worker once, to pick up what was stored while
nobody listened.

SQLite has no LISTEN/NOTIFY: :class:`Wakeup` alone is a plain short poll
(``WORKER_SQLITE_POLL_SECONDS``, 50 ms by default; an empty claim there is a
few index reads under the write lock).
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import structlog
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from receiver.db.engine import database_error_reason
from receiver.settings import Settings

__all__ = ["CHANNEL", "Wakeup", "PostgresWakeup", "make_wakeup", "notify_workers"]

log = structlog.get_logger("receiver.processing.wakeup")

#: The notification channel of new deliveries (``NOTIFY receiver_events``; the payload is empty).
CHANNEL = "receiver_events"
#: ``application_name`` of the listening connection (shown in ``pg_stat_activity``).
LISTENER_APPLICATION_NAME = "receiver-worker-listen"
#: Back-off between reconnection attempts of the listener, seconds (doubling from the first to the second).
RECONNECT_BACKOFF_SECONDS = (0.5, 30.0)


class Wakeup:
    """The signal an idle worker waits on; without a listener (SQLite) it is a plain timed poll.

    Args:
        poll_seconds: how long :meth:`wait` blocks when nobody calls :meth:`set`.

    Thread-safe: :meth:`set` may be called from any thread or a signal handler.
    """

    #: How the worker learns of new work: ``poll`` (timed only) or ``notify`` (LISTEN, plus the poll).
    mode = "poll"

    def __init__(self, poll_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self._event = threading.Event()

    @property
    def listening(self) -> bool:
        """True while notifications can wake the worker (never for a plain poll)."""
        return False

    def start(self) -> None:
        """Start listening (nothing to do for a plain poll)."""

    def close(self) -> None:
        """Stop listening and release a waiting :meth:`wait`."""
        self._event.set()

    def set(self) -> None:
        """Wake the worker now (or make its next :meth:`wait` return at once)."""
        self._event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`set` or ``timeout`` seconds (default ``poll_seconds``); True when woken by :meth:`set`.

        The signal is cleared on return: a :meth:`set` that comes later
        (even while the worker is busy) makes the next wait return at once,
        so no wake-up is lost between a claim and the next wait.
        """
        woken = self._event.wait(self.poll_seconds if timeout is None else timeout)
        self._event.clear()
        return woken


class PostgresWakeup(Wakeup):
    """A :class:`Wakeup` that a ``NOTIFY`` on ``channel`` sets, through a dedicated psycopg connection.

    Args:
        engine: the worker's PostgreSQL engine; the listener opens its own
            connection with the same connection arguments (outside the pool).
        poll_seconds: the fallback poll interval (``WORKER_POLL_SECONDS``).
        channel: the channel to ``LISTEN`` on.

    :meth:`start` starts a daemon thread; :meth:`close` stops it within about
    half a second. Connection failures never raise: they are logged once
    and retried with back-off while the worker keeps polling.
    """

    mode = "notify"

    def __init__(self, engine: Engine, poll_seconds: float, *, channel: str = CHANNEL) -> None:
        super().__init__(poll_seconds)
        if not channel.isidentifier():
            raise ValueError(f"not a plain channel name: {channel!r}")
        self.channel = channel
        self._engine = engine
        self._closed = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def listening(self) -> bool:
        """True once ``LISTEN`` has run on a live connection (False while reconnecting)."""
        return self._listening.is_set()

    def start(self) -> None:
        """Start the listener thread (again after :meth:`close`); a no-op while it runs."""
        if self._thread is None or not self._thread.is_alive():
            self._closed.clear()
            self._thread = threading.Thread(target=self._run, name="worker-notify-listener", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the listener thread (waits up to 2 s for it) and release a waiting :meth:`wait`."""
        self._closed.set()
        super().close()
        if self._thread is not None:
            self._thread.join(2.0)

    def _connect(self) -> psycopg.Connection[Any]:
        cargs, cparams = self._engine.dialect.create_connect_args(self._engine.url)
        params: dict[str, Any] = {
            **cparams,
            "autocommit": True,
            "connect_timeout": 5,
            "application_name": LISTENER_APPLICATION_NAME,
            # A connection that silently died (network cut) is noticed within about a minute.
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
        return psycopg.connect(*cargs, **params)

    def _run(self) -> None:
        backoff = RECONNECT_BACKOFF_SECONDS[0]
        lost = False
        while not self._closed.is_set():
            try:
                with self._connect() as connection:
                    connection.execute(f"LISTEN {self.channel}")
                    self.set()  # whatever was stored while nobody listened
                    self._listening.set()
                    if lost:
                        log.info("notify_listener_restored", channel=self.channel)
                        lost = False
                    backoff = RECONNECT_BACKOFF_SECONDS[0]
                    while not self._closed.is_set():
                        for _notify in connection.notifies(timeout=0.5):
                            self.set()
            except (psycopg.Error, OSError) as exc:
                self._listening.clear()
                if not lost:
                    lost = True
                    log.warning(
                        "notify_listener_lost",
                        channel=self.channel,
                        error=database_error_reason(exc),
                        action=f"polling every {self.poll_seconds:g} s; reconnecting with back-off",
                    )
                self.set()  # poll once now: something may have been stored while the connection died
                self._closed.wait(backoff)
                backoff = min(backoff * 2, RECONNECT_BACKOFF_SECONDS[1])
        self._listening.clear()


def notify_workers(connection: Connection) -> None:
    """Wake the listening workers when ``connection``'s transaction commits (PostgreSQL; a no-op on SQLite).

    For code that makes events due other than the inbox writer (which sends
    its own NOTIFY), e.g. ``receiver events retry``.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"NOTIFY {CHANNEL}"))


def make_wakeup(engine: Engine, settings: Settings) -> Wakeup:
    """The wake-up of a worker on ``engine``.

    PostgreSQL with ``WORKER_LISTEN`` (default): :class:`PostgresWakeup` with
    ``WORKER_POLL_SECONDS`` as the fallback poll; PostgreSQL without it (e.g.
    behind a transaction-pooling proxy, where LISTEN does not work): a plain
    poll every ``WORKER_POLL_SECONDS``; SQLite: a plain poll every
    ``WORKER_SQLITE_POLL_SECONDS``.
    """
    if engine.dialect.name == "postgresql":
        if settings.worker_listen:
            return PostgresWakeup(engine, settings.worker_poll_seconds)
        return Wakeup(settings.worker_poll_seconds)
    return Wakeup(settings.worker_sqlite_poll_seconds)
