"""The projection contract, part two: a projection never stops inside an atomic write.

Mixed into :class:`~eventcore.testing.projection_contract.ProjectionContract`. One
``append`` — a transfer between two accounts, an order across four streams — is one atomic
write; pages end on write boundaries (``read_all``), so a checkpoint never lies inside one
and a read model spanning several streams never shows half of it, whatever the page size.
"""

from __future__ import annotations

import pytest

from eventcore.events import RecordedEvent
from eventcore.projections import CheckpointStore, EventSelector, ProjectionConfig
from eventcore.projections import run_projection as _run_projection
from eventcore.store import EventStore
from eventcore.testing.projection_helpers import Flagged, Noted
from eventcore.types import StreamId, StreamPattern, StreamPrefix

__all__ = ["WriteBoundaryProjections"]


class _SavedAt:
    """Checkpoints that remember every position saved (and pass everything on)."""

    def __init__(self, inner: CheckpointStore) -> None:
        self.inner = inner
        self.saved: list[int] = []

    def load(self, name: str) -> int | None:
        return self.inner.load(name)

    def save(self, name: str, position: int) -> None:
        self.saved.append(position)
        self.inner.save(name, position)


class _Ledger:
    """A read model over every account: money moves, the total stays. Records the total at
    every checkpoint the runner saves."""

    name = "ledger"

    def __init__(self, checkpoints: _SavedAt, selector: EventSelector | None = None) -> None:
        self.balances: dict[str, int] = {}
        self.checkpoints = checkpoints
        self.selector = selector
        self.totals: list[int] = []
        original = checkpoints.save

        def save(name: str, position: int) -> None:
            self.totals.append(sum(self.balances.values()))
            original(name, position)

        checkpoints.save = save  # type: ignore[method-assign]

    def apply(self, event: RecordedEvent) -> None:
        change = event.event.n if isinstance(event.event, Noted) else -event.event.n
        self.balances[event.stream_id] = self.balances.get(event.stream_id, 0) + change


def _transfers(store: EventStore) -> set[int]:
    """Opening deposits (one write each), then transfers of two and of four events (one
    write each); returns the position that ends each write."""
    ends: set[int] = set()
    accounts = [StreamId(f"acct-{n}") for n in range(4)]
    for sid in accounts:
        ends.add(store.append({sid: 0}, [Noted(sid, 100)])[-1].position)
    versions = dict.fromkeys(accounts, 1)
    for round_ in range(5):
        a, b, c, d = accounts[round_ % 4 :] + accounts[: round_ % 4]
        pair = store.append({a: versions[a], b: versions[b]}, [Flagged(a, 7), Noted(b, 7)])
        four = store.append(
            {s: versions[s] + (1 if s in (a, b) else 0) for s in (a, b, c, d)},
            [Flagged(a, 3), Noted(b, 1), Noted(c, 1), Noted(d, 1)],
        )
        for rec in (*pair, *four):
            versions[rec.stream_id] = rec.stream_version
        ends |= {pair[-1].position, four[-1].position}
    return ends


class WriteBoundaryProjections:
    """Needs the ``store`` and ``checkpoints`` fixtures of the projection contract."""

    # The runner under test: a subclass may run another one through the same signature
    # (the asyncio runner, through ``AsyncProjectionBridge``).
    run_projection = staticmethod(_run_projection)

    @pytest.mark.parametrize("page_size", [1, 2, 3, 5])
    def test_checkpoints_fall_only_on_write_boundaries(
        self, store: EventStore, checkpoints: CheckpointStore, page_size: int
    ) -> None:
        ends = _transfers(store)
        spy = _SavedAt(checkpoints)
        ledger = _Ledger(spy)
        report = self.run_projection(ledger, store, ProjectionConfig(spy, page_size=page_size))
        assert report.last_position == store.head()
        assert spy.saved, "the runner saved no checkpoint"
        assert set(spy.saved) <= ends, f"checkpoints inside a write: {set(spy.saved) - ends}"
        # Openings add 100 each; a transfer moves money and keeps the total, so a total
        # that is not a multiple of 100 would be half a transfer.
        assert all(total % 100 == 0 for total in ledger.totals), ledger.totals

    def test_several_stream_selectors_read_whole_writes(
        self, store: EventStore, checkpoints: CheckpointStore
    ) -> None:
        _transfers(store)
        spy = _SavedAt(checkpoints)
        selector = EventSelector(streams=(StreamPrefix("acct-0"), StreamPattern("acct-[12]")))
        ledger = _Ledger(spy, selector)
        self.run_projection(ledger, store, ProjectionConfig(spy, page_size=2))
        seen = sorted(ledger.balances)
        assert seen == ["acct-0", "acct-1", "acct-2"]
        assert spy.saved[-1] == store.head()
