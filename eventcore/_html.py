"""Small, deterministic HTML renderings for Jupyter (``_repr_html_``).

No memory addresses, no random ids beyond the ones the store recorded (which an injected
id factory makes deterministic in notebooks).
"""

from __future__ import annotations

import re
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventcore.events import RecordedEvent
    from eventcore.pipeline import ExecutionResult, ReplayReport

_TABLE = 'style="border-collapse:collapse;font-family:monospace;font-size:90%"'
_ADDRESS = re.compile(r" at 0x[0-9A-Fa-f]+")


def _no_address(text: str) -> str:
    """Drop memory addresses (``<Foo object at 0x7f...>``): they change on every run."""
    return _ADDRESS.sub("", text)


def _event_fields(event: Any) -> str:
    fields = getattr(event, "__dataclass_fields__", None)
    if fields is None:
        return _no_address(repr(event))
    return ", ".join(f"{name}={_no_address(str(getattr(event, name)))}" for name in fields)


def events_table(events: list[RecordedEvent] | tuple[RecordedEvent, ...]) -> str:
    head = "".join(
        f"<th>{h}</th>" for h in ("position", "stream", "version", "type", "data", "recorded at")
    )
    rows = "".join(
        "<tr>"
        f"<td>{e.position}</td><td>{escape(e.stream_id)}</td><td>{e.stream_version}</td>"
        f"<td>{escape(e.event_type)}</td><td>{escape(_event_fields(e.event))}</td>"
        f"<td>{escape(e.recorded_at.isoformat())}</td>"
        "</tr>"
        for e in events
    )
    return f"<table {_TABLE}><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def recorded_event_html(event: RecordedEvent) -> str:
    return events_table([event])


def result_html(result: ExecutionResult) -> str:
    attempts = f"{result.attempts} attempt{'s' if result.attempts != 1 else ''}"
    if not result.events:
        return f"<p><b>No events recorded</b> ({attempts}).</p>"
    count = len(result.events)
    return (
        f"<p><b>{count} event{'s' if count != 1 else ''} recorded</b> ({attempts})</p>"
        + events_table(result.events)
    )


_CELL = 'style="padding:2px 8px;text-align:left"'


def cells_table(head: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    """A small table with padded, left-aligned cells; every cell is escaped."""
    th = "".join(f"<th {_CELL}>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td {_CELL}>{escape(str(c))}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table {_TABLE}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def replay_html(report: ReplayReport) -> str:
    if report.snapshot_id is None:
        title = "<b>Full replay</b> (no snapshots for this command)"
    else:
        used = "restored from" if report.loaded else "no usable snapshot"
        saved = "; a new snapshot was saved" if report.saved else ""
        title = f"<b>{used}</b> <code>{escape(report.snapshot_id)}</code>{saved}"
    rows: list[tuple[object, ...]] = [
        (
            s.stream_id,
            "—" if s.snapshot_version is None else f"version {s.snapshot_version}",
            s.events_applied,
            s.version,
        )
        for s in report.streams
    ]
    total = (
        f"<p>{report.events_applied} event(s) folded from the log, "
        f"{report.events_from_snapshot} covered by the snapshot</p>"
    )
    note = f"<p><i>{escape(report.note)}</i></p>" if report.note else ""
    table = cells_table(("stream", "from snapshot", "events from the log", "version now"), rows)
    return f"<p>{title}</p>{table}{total}{note}"
