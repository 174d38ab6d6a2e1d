"""Deterministic HTML for notebooks: a stored snapshot (a replay report renders through
:mod:`eventcore._html`)."""

from __future__ import annotations

import json
from html import escape
from typing import TYPE_CHECKING

from eventcore._html import cells_table

if TYPE_CHECKING:
    from eventcore.snapshots.model import Snapshot

_MAX_STATE = 400


def snapshot_html(snapshot: Snapshot) -> str:
    state = json.dumps(snapshot.state, ensure_ascii=False, sort_keys=True)
    if len(state) > _MAX_STATE:
        state = state[:_MAX_STATE] + f"… ({len(state)} characters)"
    saved = f", saved {snapshot.saved_at.isoformat()}" if snapshot.saved_at else ""
    rows: list[tuple[object, ...]] = [(s, v) for s, v in snapshot.streams]
    return (
        f"<p><b>Snapshot</b> <code>{escape(snapshot.snapshot_id)}</code>{escape(saved)}</p>"
        + cells_table(("stream", "version"), rows)
        + f"<p>state: <code>{escape(state)}</code></p>"
    )
