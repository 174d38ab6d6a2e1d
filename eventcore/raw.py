"""Stored events as rows, undecoded: for moving a log between stores, archiving and checking.

A :class:`RawEvent` is one stored event exactly as a store keeps it — the envelope and the
JSON text of its data and metadata — without needing the event classes. Stores export them
(``store.export_rows``) and import them (``store.import_rows``) unchanged, so a log moved
from SQLite to PostgreSQL and back reads the same events: ids, positions, versions, times,
metadata and atomic writes kept. JSON Lines is their file format:

>>> from datetime import UTC, datetime
>>> from uuid import UUID
>>> row = RawEvent(1, "acct-1", 1, "Deposited", 1, '{"account":"acct-1","amount":5}',
...                UUID(int=1), datetime(2026, 1, 1, tzinfo=UTC),
...                '{"causation_id":null,"correlation_id":null,"custom":{}}', 1)
>>> RawEvent.from_json_line(row.to_json_line()) == row
True

Imports write nothing unless the rows continue the log exactly (the next position, the next
version of each stream, whole writes), and never through the immutability triggers:
rows are only ever added after the head.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from eventcore.errors import DeserializationError, ValidationError
from eventcore.types import StreamId

__all__ = ["FORMAT", "LogProblem", "RawEvent", "StoreStats", "StreamInfo", "check_continues"]

FORMAT: Final = "eventcore-raw/1"
"""The name and version of the JSON Lines format (see :meth:`RawEvent.to_json_line`)."""


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One stored event, undecoded. ``write_end`` is the last position of its atomic write."""

    position: int
    stream_id: str
    stream_version: int
    event_type: str
    schema_version: int
    data: str
    event_id: UUID
    recorded_at: datetime
    metadata: str
    write_end: int

    def to_json_line(self) -> str:
        """One line of JSON (no newline), ``data`` and ``metadata`` kept as their text."""
        return json.dumps(
            {
                "position": self.position,
                "stream_id": self.stream_id,
                "stream_version": self.stream_version,
                "event_type": self.event_type,
                "schema_version": self.schema_version,
                "data": self.data,
                "event_id": str(self.event_id),
                "recorded_at": self.recorded_at.isoformat(),
                "metadata": self.metadata,
                "write_end": self.write_end,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json_line(cls, line: str | bytes) -> RawEvent:
        """Parse :meth:`to_json_line`; anything else raises ``DeserializationError``."""
        try:
            item = json.loads(line)
            if not isinstance(item, Mapping):
                raise TypeError("not a JSON object")
            return cls.checked(
                position=item["position"],
                stream_id=item["stream_id"],
                stream_version=item["stream_version"],
                event_type=item["event_type"],
                schema_version=item["schema_version"],
                data=item["data"],
                event_id=UUID(item["event_id"]),
                recorded_at=datetime.fromisoformat(item["recorded_at"]),
                metadata=item["metadata"],
                write_end=item["write_end"],
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise DeserializationError(f"not an EventCore raw event line: {exc}") from None

    @classmethod
    def checked(cls, **fields: Any) -> RawEvent:
        """A raw event from fields that were not written by a store (a file, another tool):
        every field checked, ``ValueError``/``TypeError`` naming the bad one."""
        for name in ("position", "stream_version", "schema_version", "write_end"):
            value = fields[name]
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
                raise ValueError(f"{name} must be an int from 1 to 2**63-1, got {value!r}")
        if fields["write_end"] < fields["position"]:
            raise ValueError(f"write_end {fields['write_end']} is before the position")
        StreamId(fields["stream_id"])
        for name in ("event_type", "data", "metadata"):
            if not isinstance(fields[name], str) or not fields[name]:
                raise TypeError(f"{name} must be a non-empty str, got {fields[name]!r}")
        for name in ("data", "metadata"):
            json.loads(fields[name])
        if not isinstance(fields["event_id"], UUID):
            raise TypeError(f"event_id must be a UUID, got {fields['event_id']!r}")
        at = fields["recorded_at"]
        if not isinstance(at, datetime) or at.tzinfo is None:
            raise TypeError(f"recorded_at must be an aware datetime, got {at!r}")
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """One stream: its version (event count), its first and last positions and times."""

    stream_id: StreamId
    version: int
    first_position: int
    last_position: int
    first_recorded_at: datetime
    last_recorded_at: datetime


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What ``eventcore info`` shows: the kind of store, its schema, its size."""

    kind: str
    schema_version: int
    head: int
    events: int
    streams: int


@dataclass(frozen=True, slots=True)
class LogProblem:
    """One thing ``store.verify()`` (and ``eventcore verify``) found wrong with a stored log.

    ``kind``: ``"gap"`` (positions missing), ``"order"`` (a position not above the one before
    it), ``"version"`` (a stream's versions not contiguous), ``"corrupt"`` (a row that does
    not decode) or ``"trigger"`` (an immutability trigger missing or disabled).
    ``position``: the row concerned, when there is one.

    >>> print(LogProblem("gap", "positions 3 to 4 are missing", 5))
    position 5: gap: positions 3 to 4 are missing
    """

    kind: str
    message: str
    position: int | None = None

    def __str__(self) -> str:
        where = "" if self.position is None else f"position {self.position}: "
        return f"{where}{self.kind}: {self.message}"


def check_continues(
    rows: Iterable[RawEvent], head: int, versions: Mapping[str, int]
) -> list[RawEvent]:
    """The rows, if they continue a log whose head is ``head`` and whose streams are at
    ``versions`` (a stream missing from it is at 0): positions ``head+1, head+2…``, each
    stream's next version, whole writes. Otherwise ``ValidationError``, and nothing is
    written by the caller."""
    out: list[RawEvent] = []
    seen = dict(versions)
    expected = head + 1
    open_write: int | None = None
    for row in rows:
        if not isinstance(row, RawEvent):
            raise ValidationError(f"import_rows takes RawEvent rows, got {type(row).__name__}")
        if row.position != expected:
            raise ValidationError(
                f"row at position {row.position} does not continue the log: the next position "
                f"is {expected}; import into an empty store, or continue from its head"
            )
        version = seen.get(row.stream_id, 0) + 1
        if row.stream_version != version:
            raise ValidationError(
                f"row at position {row.position} has version {row.stream_version} of stream "
                f"{row.stream_id!r}, whose next version is {version}"
            )
        if open_write is not None and row.write_end != open_write:
            raise ValidationError(
                f"row at position {row.position} starts a new write inside the write ending at "
                f"{open_write}: the rows must hold whole writes"
            )
        open_write = row.write_end if row.write_end > row.position else None
        seen[row.stream_id] = version
        expected += 1
        out.append(row)
    if open_write is not None:
        raise ValidationError(
            f"the rows end inside the write ending at position {open_write}; import whole writes"
        )
    return out
