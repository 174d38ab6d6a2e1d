"""What an ASGI service needs to run EventCore commands and read models.

:class:`EventCoreService` holds the store and the projections of one service:

- ``lifespan``: opens the store and starts the projections at start-up, stops and closes
  them at shutdown (``FastAPI(lifespan=service.lifespan)``);
- ``install(app)``: correlation ids on every request and response, and library errors as
  problem details (:mod:`eventcore.web.problems`);
- ``Depends(service.writer)``: a :class:`Writer` that executes a command with the request's
  correlation id and ``Idempotency-Key``, and puts the write's position in the response;
- ``Depends(service.read_model("accounts"))``: waits (bounded) until that read model has
  reached the position the client asks for, for read-your-writes.

>>> import asyncio, httpx
>>> from fastapi import Depends, FastAPI
>>> from eventcore import InMemoryEventStore, SeededIds
>>> from eventcore.examples.bank import OpenAccount
>>> service = EventCoreService(InMemoryEventStore(), ids=SeededIds(seed=1))
>>> app = FastAPI(lifespan=service.lifespan)
>>> service.install(app)
>>> @app.post("/accounts/{account}", status_code=201)
... async def open_account(account: str, write: Writer = Depends(service.writer)) -> dict:
...     result = await write(OpenAccount(account=account, owner="Ada", initial_deposit=5))
...     return {"position": result.last_position}
>>> async def main() -> tuple[int, str, dict]:
...     async with app.router.lifespan_context(app):
...         transport = httpx.ASGITransport(app=app)
...         async with httpx.AsyncClient(transport=transport, base_url="http://bank") as client:
...             r = await client.post("/accounts/acc-1", headers={"X-Correlation-ID": "req-1"})
...             return r.status_code, r.headers["EventCore-Position"], r.json()
>>> asyncio.run(main())
(201, '2', {'position': 2})
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Final
from uuid import UUID

from fastapi import Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventcore.aio import execute_async
from eventcore.clock import IdFactory, uuid7
from eventcore.commands import Command
from eventcore.errors import ConfigurationError, EventCoreError
from eventcore.events import Metadata
from eventcore.pipeline import ExecutionResult
from eventcore.retry import RetryPolicy
from eventcore.web.headers import (
    CORRELATION_HEADER,
    IDEMPOTENCY_HEADER,
    MIN_POSITION_HEADER,
    POSITION_HEADER,
    REPLAYED_HEADER,
    InvalidHeader,
    correlation_from_headers,
    idempotency_key_from_header,
    position_from_header,
    wait_from_prefer,
)
from eventcore.web.problems import PROBLEM_JSON, Problem, ReadModelBehind, problem_for
from eventcore.web.projections import ServiceProjection

__all__ = ["CorrelationMiddleware", "EventCoreService", "Writer", "correlation_id"]

_STATE_KEY: Final = "eventcore_correlation_id"
log = logging.getLogger("eventcore.web")


# -- correlation ---------------------------------------------------------------------------


def correlation_id(request: Request) -> UUID:
    """The correlation id of ``request`` (set by :class:`CorrelationMiddleware`)."""
    found = request.scope.get("state", {}).get(_STATE_KEY)
    if not isinstance(found, UUID):
        raise ConfigurationError(
            "this request has no correlation id: call service.install(app) so that the "
            "CorrelationMiddleware runs before the endpoints"
        )
    return found


class CorrelationMiddleware:
    """Give every HTTP request a correlation id and return it in ``X-Correlation-ID``.

    The id comes from the request's ``X-Correlation-ID`` or ``traceparent``
    (:func:`~eventcore.web.headers.correlation_from_headers`), else from ``ids``. A
    malformed ``X-Correlation-ID`` is refused with a 400 problem.
    """

    def __init__(self, app: ASGIApp, ids: IdFactory = uuid7) -> None:
        self.app = app
        self.ids = ids

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refused: InvalidHeader | None = None
        try:
            found = correlation_from_headers(headers)
        except InvalidHeader as exc:
            found, refused = None, exc
        cid = found if found is not None else self.ids()
        scope.setdefault("state", {})[_STATE_KEY] = cid
        value = str(cid).encode("ascii")
        name = CORRELATION_HEADER.lower().encode("ascii")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = [(k, v) for k, v in message.get("headers", []) if k.lower() != name]
                message = {**message, "headers": [*raw, (name, value)]}
            await send(message)

        if refused is not None:
            response = _problem_response(problem_for(refused), scope.get("path", ""), cid)
            await response(scope, receive, send_with_id)
            return
        await self.app(scope, receive, send_with_id)


def _problem_response(problem: Problem, path: str, cid: UUID | None) -> JSONResponse:
    extra = {} if cid is None else {"correlation_id": str(cid)}
    headers = dict(problem.headers)
    if cid is not None:
        headers[CORRELATION_HEADER] = str(cid)
    return JSONResponse(
        problem.body(instance=path, **extra),
        status_code=problem.status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


# -- writes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Writer:
    """Executes commands for one request (made by ``Depends(service.writer)``).

    Each write carries the request's correlation id and its ``Idempotency-Key``; the
    response gets the last write's position in ``EventCore-Position`` and, when every write
    of the request repeated an earlier one, ``Idempotent-Replayed: true``. An endpoint that
    executes several commands gives the first the key itself and the n-th ``key#n``, so a
    retried request that runs its commands in the same order writes each of them once.
    """

    service: EventCoreService
    correlation_id: UUID
    idempotency_key: str | None
    response: Response
    _counts: list[int] = field(default_factory=lambda: [0, 0], init=False, repr=False)

    async def __call__(
        self, command: Command[Any], *, custom: Mapping[str, Any] | None = None
    ) -> ExecutionResult:
        """Execute ``command``; ``custom`` goes into the events' ``Metadata.custom``."""
        metadata = Metadata(correlation_id=self.correlation_id, custom=dict(custom or {}))
        self._counts[0] += 1
        key = self.idempotency_key
        if key is not None and self._counts[0] > 1:
            key = f"{key}#{self._counts[0]}"
        result = await execute_async(
            self.service.store,
            command,
            retry=self.service.retry,
            metadata=metadata,
            idempotency_key=key,
        )
        if result.last_position is not None:
            self.response.headers[POSITION_HEADER] = str(result.last_position)
        self._counts[1] += result.replayed
        if self._counts[1] == self._counts[0]:
            self.response.headers[REPLAYED_HEADER] = "true"
        elif REPLAYED_HEADER in self.response.headers:
            del self.response.headers[REPLAYED_HEADER]
        return result


