"""Partitioned projections: several workers share one projection, each owning some streams.

A :class:`Partitioning` splits the streams into ``count`` partitions by a stable hash of the
stream id (the same in every process, machine and Python version; not Python's ``hash``).
Partition ``i`` of projection ``orders`` is a projection of its own, named
``orders.p<i>of<count>``, with its own checkpoint and its own leadership; it applies the
events of its streams in log order, so **the per-stream ordering guarantee holds** (all of a
stream's events go to one partition). Events of other partitions move its checkpoint on
without being applied.

A :class:`PartitionWorker` runs in each worker process. It joins the group by taking a free
*member slot* (a leadership name of its own), counts the live members by probing the other
slots, and runs its fair share, ``ceil(count / members)``, of the partitions nobody leads.
When a worker dies its leaderships die with it (the PostgreSQL advisory lock with its
connection, the SQLite file lock with its process), and the others pick its partitions up at
their next rebalance; when a worker joins, the others hand over what exceeds their new fair
share (stopping a partition saves its checkpoint first). Workers talk to nothing but the
store's database: no cluster of their own.

>>> from eventcore import InMemoryEventStore, StreamId
>>> from eventcore.projections import (
...     InMemoryCheckpointStore, InProcessLeadership, ProjectionConfig, projector)
>>> parts = Partitioning(4)
>>> parts.of(StreamId("account-1")), parts.of(StreamId("account-2"))
(0, 1)
>>> parts.name("balances", 3)
'balances.p3of4'
>>> seen = []
>>> @projector("balances")
... def balances(event):
...     seen.append(event.position)
>>> config = ProjectionConfig(InMemoryCheckpointStore(), leadership=InProcessLeadership())
>>> with PartitionWorker(balances, InMemoryEventStore(), config, parts) as worker:
...     worker.rebalance()
...     sorted(worker.partitions)
[0, 1, 2, 3]
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

from eventcore.errors import ConfigurationError
from eventcore.events import RecordedEvent
from eventcore.projections.api import (
    DEFAULT_ERROR_POLICY,
    ErrorPolicy,
    EventSelector,
    check_projection_name,
    is_transactional,
)
from eventcore.projections.checkpoints import wait_until
from eventcore.projections.config import ProjectionConfig
from eventcore.projections.leadership import Leadership
from eventcore.projections.runner import ProjectionHandle
from eventcore.store import EventStore, check_timeout

__all__ = ["PartitionProjector", "PartitionWorker", "Partitioning", "partition"]


@dataclass(frozen=True)
class Partitioning:
    """``count`` partitions of the streams, by a stable hash of the stream id.

    ``of(stream_id)`` is ``blake2b(stream_id as UTF-8, 8 bytes) % count``: every process
    agrees on it, today and after an upgrade. Changing ``count`` moves streams between
    partitions, so it is a new projection (new names, new checkpoints): rebuild it.
    """

    count: int

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ConfigurationError(
                f"Partitioning(count) must be an int >= 1, got {self.count!r}; one partition "
                "per worker you plan to run (or a few more, to rebalance finely) is typical"
            )

    def of(self, stream_id: object) -> int:
        """The partition of ``stream_id`` (a ``StreamId`` or its text)."""
        digest = hashlib.blake2b(str(stream_id).encode("utf-8"), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.count

    def name(self, projection: str, index: int) -> str:
        """The projection name of partition ``index``: its checkpoint and leadership name."""
        self._check_index(index)
        return f"{projection}.p{index}of{self.count}"

    def _check_index(self, index: object) -> int:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.count:
            raise ConfigurationError(
                f"partition index must be an int from 0 to {self.count - 1}, got {index!r}"
            )
        return index


@dataclass(frozen=True)
class PartitionProjector:
    """Partition ``index`` of ``inner``: applies the events of its streams, skips others.

    Keeps the inner projector's selector (filtered by the store) and error policy; the
    transactional form is :class:`TransactionalPartitionProjector`. Made by
    :func:`partition`.
    """

    inner: Any
    partitioning: Partitioning
    index: int
    name: str = field(init=False)
    selector: EventSelector | None = field(init=False)
    error_policy: ErrorPolicy = field(init=False)

    def __post_init__(self) -> None:
        base = check_projection_name(getattr(self.inner, "name", None))
        object.__setattr__(self, "name", self.partitioning.name(base, self.index))
        object.__setattr__(self, "selector", getattr(self.inner, "selector", None))
        policy = getattr(self.inner, "error_policy", DEFAULT_ERROR_POLICY)
        object.__setattr__(self, "error_policy", policy)

    def owns(self, event: RecordedEvent) -> bool:
        """Whether ``event``'s stream belongs to this partition."""
        return self.partitioning.of(event.stream_id) == self.index

    def apply(self, event: RecordedEvent) -> None:
        if self.owns(event):
            self.inner.apply(event)


