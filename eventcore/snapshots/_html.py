"""Deterministic HTML for notebooks: a replay report and a stored snapshot."""

from __future__ import annotations

import json
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eventcore.snapshots.model import ReplayReport, Snapshot

_TABLE = 'style="border-collapse:collapse;font-family:monospace;font-size:90%"'
_CELL = 'style="padding:2px 8px;text-align:left"'
_MAX_STATE = 400


def _table(head: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
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
    table = _table(("stream", "from snapshot", "events from the log", "version now"), rows)
    return f"<p>{title}</p>{table}{total}{note}"


def snapshot_html(snapshot: Snapshot) -> str:
    state = json.dumps(snapshot.state, ensure_ascii=False, sort_keys=True)
    if len(state) > _MAX_STATE:
        state = state[:_MAX_STATE] + f"… ({len(state)} characters)"
    saved = f", saved {snapshot.saved_at.isoformat()}" if snapshot.saved_at else ""
    rows: list[tuple[object, ...]] = [(s, v) for s, v in snapshot.streams]
    return (
        f"<p><b>Snapshot</b> <code>{escape(snapshot.snapshot_id)}</code>{escape(saved)}</p>"
        + _table(("stream", "version"), rows)
        + f"<p>state: <code>{escape(state)}</code></p>"
    )
