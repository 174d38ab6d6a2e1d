"""What every store shares for tombstones and retention: the plan, the archive step, the
horizon check of reads, and restoring an archive.

A store supplies one callable, ``remove(rows, at) -> int``, that deletes exactly those rows
past its immutability guard (the SQL stores do it in one transaction that arms their
guard) and records the run; everything else is here, the same for every store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from eventcore.clock import Clock
from eventcore.errors import ConfigurationError, EventsRemoved, ValidationError
from eventcore.events import RecordedEvent
from eventcore.raw import RawEvent
from eventcore.retention.archive import Archive
from eventcore.retention.policies import RetentionPolicy, check_policies
from eventcore.selection import Selection, iter_log
from eventcore.store import check_count
from eventcore.tombstones import StreamClosure, StreamDeletion

__all__ = [
    "RetentionReport",
    "check_horizon",
    "plan_removal",
    "restore",
    "run_retention",
    "run_retention_async",
    "skipping_removed",
    "write_tombstone",
    "write_tombstone_async",
]

_PAGE: Final = 5000

Tombstone = StreamClosure | StreamDeletion
Run = tuple[int, int, datetime]
"""One retention run as a store records it: first and last removed positions, and when."""


@dataclass(frozen=True)
class RetentionReport:
    """What one ``apply_retention`` did: events removed, from how many streams, the range of
    positions they spanned, and the archive files written (empty without an archive)."""

    removed: int
    streams: int
    first_position: int
    last_position: int
    archive_files: tuple[str, ...]
    applied_at: datetime


def check_horizon(after: int, runs: Iterable[Run]) -> None:
    """Raise ``EventsRemoved`` if a retention run removed events after position ``after``."""
    latest: Run | None = None
    for run in runs:
        if run[1] > after and (latest is None or run[1] > latest[1]):
            latest = run
    if latest is not None:
        raise EventsRemoved(after, latest[1], latest[2])


def plan_removal(
    rows: Iterable[RawEvent], policies: Sequence[RetentionPolicy], now: datetime
) -> list[RawEvent]:
    """The rows ``policies`` remove, in position order: for each stream the first policy
    that matches it (PurgeDeleted: a deleted stream); never a stream's last row."""
    checked = check_policies(policies)
    streams: dict[str, list[RawEvent]] = {}
    for row in rows:
        streams.setdefault(row.stream_id, []).append(row)
    out: list[RawEvent] = []
    for sid, found in streams.items():
        policy = next((p for p in checked if p.streams.matches(sid) and p.applies(found)), None)
        if policy is None:
            continue
        last = found[-1].position
        out.extend(r for r in policy.removable(found, now) if r.position != last)
    return sorted(out, key=lambda r: r.position)


def _all_rows(export: Callable[..., list[RawEvent]]) -> Iterator[RawEvent]:
    after = 0
    while True:
        page = export(after=after, limit=_PAGE)
        if not page:
            return
        yield from page
        after = page[-1].position


def _check_archive(archive: object) -> Archive | None:
    if archive is not None and not isinstance(archive, Archive):
        raise ConfigurationError(
            f"archive must be an Archive (for example DirectoryArchive(path)) or None to "
            f"discard the removed events, got {type(archive).__name__}"
        )
    return archive


def _report(
    rows: list[RawEvent], removed: int, files: Sequence[Any], at: datetime
) -> RetentionReport:
    if not rows:
        return RetentionReport(0, 0, 0, 0, (), at)
    return RetentionReport(
        removed,
        len({r.stream_id for r in rows}),
        rows[0].position,
        rows[-1].position,
        tuple(f.name for f in files),
        at,
    )


def run_retention(
    store: Any,
    policies: Sequence[RetentionPolicy],
    archive: Archive | None,
    clock: Clock,
    remove: Callable[[Sequence[RawEvent], datetime], int],
) -> RetentionReport:
    """Plan, archive, remove (the body of every blocking store's ``apply_retention``)."""
    checked = check_policies(policies)
    target = _check_archive(archive)
    now = clock()
    rows = plan_removal(_all_rows(store.export_rows), checked, now)
    if not rows:
        return _report(rows, 0, (), now)
    files = target.write(rows) if target is not None else []
    return _report(rows, remove(rows, now), files, now)


