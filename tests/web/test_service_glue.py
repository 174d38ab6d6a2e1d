"""eventcore.web on small apps over faulty stores: the statuses of conflicts, timeouts, store
failures and defects; the lifespan; the projection adapter; the header parsers."""

# No "from __future__ import annotations": FastAPI must resolve the endpoints' annotations,
# which name the service made inside make_app().
import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Self

import httpx
import pytest
from fastapi import Depends, FastAPI
from web_support import drive

from eventcore import (
    InMemoryEventStore,
    RecordedEvent,
    RetryPolicy,
    SeededIds,
    StoreFailure,
    StoreTimeout,
    StreamId,
    TickingClock,
)
from eventcore.errors import ConfigurationError, UndeclaredStream
from eventcore.examples.bank import EVENTS, OpenAccount
from eventcore.projections import InMemoryCheckpointStore, ProjectionConfig, ProjectionFailed
from eventcore.testing import ConflictInjectingStore, LostAcknowledgementStore, StoreWrapper
from eventcore.web import (
    PROBLEM_JSON,
    EventCoreService,
    InvalidHeader,
    ThreadedProjection,
    Writer,
    correlation_from_headers,
    problem_for,
)
from eventcore.web.headers import (
    idempotency_key_from_header,
    position_from_header,
    wait_from_prefer,
)

NO_WAIT = RetryPolicy(max_retries=2, base_delay=0.0, max_delay=0.0, jitter=0.0)


class TimingOut(StoreWrapper):
    def append(self, *args: Any, **kwargs: Any) -> list[RecordedEvent]:
        raise StoreTimeout("append", "lock timeout expired (host db.internal, table events)")


class Broken(StoreWrapper):
    def append(self, *args: Any, **kwargs: Any) -> list[RecordedEvent]:
        raise StoreFailure("append", "connection refused to db.internal:5432")


class Defective(StoreWrapper):
    def append(self, *args: Any, **kwargs: Any) -> list[RecordedEvent]:
        raise UndeclaredStream(StreamId("secret-stream"), "Leaked", ["account-1"])


def memory() -> InMemoryEventStore:
    return InMemoryEventStore(events=EVENTS, clock=TickingClock(), ids=SeededIds(seed=3))


def make_app(store: Any, **options: Any) -> tuple[FastAPI, EventCoreService]:
    service = EventCoreService(store, retry=NO_WAIT, ids=SeededIds(seed=4), **options)
    app = FastAPI(lifespan=service.lifespan)
    service.install(app)

    @app.post("/open/{account}", status_code=201)
    async def open_account(
        account: str, write: Annotated[Writer, Depends(service.writer)]
    ) -> dict[str, Any]:
        result = await write(
            OpenAccount(account=StreamId(account), owner="O"), custom={"via": "http"}
        )
        return {"position": result.last_position}

    @app.post("/pair/{first}/{second}", status_code=201)
    async def open_two(
        first: str, second: str, write: Annotated[Writer, Depends(service.writer)]
    ) -> list[int | None]:
        one = await write(OpenAccount(account=StreamId(first), owner="O"))
        two = await write(OpenAccount(account=StreamId(second), owner="P"))
        return [one.last_position, two.last_position]

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("password=hunter2 in an unexpected place")

    return app, service