@dataclass(frozen=True)
class TransactionalPartitionProjector(PartitionProjector):
    """:class:`PartitionProjector` of a transactional projector (exactly-once per event)."""

    transactional: bool = field(default=True, init=False)

    def apply(self, event: RecordedEvent, tx: Any) -> None:  # type: ignore[override]
        if self.owns(event):
            self.inner.apply(event, tx)


def partition(projector: Any, partitioning: Partitioning, index: int) -> PartitionProjector:
    """Partition ``index`` of ``projector`` as a projector of its own (run it with
    ``run_projection`` or ``running_projection`` like any other)."""
    if not isinstance(partitioning, Partitioning):
        raise ConfigurationError(
            f"partitioning must be a Partitioning, got {type(partitioning).__name__}; "
            "for example Partitioning(4)"
        )
    partitioning._check_index(index)
    if is_transactional(projector):
        return TransactionalPartitionProjector(projector, partitioning, index)
    return PartitionProjector(projector, partitioning, index)


class _Held:
    """The worker's leadership of one partition, handed to that partition's runner: the
    worker has acquired it already, the runner releases it when it ends."""

    def __init__(self, leadership: Leadership, name: str) -> None:
        self._leadership = leadership
        self._name = name

    def acquire(self, name: str) -> bool:
        return name == self._name

    def release(self, name: str) -> None:
        self._leadership.release(name)

    def holds(self, name: str) -> bool:
        holds = getattr(self._leadership, "holds", None)
        return bool(holds(name)) if callable(holds) else name == self._name


