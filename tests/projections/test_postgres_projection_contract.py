"""The projection contract on PostgreSQL, one schema per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from eventcore.store import EventStore
from eventcore.testing.projection_contract import Factory, ProjectionContract, StoreFactory

pytest.importorskip("psycopg")


class TestPostgresProjections(ProjectionContract):
    @pytest.fixture
    def opened(self) -> Iterator[list[Any]]:
        things: list[Any] = []
        yield things
        for thing in reversed(things):
            thing.close()

    @pytest.fixture
    def make_store(
        self, postgres_dsn: str, postgres_schema: str, opened: list[Any]
    ) -> StoreFactory:
        from eventcore.stores.postgres import PostgresConfig, PostgresEventStore

        config = PostgresConfig(postgres_dsn, schema=postgres_schema, pool_max=4, poll_interval=0.2)

        def factory(**kwargs: Any) -> EventStore:
            opened.append(PostgresEventStore(config, **kwargs))
            return opened[-1]  # type: ignore[no-any-return]

        return factory

    @pytest.fixture
    def make_checkpoints(self) -> Factory:
        from eventcore.stores.postgres.projections import PostgresCheckpointStore

        return PostgresCheckpointStore

    @pytest.fixture
    def make_dead_letters(self) -> Factory:
        from eventcore.stores.postgres.projections import PostgresDeadLetterStore

        return PostgresDeadLetterStore

    @pytest.fixture
    def make_leadership(self, opened: list[Any]) -> Factory:
        from eventcore.stores.postgres.projections import PostgresLeadership

        def factory(store: Any) -> Any:
            opened.append(PostgresLeadership(store))
            return opened[-1]

        return factory


def test_a_runner_that_loses_its_leadership_stops_at_the_next_page(
    postgres_dsn: str, postgres_schema: str
) -> None:
    """The connection holding the advisory lock is killed mid-run: the runner notices
    before its next page and stops, its checkpoint at the end of the page it finished."""
    import psycopg

    from eventcore.errors import LeadershipUnavailable
    from eventcore.projections import ProjectionConfig, run_projection
    from eventcore.stores.postgres import PostgresConfig, PostgresEventStore
    from eventcore.stores.postgres.projections import PostgresCheckpointStore, PostgresLeadership
    from eventcore.testing.projection_helpers import EVENTS, Recorder, fill

    app = f"ec-{postgres_schema}"[:40]
    config = PostgresConfig(postgres_dsn, schema=postgres_schema, application_name=app)
    with (
        PostgresEventStore(config, events=EVENTS) as store,
        psycopg.connect(postgres_dsn, autocommit=True) as admin,
    ):
        fill(store, 12)
        rec = Recorder("lost")
        inner = rec.apply

        def apply_and_kill_the_lock(event: Any) -> None:
            inner(event)
            if event.position == 2:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = %s",
                    (f"{app}:lead:lost",),
                )

        rec.apply = apply_and_kill_the_lock  # type: ignore[method-assign]
        leadership = PostgresLeadership(store)
        checkpoints = PostgresCheckpointStore(store)
        run = ProjectionConfig(checkpoints, leadership=leadership, page_size=4)
        with pytest.raises(LeadershipUnavailable, match="lost its leadership"):
            run_projection(rec, store, run)
        assert rec.positions == [1, 2, 3, 4]
        assert checkpoints.load("lost") == 4
        assert leadership.acquire("lost"), "the lock went with the killed session"
        leadership.close()