def call(app: FastAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def scenario(client: httpx.AsyncClient, _: FastAPI) -> httpx.Response:
        return await client.request(method, path, **kwargs)

    # Starlette re-raises an unhandled error after sending the 500, for the server to log.
    response: httpx.Response = asyncio.run(drive(app, scenario, raise_app_exceptions=False))
    return response


def test_conflicts_that_outlast_the_retries_are_409() -> None:
    inner = memory()
    app, _ = make_app(ConflictInjectingStore(inner, conflicts=100))
    r = call(app, "POST", "/open/account-1")
    assert r.status_code == 409
    assert r.headers["content-type"] == PROBLEM_JSON
    assert r.headers["Retry-After"] == "1"
    body = r.json()
    assert body["type"] == "urn:eventcore:problem:concurrency-conflict"
    assert body["attempts"] == 3
    assert body["conflicts"][0]["stream"] == "account-1"
    assert inner.head() == 0


@pytest.mark.parametrize(
    ("wrapper", "slug"), [(TimingOut, "store-timeout"), (Broken, "store-unavailable")]
)
def test_a_store_that_times_out_or_fails_is_503_without_its_message(
    wrapper: Callable[[InMemoryEventStore], StoreWrapper],
    slug: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, _ = make_app(wrapper(memory()), retry_after=7)
    r = call(app, "POST", "/open/account-1", headers={"X-Correlation-ID": "req-9"})
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "7"
    body = r.json()
    assert body["type"] == f"urn:eventcore:problem:{slug}"
    assert "db.internal" not in r.text
    assert body["correlation_id"] in caplog.text  # the operator finds the cause in the log
    assert "db.internal" in caplog.text


def test_a_lost_acknowledgement_retried_with_the_same_key_is_answered_once() -> None:
    store = LostAcknowledgementStore(memory(), losses=1)
    app, _ = make_app(store)

    async def scenario(client: httpx.AsyncClient, _: FastAPI) -> list[httpx.Response]:
        key = {"Idempotency-Key": "open-account-1"}
        first = await client.post("/open/account-1", headers=key)
        retry = await client.post("/open/account-1", headers=key)
        return [first, retry]

    first, retry = asyncio.run(drive(app, scenario))
    assert first.status_code == 503  # the commit happened, its acknowledgement was lost
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == {"position": 1}
    assert store.inner.head() == 1


def test_a_request_with_two_commands_is_retried_safely_with_one_key() -> None:
    store = memory()
    app, _ = make_app(store)

    async def scenario(client: httpx.AsyncClient, _: FastAPI) -> list[httpx.Response]:
        key = {"Idempotency-Key": "pair-1"}
        first = await client.post("/pair/account-1/account-2", headers=key)
        again = await client.post("/pair/account-1/account-2", headers=key)
        return [first, again]

    first, again = asyncio.run(drive(app, scenario))
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() == [1, 2]
    assert again.headers["EventCore-Position"] == "2"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert store.head() == 2
    assert store.read_idempotent_write("pair-1#2") is not None


def test_defects_are_500_and_hide_their_message(caplog: pytest.LogCaptureFixture) -> None:
    app, _ = make_app(Defective(memory()))
    r = call(app, "POST", "/open/account-1")
    assert r.status_code == 500
    assert r.json()["type"] == "urn:eventcore:problem:internal-error"
    assert "secret-stream" not in r.text and "secret-stream" in caplog.text
    r = call(app, "GET", "/boom")
    assert r.status_code == 500
    assert r.headers["content-type"] == PROBLEM_JSON
    assert "hunter2" not in r.text
    assert r.json()["correlation_id"] == r.headers["X-Correlation-ID"]


def test_writes_carry_the_custom_metadata_and_the_correlation_id() -> None:
    store = memory()
    app, _ = make_app(store)
    r = call(
        app,
        "POST",
        "/open/account-1",
        headers={"X-Correlation-ID": "0191b7a4-0c7e-7cc4-8a7e-0e0a3a3d1c00"},
    )
    assert r.status_code == 201
    (event,) = store.read_all()
    assert event.metadata.custom == {"via": "http"}
    assert str(event.metadata.correlation_id) == r.headers["X-Correlation-ID"]


# -- lifespan and projections -----------------------------------------------------------------


@dataclass
class Spy:
    """A ServiceProjection that records what the service asked of it."""

    name: str
    calls: list[str]

    async def start(self) -> None:
        self.calls.append(f"start {self.name}")

    async def stop(self) -> None:
        self.calls.append(f"stop {self.name}")

    async def position(self) -> int:
        return 0

    async def wait_until(self, position: int, timeout: float) -> bool:
        return position == 0


class ClosingStore(InMemoryEventStore):
    def __init__(self, calls: list[str]) -> None:
        super().__init__()
        self.calls = calls

    def __enter__(self) -> Self:
        self.calls.append("open store")
        return self

    def __exit__(self, *exc: object) -> None:
        self.calls.append("close store")


def test_the_lifespan_opens_the_store_then_starts_projections_and_undoes_it_in_reverse() -> None:
    calls: list[str] = []
    service = EventCoreService(ClosingStore(calls), projections=[Spy("a", calls), Spy("b", calls)])
    with pytest.raises(ConfigurationError, match="not started"):
        _ = service.store

    async def main() -> None:
        async with service.lifespan():
            assert service.store is not None
            calls.append("serving")
            with pytest.raises(ConfigurationError, match="already started"):
                async with service.lifespan():
                    pass

    asyncio.run(main())
    assert calls == [
        "open store",
        "start a",
        "start b",
        "serving",
        "stop b",
        "stop a",
        "close store",
    ]
    assert "stopped" in repr(service)


def test_a_service_refuses_what_is_not_a_projection_and_unknown_read_models() -> None:
    with pytest.raises(ConfigurationError, match="not a ServiceProjection"):
        EventCoreService(memory(), projections=[object()])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="two projections are named 'a'"):
        EventCoreService(memory(), projections=[Spy("a", []), Spy("a", [])])
    with pytest.raises(ConfigurationError, match="no projection named 'typo'"):
        EventCoreService(memory(), projections=[Spy("a", [])]).read_model("typo")
    with pytest.raises(ConfigurationError, match="read_timeout"):
        EventCoreService(memory(), read_timeout=-1)
    with pytest.raises(ConfigurationError, match="retry_after"):
        EventCoreService(memory(), retry_after=1.5)  # type: ignore[arg-type]


def test_a_threaded_projection_follows_the_log_and_reports_its_failure_at_stop() -> None:
    store = memory()
    applied: list[int] = []

    class Fragile:
        name = "fragile"

        def apply(self, event: RecordedEvent) -> None:
            if event.position == 2:
                raise ValueError("cannot apply the second event")
            applied.append(event.position)

    from eventcore.projections import ErrorPolicy

    Fragile.error_policy = ErrorPolicy.stop()  # type: ignore[attr-defined]
    projection = ThreadedProjection(
        Fragile(), store, ProjectionConfig(InMemoryCheckpointStore(), poll_interval=0.02)
    )

    async def main() -> None:
        await projection.start()
        with pytest.raises(ConfigurationError, match="already running"):
            await projection.start()
        store.append({StreamId("account-1"): 0}, [EVENTS[0](StreamId("account-1"), "O")])
        assert await projection.wait_until(1, timeout=5)
        assert await projection.position() == 1
        store.append({StreamId("account-2"): 0}, [EVENTS[0](StreamId("account-2"), "P")])
        with pytest.raises(ProjectionFailed):
            await projection.wait_until(2, timeout=5)
        with pytest.raises(ProjectionFailed):
            await projection.stop()

    asyncio.run(main())
    assert applied == [1]


def test_a_read_waits_only_as_long_as_the_projection_runs() -> None:
    projection = ThreadedProjection(
        _Named("x"), memory(), ProjectionConfig(InMemoryCheckpointStore())
    )

    async def main() -> bool:
        return await projection.wait_until(5, timeout=5)  # never started: no wait

    assert asyncio.run(main()) is False
    assert repr(projection) == "ThreadedProjection('x', stopped)"


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def apply(self, event: RecordedEvent) -> None:
        pass


# -- headers and problems without a framework ------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},  # version ff
        {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"},  # zero parent
        {"traceparent": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"},  # upper case
        {"traceparent": "garbage"},
    ],
)
def test_an_invalid_traceparent_is_ignored(headers: Mapping[str, str]) -> None:
    assert correlation_from_headers(headers) is None


@pytest.mark.parametrize("value", ["", " ", "a b", "é", "x" * 201])
def test_a_correlation_id_must_be_a_short_visible_token(value: str) -> None:
    with pytest.raises(InvalidHeader, match="X-Correlation-ID"):
        correlation_from_headers({"x-correlation-id": value})


@pytest.mark.parametrize("value", ['""', "a b", "x" * 256, '"unterminated'])
def test_an_idempotency_key_must_be_a_short_visible_token(value: str) -> None:
    with pytest.raises(InvalidHeader, match="Idempotency-Key"):
        idempotency_key_from_header(value)


@pytest.mark.parametrize("value", ["-1", "1.5", "", "٣", "9" * 20])
def test_a_position_header_is_a_non_negative_integer(value: str) -> None:
    with pytest.raises(InvalidHeader, match="EventCore-Min-Position"):
        position_from_header(value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("wait=0", 0.0),
        ("handling=lenient; wait=10", 10.0),
        ("return=minimal", None),
        ("wait=soon", None),
    ],
)
def test_prefer_wait(value: str | None, seconds: float | None) -> None:
    assert wait_from_prefer(value) == seconds


def test_problem_details_are_plain_json_objects() -> None:
    body = problem_for(StoreTimeout("append", "x"), retry_after=3)
    assert body.headers == {"Retry-After": "3"}
    assert body.body(instance="/t", correlation_id="c") == {
        "type": "urn:eventcore:problem:store-timeout",
        "title": "Event store timed out",
        "status": 503,
        "detail": "the event store did not answer in time; nothing was written, retry later",
        "instance": "/t",
        "error": "StoreTimeout",
        "correlation_id": "c",
    }
    assert problem_for(KeyError("k")).status == 500
