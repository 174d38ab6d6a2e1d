"""Look at an event log in a notebook: a DataFrame, a timeline, a causation graph, a replay.

::

    from eventcore.notebook import causation_graph, event_log, explore, timeline

- :func:`event_log` — the events as a pandas DataFrame (envelope columns, then ``data.*``);
- :func:`timeline` — swimlanes, one per stream, with an optional replay cursor;
- :func:`causation_graph` — which event caused which in one correlation;
- :func:`explore` / :class:`Explorer` — ipywidgets: a position slider that replays the state,
  a stream and a type filter, and :meth:`Explorer.figure` for a static copy of the view;
- pure helpers under them: :func:`filter_events`, :func:`state_at`, :func:`causation_links`,
  :func:`short_id`.

pandas, matplotlib and ipywidgets (the ``course`` extra) are imported when first needed, so
``import eventcore.notebook`` works without them; the pure helpers never need them.
"""

from eventcore.notebook.explorer import Explorer, explore
from eventcore.notebook.frame import ENVELOPE_COLUMNS, event_log, flatten
from eventcore.notebook.log import (
    causation_links,
    collect,
    filter_events,
    in_correlation,
    short_id,
    state_at,
)
from eventcore.notebook.plots import (
    COMMAND_BLUE,
    EVENT_COLOURS,
    EVENT_ORANGE,
    READ_MODEL_GREEN,
    causation_graph,
    event_styles,
    timeline,
)

__all__ = [
    "COMMAND_BLUE",
    "ENVELOPE_COLUMNS",
    "EVENT_COLOURS",
    "EVENT_ORANGE",
    "READ_MODEL_GREEN",
    "Explorer",
    "causation_graph",
    "causation_links",
    "collect",
    "event_log",
    "event_styles",
    "explore",
    "filter_events",
    "flatten",
    "in_correlation",
    "short_id",
    "state_at",
    "timeline",
]
