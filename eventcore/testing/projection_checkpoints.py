"""The checkpoint and leadership part of the projection contract (behaviours 20-27):
:class:`~eventcore.testing.projection_contract.ProjectionContract` inherits these tests and
gives them their fixtures (``checkpoints``, ``dead_letters``, ``store``, ``make_store``,
``make_checkpoints``, ``make_leadership``); use that class, not this one alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from eventcore.errors import ValidationError
from eventcore.projections import CheckpointStore, DeadLetter, DeadLetterStore, Leadership
from eventcore.store import EventStore
from eventcore.testing.projection_helpers import EVENTS

__all__ = ["CheckpointAndLeadershipContract", "Factory", "StoreFactory"]

StoreFactory = Callable[..., EventStore]
Factory = Callable[[EventStore], Any]


class CheckpointAndLeadershipContract:
    """Checkpoints (behaviours 20-23) and leadership (24-27) of a projection backend."""

    # -- checkpoints (behaviours 20-23) -----------------------------------------------------

    def test_b20_save_then_load(self, checkpoints: CheckpointStore) -> None:
        checkpoints.save("orders", 5)
        assert checkpoints.load("orders") == 5

    def test_b21_a_second_save_overwrites(self, checkpoints: CheckpointStore) -> None:
        checkpoints.save("orders", 5)
        checkpoints.save("orders", 9)
        assert checkpoints.load("orders") == 9

    def test_b22_unknown_name_gives_none(self, checkpoints: CheckpointStore) -> None:
        assert checkpoints.load("never-saved") is None

    def test_b23_names_are_independent(self, checkpoints: CheckpointStore) -> None:
        checkpoints.save("orders", 5)
        checkpoints.save("stock", 2)
        assert (checkpoints.load("orders"), checkpoints.load("stock")) == (5, 2)

    def test_checkpoint_and_dead_letter_names_for_operators(
        self, checkpoints: CheckpointStore, dead_letters: DeadLetterStore
    ) -> None:
        assert checkpoints.names() == {}  # type: ignore[attr-defined]
        assert dead_letters.names() == {}  # type: ignore[attr-defined]
        checkpoints.save("b", 3)
        checkpoints.save("a", 7)
        assert checkpoints.names() == {"a": 7, "b": 3}  # type: ignore[attr-defined]
        assert list(checkpoints.names()) == ["a", "b"]  # type: ignore[attr-defined]
        for name, position in [("y", 2), ("x", 1), ("y", 5)]:
            dead_letters.record(
                DeadLetter(
                    name,
                    position,
                    UUID(int=position),
                    "s",
                    "Noted",
                    "builtins.RuntimeError",
                    "boom",
                    "",
                    1,
                    datetime(2026, 1, 1, tzinfo=UTC),
                )
            )
        assert dead_letters.names() == {"x": 1, "y": 2}  # type: ignore[attr-defined]

    def test_checkpoint_never_moves_backwards(self, checkpoints: CheckpointStore) -> None:
        checkpoints.save("orders", 9)
        checkpoints.save("orders", 3)
        assert checkpoints.load("orders") == 9
        checkpoints.save("orders", 0)
        assert checkpoints.load("orders") == 9

    def test_checkpoints_are_seen_through_a_second_handle(
        self, make_store: StoreFactory, make_checkpoints: Factory, checkpoints: CheckpointStore
    ) -> None:
        checkpoints.save("orders", 7)
        assert make_checkpoints(make_store(events=EVENTS)).load("orders") == 7

    @pytest.mark.parametrize("bad", [-1, 1.5, True, "3", None])
    def test_bad_positions_are_rejected(self, checkpoints: CheckpointStore, bad: object) -> None:
        with pytest.raises(ValidationError):
            checkpoints.save("orders", bad)  # type: ignore[arg-type]
        assert checkpoints.load("orders") is None

    # -- leadership (behaviours 24-27) ------------------------------------------------------

    def test_b24_the_first_instance_acquires(
        self, store: EventStore, make_leadership: Factory
    ) -> None:
        leader: Leadership = make_leadership(store)
        assert leader.acquire("orders") is True
        leader.release("orders")

    def test_b25_a_second_instance_is_refused(
        self, store: EventStore, make_leadership: Factory
    ) -> None:
        first: Leadership = make_leadership(store)
        second: Leadership = make_leadership(store)
        assert first.acquire("orders")
        assert second.acquire("orders") is False
        assert first.acquire("orders") is False, "leadership is not re-entrant"
        first.release("orders")

    def test_b26_projections_are_independent(
        self, store: EventStore, make_leadership: Factory
    ) -> None:
        first: Leadership = make_leadership(store)
        second: Leadership = make_leadership(store)
        assert first.acquire("orders")
        assert second.acquire("stock")
        first.release("orders")
        second.release("stock")

    def test_b27_releasing_lets_another_acquire(
        self, store: EventStore, make_leadership: Factory
    ) -> None:
        first: Leadership = make_leadership(store)
        second: Leadership = make_leadership(store)
        assert first.acquire("orders")
        first.release("orders")
        assert second.acquire("orders")
        second.release("orders")
        first.release("never-held")  # harmless

    def test_b27_the_holder_closing_lets_another_acquire(
        self, store: EventStore, make_leadership: Factory
    ) -> None:
        first = make_leadership(store)
        second: Leadership = make_leadership(store)
        assert first.acquire("orders")
        first.close()
        assert second.acquire("orders")
        second.release("orders")

    def test_holds_tells_whether_this_instance_leads(
        self, store: EventStore, make_leadership: Factory
    ) -> None:
        leader = make_leadership(store)
        if not callable(getattr(leader, "holds", None)):
            pytest.skip("this leadership backend has no holds()")
        assert leader.holds("orders") is False
        assert leader.acquire("orders")
        assert leader.holds("orders") is True
        leader.release("orders")
        assert leader.holds("orders") is False