# -- the service ---------------------------------------------------------------------------


class EventCoreService:
    """The store and read models of one ASGI service, and the glue to its framework.

    - ``store``: an async store (opened with ``async with`` at start-up, closed at
      shutdown) or a blocking one (its calls then run in worker threads);
    - ``projections``: :class:`~eventcore.web.projections.ServiceProjection` objects,
      started in order after the store opened and stopped in reverse order;
    - ``retry``: the retry policy of every command;
    - ``ids``: makes the correlation ids of requests that bring none (``SeededIds`` in tests);
    - ``read_timeout``: the longest a read waits for a read model (a client may ask for less
      with ``Prefer: wait=N``); ``retry_after``: the ``Retry-After`` seconds of a 503.
    """

    def __init__(
        self,
        store: Any,
        *,
        projections: Iterable[ServiceProjection] = (),
        retry: RetryPolicy | None = None,
        ids: IdFactory = uuid7,
        read_timeout: float = 5.0,
        retry_after: int = 1,
    ) -> None:
        self._projections: dict[str, ServiceProjection] = {}
        for projection in projections:
            if not isinstance(projection, ServiceProjection):
                raise ConfigurationError(
                    f"{projection!r} is not a ServiceProjection (name, start, stop, position "
                    "and wait_until); wrap a blocking projector in ThreadedProjection"
                )
            if projection.name in self._projections:
                raise ConfigurationError(f"two projections are named {projection.name!r}")
            self._projections[projection.name] = projection
        if isinstance(read_timeout, bool) or not isinstance(read_timeout, (int, float)):
            raise ConfigurationError(f"read_timeout must be seconds, got {read_timeout!r}")
        if not read_timeout >= 0:
            raise ConfigurationError(f"read_timeout must be >= 0, got {read_timeout!r}")
        if isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0:
            raise ConfigurationError(f"retry_after must be an int >= 0, got {retry_after!r}")
        self._store = store
        self.retry = retry if retry is not None else RetryPolicy()
        self.ids = ids
        self.read_timeout = float(read_timeout)
        self.retry_after = retry_after
        self._started = False

    def __repr__(self) -> str:
        state = "started" if self._started else "stopped"
        return f"EventCoreService({self._store!r}, {sorted(self._projections)}, {state})"

    @property
    def store(self) -> Any:
        """The store, once the service started (its lifespan runs)."""
        if not self._started:
            raise ConfigurationError(
                "the service is not started: pass lifespan=service.lifespan to the app (with "
                "httpx.ASGITransport, enter app.router.lifespan_context(app) yourself)"
            )
        return self._store

    def projection(self, name: str) -> ServiceProjection:
        """The projection called ``name``."""
        try:
            return self._projections[name]
        except KeyError:
            raise ConfigurationError(
                f"no projection named {name!r}; this service has {sorted(self._projections)}"
            ) from None

    @property
    def projections(self) -> Sequence[ServiceProjection]:
        return tuple(self._projections.values())

    # -- lifespan ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """Open the store and start the projections; on exit stop them and close it."""
        if self._started:
            raise ConfigurationError("the service is already started (one lifespan at a time)")
        async with contextlib.AsyncExitStack() as stack:
            if hasattr(self._store, "__aenter__"):
                await stack.enter_async_context(self._store)
            elif hasattr(self._store, "__enter__"):
                stack.enter_context(self._store)
            for projection in self._projections.values():
                await projection.start()
                stack.push_async_callback(projection.stop)
            self._started = True
            try:
                yield
            finally:
                self._started = False

    # -- framework glue ------------------------------------------------------------------------

    def install(self, app: Starlette) -> None:
        """Add the correlation middleware and the problem-details error handlers to ``app``."""
        app.add_middleware(CorrelationMiddleware, ids=self.ids)
        app.add_exception_handler(EventCoreError, self._on_library_error)
        app.add_exception_handler(RequestValidationError, self._on_invalid_request)
        app.add_exception_handler(HTTPException, self._on_http_error)
        app.add_exception_handler(Exception, self._on_unexpected)

    async def writer(
        self,
        request: Request,
        response: Response,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias=IDEMPOTENCY_HEADER,
                description="Repeat a request with the same key to retry it safely: it is "
                "written once, and the retry gets the first response.",
            ),
        ] = None,
    ) -> Writer:
        """A FastAPI dependency: the :class:`Writer` of this request."""
        key = None if idempotency_key is None else idempotency_key_from_header(idempotency_key)
        return Writer(self, correlation_id(request), key, response)

    def read_model(self, name: str) -> Callable[..., Awaitable[int]]:
        """A FastAPI dependency that waits until read model ``name`` has reached the position
        the client asks for (``EventCore-Min-Position`` header or ``min_position`` query
        parameter) and gives the position reached; ``EventCore-Position`` carries it. After
        the timeout (``read_timeout``, or less with ``Prefer: wait=N``) the request fails
        with 503 and ``Retry-After``."""
        self.projection(name)  # a typo fails when the app is built, not at the first request

        async def wait_for_read_model(
            response: Response,
            min_position: Annotated[
                int | None,
                Query(ge=0, description="Answer once the read model includes this position."),
            ] = None,
            min_position_header: Annotated[
                str | None,
                Header(
                    alias=MIN_POSITION_HEADER,
                    description="The EventCore-Position a write returned: answer once the "
                    "read model includes it (read-your-writes).",
                ),
            ] = None,
            prefer: Annotated[
                str | None, Header(description="wait=N: wait at most N seconds.")
            ] = None,
        ) -> int:
            wanted = min_position or 0
            if min_position_header is not None:
                wanted = max(wanted, position_from_header(min_position_header))
            timeout = self.read_timeout
            asked = wait_from_prefer(prefer)
            if asked is not None:
                timeout = min(timeout, asked)
                response.headers["Preference-Applied"] = f"wait={timeout:g}"
            projection = self.projection(name)
            if wanted and not await projection.wait_until(wanted, timeout):
                raise ReadModelBehind(name, wanted, await projection.position(), timeout)
            reached = await projection.position()
            response.headers[POSITION_HEADER] = str(reached)
            return reached

        return wait_for_read_model

    # -- error handlers ------------------------------------------------------------------------

    def _respond(self, request: Request, problem: Problem, exc: BaseException) -> JSONResponse:
        cid = request.scope.get("state", {}).get(_STATE_KEY)
        if problem.status >= 500:
            # A defect is an error (shown on stderr even where logging is not configured); a
            # store or projection that cannot answer, a warning; a read that waited, news.
            level = logging.ERROR if problem.status == 500 else logging.WARNING
            if isinstance(exc, ReadModelBehind):
                level = logging.INFO
            log.log(
                level,
                "%s %s failed (correlation id %s): %s: %s",
                request.method,
                request.url.path,
                cid,
                type(exc).__name__,
                exc,
                exc_info=problem.status == 500,
            )
        return _problem_response(problem, request.url.path, cid)

    async def _on_library_error(self, request: Request, exc: Exception) -> Response:
        return self._respond(request, problem_for(exc, retry_after=self.retry_after), exc)

    async def _on_invalid_request(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        if any(e["type"] == "json_invalid" for e in errors):
            problem = Problem(
                400,
                "urn:eventcore:problem:malformed-json",
                "Malformed JSON",
                "the request body is not valid JSON; nothing was written",
                {"errors": errors},
            )
        else:
            problem = Problem(
                422,
                "urn:eventcore:problem:invalid-request",
                "Invalid request",
                "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
                + "; nothing was written",
                {"errors": errors},
            )
        return self._respond(request, problem, exc)

    async def _on_http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        problem = Problem(
            exc.status_code,
            "about:blank",
            _reason(exc.status_code),
            str(exc.detail),
            {},
            dict(exc.headers or {}),
        )
        return self._respond(request, problem, exc)

    async def _on_unexpected(self, request: Request, exc: Exception) -> Response:
        return self._respond(request, problem_for(exc), exc)


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