class PartitionWorker:
    """One worker of a partitioned projection; run one per process (or machine).

    ``config.leadership`` must reach every worker: :class:`InProcessLeadership` for threads
    of one process, ``SqliteLeadership`` for processes on one machine, ``PostgresLeadership``
    across machines. ``start()`` rebalances every ``rebalance_interval`` seconds in a
    background thread; ``rebalance()`` does one round now (tests and notebooks).
    """

    def __init__(
        self,
        projector: Any,
        store: EventStore,
        config: ProjectionConfig,
        partitioning: Partitioning,
        *,
        rebalance_interval: float = 1.0,
        on_error: Callable[[int, BaseException], None] | None = None,
    ) -> None:
        if not isinstance(config, ProjectionConfig):
            raise ConfigurationError(
                f"config must be a ProjectionConfig, got {type(config).__name__}"
            )
        if config.leadership is None:
            raise ConfigurationError(
                "a partitioned projection needs config.leadership shared by all its workers "
                "(InProcessLeadership, SqliteLeadership or PostgresLeadership): without it "
                "two workers would run the same partition"
            )
        if not isinstance(partitioning, Partitioning):
            raise ConfigurationError(
                f"partitioning must be a Partitioning, got {type(partitioning).__name__}"
            )
        interval = rebalance_interval
        if isinstance(interval, bool) or not isinstance(interval, (int, float)):
            raise ConfigurationError(f"rebalance_interval must be seconds, got {interval!r}")
        if not (math.isfinite(interval) and interval > 0):
            raise ConfigurationError(f"rebalance_interval must be seconds > 0, got {interval!r}")
        self.name = check_projection_name(getattr(projector, "name", None))
        self.projector = projector
        self.store = store
        self.config = config
        self.partitioning = partitioning
        self.rebalance_interval = float(interval)
        self.on_error = on_error
        self.leadership: Leadership = config.leadership
        self.slot: int | None = None
        self.members = 0
        self.errors: dict[int, BaseException] = {}
        self._running: dict[int, ProjectionHandle] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"PartitionWorker({self.name!r}, slot={self.slot}, members={self.members}, "
            f"partitions={sorted(self._running)})"
        )

    @property
    def partitions(self) -> frozenset[int]:
        """The partitions this worker runs now."""
        with self._lock:
            return frozenset(i for i, h in self._running.items() if h.running)

    def _slot_name(self, slot: int) -> str:
        return f"{self.name}.member{slot}of{self.partitioning.count}"

    def _join(self) -> None:
        if self.slot is not None:
            return
        for slot in range(self.partitioning.count):
            if self.leadership.acquire(self._slot_name(slot)):
                self.slot = slot
                return

    def _count_members(self) -> int:
        members = 0
        for slot in range(self.partitioning.count):
            if slot == self.slot:
                members += 1
                continue
            name = self._slot_name(slot)
            if self.leadership.acquire(name):  # free: nobody there
                self.leadership.release(name)
            else:
                members += 1
        return max(members, 1)

    def rebalance(self) -> None:
        """One round: join, count the members, drop extra partitions, take free ones."""
        with self._lock:
            self._reap()
            self._join()
            if self.slot is None:  # more workers than partitions: stand by
                self.members = self.partitioning.count + 1
                return
            self.members = self._count_members()
            share = math.ceil(self.partitioning.count / self.members)
            for index in sorted(self._running, reverse=True)[: max(0, len(self._running) - share)]:
                self._stop_partition(index)
            count = self.partitioning.count
            start = (self.slot * count) // self.members
            for offset in range(count):
                if len(self._running) >= share:
                    break
                index = (start + offset) % count
                if index not in self._running:
                    self._start_partition(index)

    def _reap(self) -> None:
        """Forget partitions whose runner ended (failed, or lost its leadership)."""
        for index, handle in list(self._running.items()):
            if not handle.running:
                del self._running[index]
                if handle.error is not None:
                    self.errors[index] = handle.error
                    if self.on_error is not None:
                        self.on_error(index, handle.error)

    def _start_partition(self, index: int) -> None:
        projector = partition(self.projector, self.partitioning, index)
        if not self.leadership.acquire(projector.name):
            return
        config = replace(
            self.config,
            leadership=_Held(self.leadership, projector.name),
            wait_for_leadership=False,
        )
        try:
            handle = ProjectionHandle(projector, self.store, config)
            handle.start()
        except BaseException:
            self.leadership.release(projector.name)
            raise
        self._running[index] = handle

    def _stop_partition(self, index: int) -> None:
        handle = self._running.pop(index)
        handle.stop()
        handle.join(30.0)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.rebalance()
            except Exception as exc:  # a store hiccup: try again next round
                self.errors[-1] = exc
            self._stop.wait(self.rebalance_interval)

    def start(self) -> PartitionWorker:
        """Rebalance now and then every ``rebalance_interval`` seconds, in a thread."""
        if self._thread is None:
            self.rebalance()
            self._thread = threading.Thread(
                target=self._loop, name=f"eventcore-partitions-{self.name}", daemon=True
            )
            self._thread.start()
        return self

    def wait_until(self, position: int, timeout: float = 10.0) -> bool:
        """Whether every partition's checkpoint reached ``position`` within ``timeout``
        (whichever worker runs it). Read-your-writes for a partitioned read model."""
        deadline = time.monotonic() + check_timeout(timeout)
        for index in range(self.partitioning.count):
            name = self.partitioning.name(self.name, index)
            remaining = max(0.0, deadline - time.monotonic())
            if not wait_until(self.config.checkpoints, name, position, remaining):
                return False
        return True

    def stop(self) -> None:
        """Stop rebalancing, stop every partition (saving checkpoints), leave the group."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)
            self._thread = None
        with self._lock:
            for index in list(self._running):
                self._stop_partition(index)
            if self.slot is not None:
                self.leadership.release(self._slot_name(self.slot))
                self.slot = None

    def __enter__(self) -> PartitionWorker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
