"""The fold-read contract: what ``execute`` reads to fold a command's state.

A store may offer ``read_stream_events(stream_id, *, after_version=0)`` and
``read_streams_events(stream_ids)``, which give each event and its version
(:class:`~eventcore.events.VersionedEvent`) without decoding the rest of the envelope; the SQL
stores do, at about half the cost of a full read. ``execute`` reads through
:func:`eventcore.store.read_versioned` and :func:`~eventcore.store.read_versioned_streams`,
which use them when a store has them and its full reads otherwise. Either way the fold must
see exactly what ``read_stream`` gives: these tests compare the two on every store.
"""

from __future__ import annotations

from typing import Any

from eventcore.store import EventStore, read_versioned, read_versioned_streams
from eventcore.testing.contract_base import A, B, C, Deposited, StoreContractBase, Withdrawn

__all__ = ["FoldReadContract"]


def _pairs(items: Any) -> list[tuple[int, object]]:
    return [(item.stream_version, item.event) for item in items]


class FoldReadContract(StoreContractBase):
    """A command's fold reads the same events and versions as ``read_stream``."""

    def _history(self, store: EventStore) -> None:
        store.append({A: 0, B: 0}, [Deposited(A, 10), Deposited(B, 20)])
        for version in range(1, 6):
            store.append({A: version}, [Withdrawn(A, version)])
        store.append({B: 1}, [Deposited(B, 2), Withdrawn(B, 1)])

    def test_a_fold_read_gives_the_events_and_versions_of_read_stream(
        self, store: EventStore
    ) -> None:
        self._history(store)
        for sid in (A, B, C):
            assert _pairs(read_versioned(store, sid)) == _pairs(store.read_stream(sid))
            for after in (1, 3, 6, 9):
                expected = _pairs(store.read_stream(sid, after_version=after))
                assert _pairs(read_versioned(store, sid, after)) == expected
        assert _pairs(read_versioned(store, A))[0] == (1, Deposited(A, 10))
        assert [v for v, _ in _pairs(read_versioned(store, A))] == [1, 2, 3, 4, 5, 6]

    def test_a_fold_read_of_several_streams_gives_each_whole(self, store: EventStore) -> None:
        self._history(store)
        found = read_versioned_streams(store, [B, C, A, B])
        assert {sid: _pairs(found.get(sid, ())) for sid in (A, B, C)} == {
            sid: _pairs(store.read_stream(sid)) for sid in (A, B, C)
        }

    def test_a_fold_read_inside_a_session_sees_the_same(self, store: EventStore) -> None:
        self._history(store)
        expected = {sid: _pairs(store.read_stream(sid)) for sid in (A, B)}
        session_of = getattr(store, "session", None)
        assert session_of is not None, "every bundled store offers sessions"
        with session_of(lock=[A, B]) as session:  # (a store read here could wait for it)
            assert _pairs(read_versioned(session, A)) == expected[A]
            assert _pairs(read_versioned(session, B, 1)) == expected[B][1:]
            found = read_versioned_streams(session, [A, B])
        assert {sid: _pairs(found[sid]) for sid in (A, B)} == expected
