"""Checkpoints, dead letters and snapshots of one tenant: the same backends, every name and
id kept in the tenant's namespace (``@<tenant>/...``), so two tenants running the same
projection or command never share a checkpoint, a dead letter or a snapshot.

>>> from eventcore.projections import InMemoryCheckpointStore
>>> shared = InMemoryCheckpointStore()
>>> tenant_checkpoints(shared, "acme").save("balances", 7)
>>> tenant_checkpoints(shared, "beta").load("balances") is None, shared.load("@acme/balances")
(True, 7)
"""

from __future__ import annotations

import builtins
import dataclasses
from contextlib import AbstractContextManager
from typing import Any

from eventcore.tenants.scope import TenantScope

__all__ = [
    "TenantCheckpoints",
    "TenantDeadLetters",
    "TenantLeadership",
    "TenantSnapshots",
    "TenantTransactionalCheckpoints",
    "tenant_checkpoints",
    "tenant_config",
]


class TenantCheckpoints:
    """A checkpoint store seen by one tenant (see :func:`tenant_checkpoints`)."""

    def __init__(self, checkpoints: Any, tenant: str) -> None:
        self.scope = TenantScope(tenant)
        self.checkpoints = checkpoints

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.checkpoints!r}, tenant={self.scope.tenant!r})"

    def load(self, name: str) -> int | None:
        found: int | None = self.checkpoints.load(self.scope.key(name))
        return found

    def save(self, name: str, position: int) -> None:
        self.checkpoints.save(self.scope.key(name), position)


class TenantTransactionalCheckpoints(TenantCheckpoints):
    """A transactional checkpoint store seen by one tenant."""

    def transaction(self) -> AbstractContextManager[Any]:
        manager: AbstractContextManager[Any] = self.checkpoints.transaction()
        return manager

    def savepoint(self, tx: Any) -> AbstractContextManager[None]:
        manager: AbstractContextManager[None] = self.checkpoints.savepoint(tx)
        return manager

    def save_in(self, tx: Any, name: str, position: int, *, expected: int | None) -> None:
        self.checkpoints.save_in(tx, self.scope.key(name), position, expected=expected)


def tenant_checkpoints(checkpoints: Any, tenant: str) -> TenantCheckpoints:
    """``checkpoints`` seen by ``tenant``: transactional if the store is."""
    if all(callable(getattr(checkpoints, n, None)) for n in ("transaction", "save_in")):
        return TenantTransactionalCheckpoints(checkpoints, tenant)
    return TenantCheckpoints(checkpoints, tenant)


class TenantLeadership:
    """A leadership backend seen by one tenant: the tenant's projection names."""

    def __init__(self, leadership: Any, tenant: str) -> None:
        self.scope = TenantScope(tenant)
        self.leadership = leadership

    def acquire(self, name: str) -> bool:
        return bool(self.leadership.acquire(self.scope.key(name)))

    def release(self, name: str) -> None:
        self.leadership.release(self.scope.key(name))


def tenant_config(config: Any, tenant: str) -> Any:
    """A ``ProjectionConfig`` whose checkpoints, leadership and dead letters are the
    tenant's: the same backends, every projection name in the tenant's namespace."""
    return dataclasses.replace(
        config,
        checkpoints=tenant_checkpoints(config.checkpoints, tenant),
        leadership=None
        if config.leadership is None
        else TenantLeadership(config.leadership, tenant),
        dead_letters=None
        if config.dead_letters is None
        else TenantDeadLetters(config.dead_letters, tenant),
    )


class TenantDeadLetters:
    """A dead-letter store seen by one tenant: letters filed under the tenant's projection
    names, listed back under the names the tenant knows."""

    def __init__(self, dead_letters: Any, tenant: str) -> None:
        self.scope = TenantScope(tenant)
        self.dead_letters = dead_letters

    def __repr__(self) -> str:
        return f"TenantDeadLetters({self.dead_letters!r}, tenant={self.scope.tenant!r})"

    def _out(self, letter: Any) -> Any:
        return dataclasses.replace(letter, projection=self.scope.unkey(letter.projection))

    def record(self, letter: Any) -> None:
        self.dead_letters.record(
            dataclasses.replace(letter, projection=self.scope.key(letter.projection))
        )

    def list(self, name: str) -> builtins.list[Any]:
        return [self._out(x) for x in self.dead_letters.list(self.scope.key(name))]

    def get(self, name: str, position: int) -> Any:
        found = self.dead_letters.get(self.scope.key(name), position)
        return None if found is None else self._out(found)

    def discard(self, name: str, position: int | None = None) -> int:
        return int(self.dead_letters.discard(self.scope.key(name), position))


class TenantSnapshots:
    """A snapshot store seen by one tenant: snapshot ids kept under the tenant's prefix."""

    def __init__(self, snapshots: Any, tenant: str) -> None:
        self.scope = TenantScope(tenant)
        self.snapshots = snapshots

    def __repr__(self) -> str:
        return f"TenantSnapshots({self.snapshots!r}, tenant={self.scope.tenant!r})"

    def _out(self, snapshot: Any) -> Any:
        if snapshot is None:
            return None
        return dataclasses.replace(snapshot, snapshot_id=self.scope.unkey(snapshot.snapshot_id))

    def load(self, snapshot_id: str) -> Any:
        return self._out(self.snapshots.load(self.scope.key(snapshot_id)))

    def save(self, snapshot: Any) -> bool:
        inner = dataclasses.replace(snapshot, snapshot_id=self.scope.key(snapshot.snapshot_id))
        return bool(self.snapshots.save(inner))

    def list(self, *, prefix: str = "") -> builtins.list[Any]:
        found = self.snapshots.list(prefix=self.scope.key(prefix))
        return [dataclasses.replace(i, snapshot_id=self.scope.unkey(i.snapshot_id)) for i in found]

    def inspect(self, snapshot_id: str) -> Any:
        return self._out(self.snapshots.inspect(self.scope.key(snapshot_id)))

    def delete(self, snapshot_id: str) -> bool:
        return bool(self.snapshots.delete(self.scope.key(snapshot_id)))

    def clear(self, *, prefix: str = "") -> int:
        return int(self.snapshots.clear(prefix=self.scope.key(prefix)))

    def close(self) -> None:
        """Nothing to release: the snapshot store belongs to whoever made the view."""
