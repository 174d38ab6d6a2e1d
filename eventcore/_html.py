"""Small, deterministic HTML renderings for Jupyter (``_repr_html_``).

No memory addresses, no random ids beyond the ones the store recorded (which an injected
id factory makes deterministic in notebooks).
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventcore.events import RecordedEvent
    from eventcore.pipeline import ExecutionResult

_TABLE = 'style="border-collapse:collapse;font-family:monospace;font-size:90%"'


def _event_fields(event: Any) -> str:
    fields = getattr(event, "__dataclass_fields__", {})
    return ", ".join(f"{name}={getattr(event, name)!s}" for name in fields)


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


def error_html(error: BaseException) -> str:
    return (
        '<div style="border-left:4px solid #c0392b;padding:4px 8px">'
        f"<b>{escape(type(error).__name__)}</b>: {escape(str(error))}</div>"
    )
