"""Archives: removed events kept as compressed JSON Lines files, with a manifest of checksums.

A :class:`DirectoryArchive` is a directory holding ``manifest.json`` and one gzip-compressed
JSON Lines file per range of positions (each line a :class:`~eventcore.raw.RawEvent`, the
store's exact row). The manifest lists every file with its first and last positions, its
number of events and the SHA-256 of its bytes; reading checks each file against it, so a
truncated or altered file is refused (:class:`~eventcore.errors.DeserializationError`)
instead of restoring a silently different log. Files are written with a fixed gzip header
(no name, no time), so the same events always give the same bytes and checksums.

>>> import tempfile
>>> from datetime import UTC, datetime
>>> from uuid import UUID
>>> row = RawEvent(1, "s-1", 1, "Noted", 1, '{"s":"s-1"}', UUID(int=1),
...                datetime(2026, 1, 1, tzinfo=UTC),
...                '{"causation_id":null,"correlation_id":null,"custom":{}}', 1)
>>> with tempfile.TemporaryDirectory() as tmp:
...     archive = DirectoryArchive(tmp)
...     [f.events for f in archive.write([row])], list(archive.rows()) == [row]
([1], True)
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

from eventcore.errors import ConfigurationError, DeserializationError, StoreFailure
from eventcore.raw import RawEvent

__all__ = ["ARCHIVE_FORMAT", "Archive", "ArchiveFile", "DirectoryArchive"]

ARCHIVE_FORMAT: Final = "eventcore-archive/1"
MANIFEST: Final = "manifest.json"
_ROWS_PER_FILE: Final = 10_000


@dataclass(frozen=True)
class ArchiveFile:
    """One file of an archive: its name, positions, number of events and checksum."""

    name: str
    first_position: int
    last_position: int
    events: int
    sha256: str


@runtime_checkable
class Archive(Protocol):
    """Where ``apply_retention`` writes events before it removes them."""

    def write(self, rows: Sequence[RawEvent]) -> list[ArchiveFile]:
        """Store ``rows`` durably (before anything is removed); the files written."""
        ...

    def rows(self) -> Iterator[RawEvent]:
        """Every archived row, checked, in position order."""
        ...


class DirectoryArchive:
    """An archive in a directory (created if missing): gzip JSON Lines plus a manifest."""

    def __init__(
        self, path: str | os.PathLike[str], *, rows_per_file: int = _ROWS_PER_FILE
    ) -> None:
        if (
            isinstance(rows_per_file, bool)
            or not isinstance(rows_per_file, int)
            or rows_per_file < 1
        ):
            raise ConfigurationError(f"rows_per_file must be an int >= 1, got {rows_per_file!r}")
        self.path = Path(path)
        self.rows_per_file = rows_per_file

    def __repr__(self) -> str:
        return f"DirectoryArchive({self.path.name!r})"

    def files(self) -> list[ArchiveFile]:
        """The files the manifest lists, in the order they were written."""
        manifest = self.path / MANIFEST
        if not manifest.exists():
            return []
        try:
            found = json.loads(manifest.read_text(encoding="utf-8"))
            if found.get("format") != ARCHIVE_FORMAT:
                raise ValueError(f"format {found.get('format')!r}, expected {ARCHIVE_FORMAT!r}")
            return [ArchiveFile(**item) for item in found["files"]]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise DeserializationError(
                f"the archive manifest {MANIFEST} in {self.path.name!r} is not readable: {exc}"
            ) from None

    def write(self, rows: Sequence[RawEvent]) -> list[ArchiveFile]:
        """Write ``rows`` (sorted by position) as new files, then the manifest (atomically
        replaced); every file is flushed to disk before the manifest names it."""
        ordered = sorted(rows, key=lambda r: r.position)
        if not ordered:
            return []
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            known = self.files()
            added: list[ArchiveFile] = []
            for start in range(0, len(ordered), self.rows_per_file):
                chunk = ordered[start : start + self.rows_per_file]
                first, last = chunk[0].position, chunk[-1].position
                name = f"events-{first:012d}-{last:012d}.jsonl.gz"
                if any(f.name == name for f in known):
                    name = f"events-{first:012d}-{last:012d}-{len(known) + len(added)}.jsonl.gz"
                data = _compress("".join(r.to_json_line() + "\n" for r in chunk))
                _write_durably(self.path / name, data)
                added.append(ArchiveFile(name, first, last, len(chunk), _sha256(data)))
            manifest = {
                "format": ARCHIVE_FORMAT,
                "files": [vars(f) for f in [*known, *added]],
            }
            text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
            _write_durably(self.path / (MANIFEST + ".tmp"), text.encode("utf-8"))
            os.replace(self.path / (MANIFEST + ".tmp"), self.path / MANIFEST)
        except OSError as exc:
            raise StoreFailure(
                "archive",
                f"cannot write the archive in {self.path.name!r}: {exc}; nothing was removed",
            ) from exc
        return added

    def rows(self) -> Iterator[RawEvent]:
        """Every archived row in position order, each file checked against the manifest
        (a missing, changed or truncated file raises ``DeserializationError``)."""
        found: list[RawEvent] = []
        for item in self.files():
            target = self.path / item.name
            try:
                data = target.read_bytes()
            except OSError as exc:
                raise DeserializationError(
                    f"archive file {item.name!r} is missing or unreadable: {exc}"
                ) from None
            if _sha256(data) != item.sha256:
                raise DeserializationError(
                    f"archive file {item.name!r} does not match its checksum in the manifest; "
                    "it was changed or truncated: restore it from a backup"
                )
            lines = gzip.decompress(data).decode("utf-8").splitlines()
            rows = [RawEvent.from_json_line(line) for line in lines if line]
            if len(rows) != item.events:
                raise DeserializationError(
                    f"archive file {item.name!r} holds {len(rows)} events, the manifest says "
                    f"{item.events}"
                )
            found.extend(rows)
        by_position: dict[int, RawEvent] = {}
        for row in found:
            by_position.setdefault(row.position, row)
        return iter(sorted(by_position.values(), key=lambda r: r.position))


def _compress(text: str) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as out:
        out.write(text.encode("utf-8"))
    return buffer.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def manifest_of(archive: Any) -> list[ArchiveFile]:
    """The files of ``archive`` if it lists them, else an empty list."""
    files = getattr(archive, "files", None)
    return list(files()) if callable(files) else []
