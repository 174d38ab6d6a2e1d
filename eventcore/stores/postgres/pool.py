"""Whether a pooled connection can be used, without a round trip in the common case.

psycopg_pool's own ``check`` sends an empty query on every checkout (one extra round trip
per read and per append), and when it fails the pool backs off before trying the next
connection (a second, then two...), so after a failover that killed every idle connection
the first command waited out the backoff. :class:`~eventcore.stores.postgres.PostgresDatabase`
therefore checks connections itself with :func:`looks_healthy`: a healthy idle connection has
nothing to read, while one the server closed (``pg_terminate_backend``, a restart, a proxy
or network failure) has its termination message or end-of-file waiting on the socket; only
then is the real query sent. A dead connection goes back to the pool, which discards it and
opens another; the first one also makes the database check every idle connection at once.

A connection that dies after this check fails its statement: reads are retried once on a
fresh connection, writes raise :class:`~eventcore.errors.StoreFailure` (the write is atomic:
it committed entirely or not at all; an idempotency key makes its retry harmless).
"""

from __future__ import annotations

import select
from collections.abc import Mapping
from typing import Any

from psycopg_pool import ConnectionPool

__all__ = ["looks_healthy", "readable", "usage"]


def looks_healthy(conn: Any) -> bool:
    """True if ``conn`` can be used: it is open and has no input waiting, or it has (a
    notice, a termination message) and passes the real check."""
    if conn.closed or conn.broken:
        return False
    if not readable(conn.pgconn.socket):
        return True
    try:
        ConnectionPool.check_connection(conn)
    except Exception:
        return False
    return True


def readable(fd: int) -> bool:
    """Whether ``fd`` has input (or end-of-file) waiting, without blocking."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)  # pragma: no cover - Windows
    return bool(readable)


def usage(stats: Mapping[str, int], pool_max: int) -> dict[str, int]:
    """A psycopg pool's ``get_stats()`` (blocking or asyncio) as the pool metric reads it:
    ``{"used": n, "idle": n, "max": n, "waiting": n}``.

    >>> usage({"pool_size": 3, "pool_available": 1, "requests_waiting": 2}, 4)
    {'used': 2, 'idle': 1, 'max': 4, 'waiting': 2}
    """
    size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
    return {
        "used": max(0, size - idle),
        "idle": idle,
        "max": pool_max,
        "waiting": stats.get("requests_waiting", 0),
    }
