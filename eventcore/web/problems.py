"""Library errors as HTTP responses: RFC 9457 problem details (``application/problem+json``).

:func:`problem_for` decides, without any web framework, what an exception becomes:

>>> from eventcore import BusinessRuleViolation
>>> p = problem_for(BusinessRuleViolation("account-bob holds 30, cannot withdraw 50"))
>>> p.status, p.title, p.detail
(422, 'Business rule violated', 'account-bob holds 30, cannot withdraw 50')
>>> p.type
'urn:eventcore:problem:business-rule-violation'

- ``BusinessRuleViolation`` (and subclasses): **422**, the rule's message as the detail (the
  request is understood; the domain refuses it);
- ``ValidationError`` (a bad stream id): **422**; a bad header EventCore reads: **400**;
- ``IdempotencyConflict``: **422**, as the IETF idempotency-key draft says for a key reused
  with another payload;
- ``ConcurrencyError`` (conflicts outlasted the retries): **409** with ``Retry-After``;
- ``StoreTimeout``, ``StoreFailure``, ``LeadershipUnavailable``, ``ProjectionFailed`` and a
  read model that stayed behind (:class:`ReadModelBehind`): **503** with ``Retry-After``;
- any other ``EventCoreError`` (an undeclared stream, an undecodable row): **500**.

Server errors never carry the library's message (it may name tables or hosts); it is logged
instead, with the correlation id the response returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from eventcore.errors import (
    BusinessRuleViolation,
    ConcurrencyError,
    EventCoreError,
    IdempotencyConflict,
    LeadershipUnavailable,
    StoreFailure,
    StoreTimeout,
    ValidationError,
)
from eventcore.projections.errors import ProjectionFailed
from eventcore.web.headers import InvalidHeader

__all__ = ["PROBLEM_JSON", "Problem", "ReadModelBehind", "problem_for"]

PROBLEM_JSON: Final = "application/problem+json"
_PREFIX: Final = "urn:eventcore:problem:"


class ReadModelBehind(EventCoreError):
    """A read model did not reach the position a request asked for within its timeout.

    Nothing is wrong with the write: the projection is behind. Retry the read after a
    moment, or raise the service's ``read_timeout``.
    """

    def __init__(self, name: str, wanted: int, reached: int, timeout: float) -> None:
        self.name = name
        self.wanted = wanted
        self.reached = reached
        self.timeout = timeout
        super().__init__(
            f"read model {name!r} reached position {reached}, not {wanted}, within "
            f"{timeout:g} s; retry the request shortly (the projection is catching up)"
        )


@dataclass(frozen=True)
class Problem:
    """One problem-details body (RFC 9457) with its status and extra response headers."""

    status: int
    type: str
    title: str
    detail: str
    extensions: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self, *, instance: str | None = None, **more: Any) -> dict[str, Any]:
        """The JSON object: the standard members, then the extensions and ``more``."""
        data: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            data["instance"] = instance
        data.update(self.extensions)
        data.update(more)
        return data


def _problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    exc: BaseException,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> Problem:
    return Problem(
        status,
        _PREFIX + slug,
        title,
        detail,
        {"error": type(exc).__name__, **extensions},
        dict(headers or {}),
    )


def problem_for(exc: BaseException, *, retry_after: int = 1) -> Problem:
    """The problem details ``exc`` becomes (see the table in the module docstring).

    ``retry_after`` is the ``Retry-After`` seconds of a 503.
    """
    unavailable = {"Retry-After": str(retry_after)}
    if isinstance(exc, BusinessRuleViolation):
        return _problem(422, "business-rule-violation", "Business rule violated", str(exc), exc)
    if isinstance(exc, InvalidHeader):
        return _problem(400, "invalid-header", "Invalid header", str(exc), exc, header=exc.header)
    if isinstance(exc, ValidationError):
        return _problem(422, "invalid-input", "Invalid input", str(exc), exc)
    if isinstance(exc, IdempotencyConflict):
        return _problem(
            422,
            "idempotency-key-reused",
            "Idempotency key reused for another request",
            str(exc),
            exc,
            idempotency_key=exc.key,
        )
    if isinstance(exc, ConcurrencyError):
        conflicts = [
            {"stream": str(c.stream_id), "expected": c.expected, "actual": c.actual}
            for c in exc.conflicts
        ]
        return _problem(
            409,
            "concurrency-conflict",
            "Concurrent writes kept conflicting",
            f"other requests changed the same streams through {exc.attempts} attempts; "
            "retry the request",
            exc,
            {"Retry-After": str(retry_after)},
            attempts=exc.attempts,
            conflicts=conflicts,
        )
    if isinstance(exc, ReadModelBehind):
        return _problem(
            503,
            "read-model-behind",
            "Read model not up to date",
            str(exc),
            exc,
            unavailable,
            read_model=exc.name,
            wanted=exc.wanted,
            reached=exc.reached,
        )
    if isinstance(exc, StoreTimeout):
        return _problem(
            503,
            "store-timeout",
            "Event store timed out",
            "the event store did not answer in time; nothing was written, retry later",
            exc,
            unavailable,
        )
    if isinstance(exc, StoreFailure):
        return _problem(
            503,
            "store-unavailable",
            "Event store unavailable",
            "the event store failed; retry later",
            exc,
            unavailable,
        )
    if isinstance(exc, (LeadershipUnavailable, ProjectionFailed)):
        return _problem(
            503,
            "projection-unavailable",
            "Read model unavailable",
            "a projection of this service is not running; retry later",
            exc,
            unavailable,
        )
    return Problem(
        500,
        _PREFIX + "internal-error",
        "Internal server error",
        "the service failed to handle the request; the error is logged with its correlation id",
    )