async def run_retention_async(
    store: Any,
    policies: Sequence[RetentionPolicy],
    archive: Archive | None,
    clock: Clock,
    remove: Callable[[Sequence[RawEvent], datetime], Awaitable[int]],
) -> RetentionReport:
    """:func:`run_retention` for an asyncio store (the archive is written in a thread)."""
    import asyncio

    checked = check_policies(policies)
    target = _check_archive(archive)
    now = clock()
    found: list[RawEvent] = []
    after = 0
    while True:
        page = await store.export_rows(after=after, limit=_PAGE)
        if not page:
            break
        found += page
        after = page[-1].position
    rows = plan_removal(found, checked, now)
    if not rows:
        return _report(rows, 0, (), now)
    files = await asyncio.to_thread(target.write, rows) if target is not None else []
    return _report(rows, await remove(rows, now), files, now)


def _expected(expected_version: int | None) -> int | None:
    if expected_version is not None:
        check_count("expected_version", expected_version)
    return expected_version


def write_tombstone(store: Any, marker: Tombstone, expected_version: int | None) -> RecordedEvent:
    """Append ``marker`` at the end of its stream in one session (the body of every
    blocking store's ``close_stream`` and ``delete_stream``)."""
    _check_reason(marker)
    expected = _expected(expected_version)
    sid = marker.stream
    with store.session([sid]) as session:
        version = session.stream_version(sid) if expected is None else expected
        written: list[RecordedEvent] = session.append({sid: version}, [marker])
    return written[0]


async def write_tombstone_async(
    store: Any, marker: Tombstone, expected_version: int | None
) -> RecordedEvent:
    """:func:`write_tombstone` for an asyncio store."""
    _check_reason(marker)
    expected = _expected(expected_version)
    sid = marker.stream
    async with store.session([sid]) as session:
        version = await session.stream_version(sid) if expected is None else expected
        written: list[RecordedEvent] = await session.append({sid: version}, [marker])
    return written[0]


def _check_reason(marker: Tombstone) -> None:
    if not isinstance(marker.reason, str) or len(marker.reason) > 1000:
        raise ValidationError(
            f"reason must be a str of at most 1000 characters, got {marker.reason!r:.60}"
        )


def restore(archive: Archive, *, into: Any, live: Any = None) -> int:
    """Rebuild a complete log in the empty store ``into``: the archived rows merged, by
    position, with the rows still in ``live`` (the store retention ran on), imported with
    their ids, positions, versions, times and metadata. Returns how many rows were imported.

    ``into`` must be empty; the merged rows must form a whole log (positions 1, 2, …), else
    ``ValidationError`` and nothing is written (for the rows of one write being imported).
    """
    if into.head() != 0:
        raise ValidationError(
            f"restore needs an empty store to import into, but {into!r} has events up to "
            f"position {into.head()}; restore into a new database"
        )
    by_position: dict[int, RawEvent] = {r.position: r for r in archive.rows()}
    if live is not None:
        for row in _all_rows(live.export_rows):
            by_position[row.position] = row
    rows = [by_position[p] for p in sorted(by_position)]
    imported = 0
    batch: list[RawEvent] = []
    for row in rows:
        batch.append(row)
        if row.write_end == row.position and len(batch) >= _PAGE:
            imported += into.import_rows(batch)
            batch = []
    if batch:
        imported += into.import_rows(batch)
    return imported


class SkippingRemoved:
    """A store whose ``read_all`` reads what retention left, skipping removed events on
    purpose (see :func:`skipping_removed`); every other attribute is the store's."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.types = store.types

    def __repr__(self) -> str:
        return f"SkippingRemoved({self._store!r})"

    def read_all(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
    ) -> list[RecordedEvent]:
        found: list[RecordedEvent] = self._store.read_retained(
            after=after, limit=limit, streams=streams, event_types=event_types
        )
        return found

    def iter_all(
        self,
        *,
        after: int = 0,
        streams: Selection = None,
        event_types: Iterable[str | type] | None = None,
        page_size: int = 1000,
    ) -> Iterator[RecordedEvent]:
        return iter_log(
            self.read_all,
            after=after,
            streams=streams,
            event_types=event_types,
            page_size=page_size,
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def skipping_removed(store: Any) -> SkippingRemoved:
    """``store`` as a reader that accepts the gaps retention left: its ``read_all`` skips
    removed events instead of raising ``EventsRemoved``. Give it to a projection that should
    build from what is left (the policy "skip")."""
    if not callable(getattr(store, "read_retained", None)):
        raise ConfigurationError(
            f"{type(store).__name__} has no read_retained(); it does not support retention"
        )
    return SkippingRemoved(store)
