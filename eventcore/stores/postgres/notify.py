"""LISTEN/NOTIFY wake-ups for readers waiting for new events, with polling as the fallback.

Every append sends one ``NOTIFY`` on the schema's channel with its last position as the
payload. A :class:`Listener` is one dedicated connection per
:class:`~eventcore.stores.postgres.PostgresDatabase` that LISTENs in a background thread and
wakes the threads waiting in ``PostgresEventStore.wait_for_events``.

A notification is only a hint: waiters always confirm with a query, and poll anyway at the
store's ``poll_interval``, so a lost notification (the listening connection dropped, or a
PgBouncer in transaction mode) delays a reader by at most one interval and never loses an
event. The listener reconnects on its own after a failure.
"""

from __future__ import annotations

import threading
from typing import Any, Final

import psycopg
from psycopg import sql

__all__ = ["Listener"]

_TICK: Final = 0.5
"""How often the listening thread looks up from the socket to see whether it must stop."""


class Listener:
    """One LISTENing connection, shared by the stores of one database object."""

    def __init__(
        self,
        dsn: str,
        channel: str,
        connect_kwargs: dict[str, Any],
        *,
        reconnect_delay: float = 1.0,
    ) -> None:
        self.channel = channel
        self._dsn = dsn
        self._connect_kwargs = {**connect_kwargs, "autocommit": True}
        self._reconnect_delay = reconnect_delay
        self._cond = threading.Condition()
        self._latest = 0
        self._generation = 0
        self._connected = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"eventcore-listen-{channel}", daemon=True
        )

    @property
    def latest(self) -> int:
        """The highest position announced since this listener started (0 if none)."""
        return self._latest

    @property
    def connected(self) -> bool:
        """Whether the LISTEN connection is up (when down, waiters only poll)."""
        return self._connected

    def wait_beyond(self, position: int, timeout: float) -> bool:
        """Block until a notification announces a position above ``position``, the
        listener (re)connects, or ``timeout`` seconds pass. True unless it timed out."""
        with self._cond:
            generation = self._generation
            return self._cond.wait_for(
                lambda: (
                    self._latest > position or self._generation != generation or self._stop.is_set()
                ),
                timeout,
            )

    # -- the background thread -------------------------------------------------------------

    def _run(self) -> None:
        listen = sql.SQL("LISTEN {}").format(sql.Identifier(self.channel))
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, **self._connect_kwargs) as conn:
                    conn.execute(listen)
                    self._set_connected(True)
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=_TICK):
                            self._announce(note.payload)
            except psycopg.Error:
                pass  # waiters keep polling; reconnect below
            finally:
                self._set_connected(False)
            self._stop.wait(self._reconnect_delay)

    def _announce(self, payload: str) -> None:
        try:
            position = int(payload)
        except ValueError:
            return
        with self._cond:
            if position > self._latest:
                self._latest = position
                self._cond.notify_all()

    def _set_connected(self, connected: bool) -> None:
        with self._cond:
            self._connected = connected
            # Notifications may have been missed while disconnected: wake waiters so that
            # they re-read the head.
            self._generation += 1
            self._cond.notify_all()

    def start(self) -> None:
        """Start listening in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (it closes its connection within about half a second)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
