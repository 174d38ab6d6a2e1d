"""The check the connection pool runs on every checkout, without a round trip.

psycopg_pool's ``ConnectionPool.check_connection`` sends an empty query on every checkout:
one extra round trip per read and per append. A healthy idle connection has nothing to
read, while one the server closed (``pg_terminate_backend``, a restart, a proxy or network
failure) has its termination message or end-of-file waiting on the socket. So the check
looks at the socket without blocking and runs the real query only when something is there;
a connection that fails it is discarded by the pool, which hands out another one.

A connection that dies after this check fails its statement: reads are retried once on a
fresh connection, appends raise :class:`~eventcore.errors.StoreFailure` (the append is
atomic: it committed entirely or not at all), and the pool discards the broken connection
when it comes back.
"""

from __future__ import annotations

import select
from typing import Any

from psycopg_pool import ConnectionPool

__all__ = ["check_idle_connection"]


def check_idle_connection(conn: Any) -> None:
    """Return if ``conn`` looks healthy; otherwise run the real check, which raises for a
    broken connection (and passes for one that merely had a notice waiting)."""
    if conn.closed or conn.broken or _readable(conn.pgconn.socket):
        ConnectionPool.check_connection(conn)


def _readable(fd: int) -> bool:
    """Whether ``fd`` has input (or end-of-file) waiting, without blocking."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)  # pragma: no cover - Windows
    return bool(readable)
