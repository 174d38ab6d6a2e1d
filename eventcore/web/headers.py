"""The HTTP headers EventCore reads and writes, and how their values are parsed.

Standard library only, so the rules can be checked without a web framework:

>>> correlation_from_headers({"x-correlation-id": "0191b7a4-0c7e-7cc4-8a7e-0e0a3a3d1c00"})
UUID('0191b7a4-0c7e-7cc4-8a7e-0e0a3a3d1c00')
>>> correlation_from_headers(
...     {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
UUID('4bf92f35-77b3-4da6-a3ce-929d0e0e4736')
>>> correlation_from_headers({}) is None
True
>>> idempotency_key_from_header('"order-42"')
'order-42'
>>> wait_from_prefer("respond-async, wait=2")
2.0
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final
from uuid import UUID, uuid5

from eventcore.errors import ValidationError
from eventcore.idempotency import MAX_KEY_LENGTH

__all__ = [
    "CORRELATION_HEADER",
    "CORRELATION_NAMESPACE",
    "IDEMPOTENCY_HEADER",
    "MIN_POSITION_HEADER",
    "POSITION_HEADER",
    "REPLAYED_HEADER",
    "InvalidHeader",
    "correlation_from_headers",
    "idempotency_key_from_header",
    "position_from_header",
    "wait_from_prefer",
]

CORRELATION_HEADER: Final = "X-Correlation-ID"
"""Read from the request (else ``traceparent``'s trace id); always set on the response."""
TRACEPARENT_HEADER: Final = "traceparent"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
"""The command's idempotency key: a retry with the same key and body writes nothing again."""
POSITION_HEADER: Final = "EventCore-Position"
"""On a write: the global position of its last event. On a read: the position the read
model had reached when it answered."""
MIN_POSITION_HEADER: Final = "EventCore-Min-Position"
"""On a read: answer only once the read model has reached this position (read-your-writes)."""
REPLAYED_HEADER: Final = "Idempotent-Replayed"
"""``true`` on the response to a repeated idempotency key: nothing was written this time."""

CORRELATION_NAMESPACE: Final = UUID("6f1c5e52-3a0b-5d3e-9d7e-2c8b0e5f4a11")
"""Correlation ids that are not UUIDs become ``uuid5(CORRELATION_NAMESPACE, text)``."""

_MAX_CORRELATION: Final = 200
_MAX_KEY: Final = MAX_KEY_LENGTH - 55  # room for the "#n" of a request's later commands
_TOKEN: Final = re.compile(r"[\x21-\x7e]+")  # visible ASCII, no spaces
_KEY: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # the same without '"' and '\\'
_TRACEPARENT: Final = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_WAIT: Final = re.compile(r"(?:^|[,;\s])wait\s*=\s*([0-9]+(?:\.[0-9]+)?)\s*(?:$|[,;])")


class InvalidHeader(ValidationError):
    """A request header EventCore reads has a value it cannot use; the request was refused
    before anything was written (HTTP 400)."""

    def __init__(self, header: str, problem: str) -> None:
        self.header = header
        super().__init__(f"header {header}: {problem}")


def correlation_from_headers(headers: Mapping[str, str]) -> UUID | None:
    """The correlation id a request carries, or None (the service then makes a new one).

    ``X-Correlation-ID`` wins: a UUID is taken as it is, any other token (visible ASCII, at
    most 200 characters) becomes ``uuid5(CORRELATION_NAMESPACE, token)``, the same id for
    the same token. Else a valid W3C ``traceparent`` gives its 128-bit trace id; an invalid
    one is ignored, as the Trace Context specification says. ``headers`` has lower-case
    names (as ASGI gives them).
    """
    given = headers.get(CORRELATION_HEADER.lower())
    if given is not None:
        text = given.strip()
        if not text or len(text) > _MAX_CORRELATION or not _TOKEN.fullmatch(text):
            raise InvalidHeader(
                CORRELATION_HEADER,
                f"must be a UUID or a token of 1 to {_MAX_CORRELATION} visible ASCII "
                "characters without spaces; send a UUID such as "
                "0191b7a4-0c7e-7cc4-8a7e-0e0a3a3d1c00",
            )
        try:
            return UUID(text)
        except ValueError:
            return uuid5(CORRELATION_NAMESPACE, text)
    parent = headers.get(TRACEPARENT_HEADER)
    if parent is not None:
        match = _TRACEPARENT.fullmatch(parent.strip())
        if match and match[1] != "ff" and int(match[2], 16) and int(match[3], 16):
            return UUID(hex=match[2])
    return None


def idempotency_key_from_header(value: str) -> str:
    """The key in an ``Idempotency-Key`` header: a structured-field string (``"abc"``) as
    the IETF draft writes it, or the bare token many clients send."""
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not text or len(text) > _MAX_KEY or not _KEY.fullmatch(text):
        raise InvalidHeader(
            IDEMPOTENCY_HEADER,
            f"must be 1 to {_MAX_KEY} visible ASCII characters without spaces, quotes "
            "or backslashes, such "
            'as "transfer-0191b7a4"; make one key per request and repeat it only to retry',
        )
    return text


def position_from_header(value: str, header: str = MIN_POSITION_HEADER) -> int:
    """A global position given in a header: a decimal integer >= 0."""
    text = value.strip()
    if not text.isdigit() or not text.isascii() or len(text) > 19:
        raise InvalidHeader(
            header,
            f"must be a position (an integer >= 0), got {value[:40]!r}; send the "
            f"{POSITION_HEADER} a write returned",
        )
    return int(text)


def wait_from_prefer(value: str | None) -> float | None:
    """Seconds from ``Prefer: wait=N`` (RFC 7240), or None when the header does not say."""
    if value is None:
        return None
    match = _WAIT.search(value.lower())
    return float(match[1]) if match else None
