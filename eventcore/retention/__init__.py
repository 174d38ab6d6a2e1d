"""Retention and archival: removing old events on purpose, keeping them in an archive, and
restoring them.

An event log keeps everything, and the stores' immutability triggers make sure of it.
``store.apply_retention(policies, archive=...)`` is the one sanctioned way past them: it
selects events by policy (:class:`KeepLast`, :class:`KeepYounger`, :class:`TruncateBefore`,
:class:`PurgeDeleted`, each for a stream prefix or pattern), writes them to an archive
(:class:`DirectoryArchive`: gzip JSON Lines files with a manifest of checksums) and only then
removes them, in one transaction that arms the guard the triggers check. Positions are never
reused, and every stream keeps its last event.

A read that starts before removed events (``read_all(after=...)``, a projection whose
checkpoint lies before them) raises :class:`~eventcore.errors.EventsRemoved` rather than
skip them silently; :func:`skipping_removed` reads what is left on purpose, and
:func:`restore` rebuilds the whole log in a new store from the archive and the live store.

>>> from dataclasses import dataclass
>>> from eventcore.stores.memory import InMemoryEventStore
>>> from eventcore.types import StreamPrefix
>>> @dataclass(frozen=True)
... class Beat:
...     node: StreamId
>>> store = InMemoryEventStore()
>>> node = StreamId("node-1")
>>> _ = [store.append({node: n}, [Beat(node)]) for n in range(5)]
>>> report = store.apply_retention([KeepLast(StreamPrefix("node-"), 2)], archive=None)
>>> report.removed, [e.stream_version for e in store.read_stream(node)]
(3, [4, 5])
"""

from eventcore.retention.archive import Archive, ArchiveFile, DirectoryArchive
from eventcore.retention.engine import (
    RetentionReport,
    SkippingRemoved,
    plan_removal,
    restore,
    skipping_removed,
)
from eventcore.retention.policies import (
    KeepLast,
    KeepYounger,
    PurgeDeleted,
    RetentionPolicy,
    TruncateBefore,
)
from eventcore.types import StreamId  # noqa: F401  (the examples use it)

__all__ = [
    "Archive",
    "ArchiveFile",
    "DirectoryArchive",
    "KeepLast",
    "KeepYounger",
    "PurgeDeleted",
    "RetentionPolicy",
    "RetentionReport",
    "SkippingRemoved",
    "TruncateBefore",
    "plan_removal",
    "restore",
    "skipping_removed",
]
