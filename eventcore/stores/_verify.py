"""The checks of ``store.verify()``, shared by every store: positions gapless and
increasing, each stream's versions contiguous from 1, every row decodable.

A store feeds :class:`LogChecker` its rows exactly as the database returns them — the nine
columns of a read plus ``write_end`` — page after page in position order, then adds the
problems of its own schema (the immutability triggers). Rows are checked by the reference
decoder of :mod:`eventcore.stores._rows` with a registry that accepts every event type, so
a row is reported exactly when a read would refuse it for a reason other than its class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventcore.errors import DeserializationError
from eventcore.events import EventTypes
from eventcore.raw import LogProblem
from eventcore.stores._rows import decode_envelope

__all__ = ["LogChecker"]


class _AnyType(EventTypes):
    """A registry that decodes any type name to its parsed data (the envelope is checked)."""

    def decode(
        self, type_name: str, version: int, data: str | bytes | dict[str, Any], where: str = ""
    ) -> Any:
        return data


_ANY = _AnyType()


class LogChecker:
    """Checks rows in position order; :attr:`problems` holds what it found.

    >>> checker = LogChecker(text_envelope=True)
    >>> meta = '{"causation_id":null,"correlation_id":null,"custom":{}}'
    >>> row = (1, "a", 1, "Opened", 1, "{}", "00000000-0000-0000-0000-000000000001",
    ...        "2026-01-01T00:00:00+00:00", meta, 1)
    >>> checker.check([row, (3, "a", 3, *row[3:])])
    >>> for problem in checker.problems:
    ...     print(problem)
    position 3: gap: position 2 is missing
    position 3: version: stream 'a' goes from version 1 to 3
    """

    def __init__(self, *, text_envelope: bool) -> None:
        self.text_envelope = text_envelope
        self.last = 0
        self.rows = 0
        self.versions: dict[str, int] = {}
        self.problems: list[LogProblem] = []

    def check(self, rows: Sequence[Sequence[Any]]) -> None:
        """Check one page of rows (each the nine read columns, then ``write_end``)."""
        problems = self.problems
        for row in rows:
            self.rows += 1
            position, sid, version = row[0], row[1], row[2]
            if type(position) is int:
                if position <= self.last:
                    problems.append(LogProblem("order", f"follows position {self.last}", position))
                elif position != self.last + 1:
                    missing = (
                        f"position {self.last + 1} is missing"
                        if position == self.last + 2
                        else f"positions {self.last + 1} to {position - 1} are missing"
                    )
                    problems.append(LogProblem("gap", missing, position))
                self.last = max(self.last, position)
            if type(sid) is str and type(version) is int:
                before = self.versions.get(sid, 0)
                if version != before + 1:
                    problems.append(
                        LogProblem(
                            "version",
                            f"stream {sid!r} goes from version {before} to {version}",
                            position if type(position) is int else None,
                        )
                    )
                self.versions[sid] = max(before, version)
            try:
                decode_envelope(_ANY, row[:9], self.text_envelope)
            except DeserializationError as exc:
                problems.append(
                    LogProblem("corrupt", str(exc), position if type(position) is int else None)
                )

    def missing_triggers(self, found: dict[str, bool], expected: Sequence[str]) -> None:
        """Report each of ``expected`` absent from ``found`` (name to enabled) or disabled."""
        for name in expected:
            if name not in found:
                self.problems.append(
                    LogProblem(
                        "trigger",
                        f"immutability trigger {name} is missing: events can be changed; "
                        "recreate it (re-run the migration that creates it) and find out "
                        "who dropped it",
                    )
                )
            elif not found[name]:
                self.problems.append(
                    LogProblem(
                        "trigger",
                        f"immutability trigger {name} is disabled: events can be changed; "
                        "enable it again (ALTER TABLE ... ENABLE TRIGGER)",
                    )
                )
