"""Figures of the event log: a swimlane timeline and a causation graph (matplotlib only).

Colours follow Event Modeling: events are orange sticky notes (one shade and marker shape per
event type), read models green (the replay cursor: "the state is replayed up to here").
Every function returns the :class:`~matplotlib.figure.Figure`; in a notebook end the cell with
``plt.show()`` so the figure is shown once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple
from uuid import UUID

from eventcore.errors import ValidationError
from eventcore.events import RecordedEvent
from eventcore.notebook._deps import require
from eventcore.notebook.log import (
    EventSource,
    StreamFilter,
    TypeFilter,
    causation_links,
    collect,
    resolve_correlation,
    short_id,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "COMMAND_BLUE",
    "EVENT_COLOURS",
    "EVENT_ORANGE",
    "READ_MODEL_GREEN",
    "EventStyle",
    "causation_graph",
    "causation_layers",
    "draw_timeline",
    "event_styles",
    "position_range",
    "text_colour",
    "timeline",
]

EVENT_ORANGE = "#F5A623"
"""Event Modeling's colour for events."""
COMMAND_BLUE = "#4A90D9"
"""Event Modeling's colour for commands."""
READ_MODEL_GREEN = "#2E9E44"
"""Event Modeling's colour for read models (and the replay cursor)."""

EVENT_COLOURS = (
    EVENT_ORANGE,
    "#C2410C",
    "#FDBA74",
    "#92400E",
    "#FB923C",
    "#FCD34D",
    "#EA580C",
    "#78350F",
)
"""Shades of orange, one per event type (in order of first appearance)."""
_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "h")
_TICK_EVERY_POSITION = 40  # up to this many positions, every position gets a tick label
_EDGE = "#5C3A12"
_FADED = 0.22


class EventStyle(NamedTuple):
    """How one event type is drawn."""

    colour: str
    marker: str


def event_styles(types: Iterable[str]) -> dict[str, EventStyle]:
    """A colour and a marker shape per event type, in the order given (first seen first)."""
    styles: dict[str, EventStyle] = {}
    for name in types:
        if name not in styles:
            i = len(styles)
            n = len(EVENT_COLOURS)
            styles[name] = EventStyle(EVENT_COLOURS[i % n], _MARKERS[(i + i // n) % n])
    return styles


def _luminance(colour: str) -> float:
    """WCAG relative luminance of a ``#RRGGBB`` colour."""
    channels = [int(colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def text_colour(background: str) -> str:
    """Black or white, whichever contrasts more with ``background`` (``#RRGGBB``): the text
    on a dark event box is white.

    >>> text_colour("#FDBA74"), text_colour("#78350F")
    ('black', 'white')
    """
    light = _luminance(background)
    return "black" if (light + 0.05) / 0.05 >= 1.05 / (light + 0.05) else "white"


def position_range(events: Sequence[RecordedEvent]) -> tuple[float, float]:
    """The x range a position timeline of ``events`` uses: from before the first position
    (room for a cursor at 0) to after the last. The explorer keeps this range while its
    slider moves and its filters change, so markers stay where they are."""
    if not events:
        return (-0.7, 0.7)
    low = min(e.position for e in events)
    high = max(e.position for e in events)
    return (min(low, 0.5) - 0.7, high + 0.7)


def _timeline_size(events: Sequence[RecordedEvent]) -> tuple[float, float]:
    lanes = len({e.stream_id for e in events})
    width = min(14.0, max(6.5, 3.0 + 0.38 * len(events)))
    return width, max(2.0, 0.5 * lanes + 1.3)


def timeline(
    events: EventSource,
    *,
    x: Literal["position", "time"] = "position",
    cursor: int | datetime | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    streams: StreamFilter = None,
    event_types: TypeFilter = None,
) -> Figure:
    """A swimlane plot: one lane per stream (sorted by id), one marker per event.

    ``x`` is the global ``"position"`` or the ``"time"`` recorded. Markers are coloured by
    event type (legend on the right) and labelled with their stream version. ``cursor`` (a
    position, or a time when ``x="time"``) draws a green "replayed up to here" line and fades
    the events after it. ``events`` is anything :func:`~eventcore.notebook.event_log` reads;
    ``streams`` and ``event_types`` filter it. Draws on ``ax`` when given.
    """
    recorded = collect(events, streams=streams, event_types=event_types)
    if ax is None:
        plt = require("matplotlib.pyplot")
        _, ax = plt.subplots(figsize=_timeline_size(recorded), layout="constrained")
    draw_timeline(
        ax, recorded, event_styles(e.event_type for e in recorded), x=x, cursor=cursor, title=title
    )
    return ax.get_figure(root=True)  # type: ignore[return-value]


def _replayed(e: RecordedEvent, cursor: int | datetime | None) -> bool:
    if cursor is None:
        return True
    if isinstance(cursor, datetime):
        return e.recorded_at <= cursor
    return e.position <= cursor


def _cursor_x(
    events: Sequence[RecordedEvent], cursor: int | datetime | None, x: str
) -> float | datetime | None:
    """Where the cursor line goes: between the last replayed event and the next one."""
    if cursor is None:
        return None
    done = [e for e in events if _replayed(e, cursor)]
    rest = [e for e in events if not _replayed(e, cursor)]
    if x == "position":
        if isinstance(cursor, int):
            return cursor + 0.5
        if done:
            return done[-1].position + 0.5
        return rest[0].position - 0.5 if rest else None
    if isinstance(cursor, datetime):
        return cursor
    if done and rest:
        return done[-1].recorded_at + (rest[0].recorded_at - done[-1].recorded_at) / 2
    if done:
        return done[-1].recorded_at
    return rest[0].recorded_at if rest else None


def draw_timeline(
    ax: Axes,
    events: Sequence[RecordedEvent],
    styles: Mapping[str, EventStyle],
    *,
    x: Literal["position", "time"] = "position",
    cursor: int | datetime | None = None,
    title: str | None = None,
    xlim: tuple[Any, Any] | None = None,
) -> None:
    """Draw ``events`` as swimlanes on ``ax`` with the given per-type ``styles`` (the explorer
    keeps one style map so colours do not change when it filters, and one ``xlim`` so the
    axis does not move)."""
    if x not in ("position", "time"):
        raise ValidationError(f'x must be "position" or "time", got {x!r}')
    lines = require("matplotlib.lines")
    ticker = require("matplotlib.ticker")
    lanes = sorted({e.stream_id for e in events})
    lane_of = {sid: i for i, sid in enumerate(lanes)}
    for i in range(len(lanes)):
        ax.axhline(i, color="#DDDDDD", linewidth=1, zorder=0, gid="lane")

    def xval(e: RecordedEvent) -> Any:
        return e.position if x == "position" else e.recorded_at

    for name, style in styles.items():
        of_type = [e for e in events if e.event_type == name]
        for done in (True, False):
            chosen = [e for e in of_type if _replayed(e, cursor) is done]
            if chosen:
                ax.scatter(
                    [xval(e) for e in chosen],
                    [lane_of[e.stream_id] for e in chosen],
                    s=90,
                    color=style.colour,
                    marker=style.marker,
                    edgecolors=_EDGE,
                    linewidths=0.8,
                    alpha=1.0 if done else _FADED,
                    zorder=3,
                    gid=f"events:{name}",
                )
    for e in events:
        ax.annotate(
            f"v{e.stream_version}",
            (xval(e), lane_of[e.stream_id]),
            xytext=(0, 8),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=7,
            color="#333333" if _replayed(e, cursor) else "#AAAAAA",
        )
    at: Any = _cursor_x(events, cursor, x)
    if at is not None:
        label = f"replayed to {cursor}" if isinstance(cursor, int) else "replayed to here"
        ax.axvline(
            at, color=READ_MODEL_GREEN, linestyle="--", linewidth=1.5, zorder=2, gid="cursor"
        )
        ax.annotate(
            label,
            xy=(at, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(-3, -2),  # on the replayed side of the line
            textcoords="offset points",
            ha="right",
            va="top",
            fontsize=7,
            color=READ_MODEL_GREEN,
        )
    ax.set_yticks(range(len(lanes)), [str(s) for s in lanes])
    ax.set_ylim(len(lanes) - 0.4, -0.7)  # first stream on top, room for version labels
    if not events:
        ax.text(0.5, 0.5, "no events", ha="center", va="center", transform=ax.transAxes)
    if x == "position":
        if events:
            low: float = min(e.position for e in events)
            high: float = max(e.position for e in events)
            if isinstance(at, float):
                low, high = min(low, at), max(high, at)
            ax.set_xlim(*(xlim or (low - 0.7, high + 0.7)))
        left, right = ax.get_xlim()
        if right - left <= _TICK_EVERY_POSITION:
            ax.xaxis.set_major_locator(ticker.MultipleLocator(1))  # every position labelled
        else:
            ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.set_xlabel("global position")
    else:
        if xlim is not None:
            ax.set_xlim(*xlim)
        ax.set_xlabel("recorded at")
        ax.tick_params(axis="x", labelrotation=20)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="y", length=0)
    if styles and events:
        shown = [name for name in styles if any(e.event_type == name for e in events)]
        handles = [
            lines.Line2D(
                [],
                [],
                linestyle="none",
                marker=styles[name].marker,
                markersize=8,
                markerfacecolor=styles[name].colour,
                markeredgecolor=_EDGE,
                label=name,
            )
            for name in shown
        ]
        ax.legend(
            handles=handles,
            title="event type",
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
            fontsize=8,
            title_fontsize=8,
        )
    if title:
        ax.set_title(title, fontsize=10, loc="left")


def causation_layers(
    events: Sequence[RecordedEvent],
) -> tuple[list[list[RecordedEvent]], list[tuple[RecordedEvent, RecordedEvent]]]:
    """Layers for drawing causation: roots (no cause among ``events``) first, then what they
    caused, and so on; each layer in position order. Returns ``(layers, links)``."""
    links = causation_links(events)
    cause_of = {effect.event_id: cause for cause, effect in links}
    depth: dict[UUID, int] = {}

    def depth_of(e: RecordedEvent, seen: frozenset[UUID] = frozenset()) -> int:
        if e.event_id not in depth:
            cause = cause_of.get(e.event_id)
            if cause is None or cause.event_id in seen:
                depth[e.event_id] = 0
            else:
                depth[e.event_id] = depth_of(cause, seen | {e.event_id}) + 1
        return depth[e.event_id]

    layers: list[list[RecordedEvent]] = []
    for e in sorted(events, key=lambda ev: ev.position):
        d = depth_of(e)
        while len(layers) <= d:
            layers.append([])
        layers[d].append(e)
    return layers, links


def causation_graph(
    source: EventSource,
    correlation_id: UUID | str,
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Which event caused which, in one business flow.

    Takes the events whose ``metadata.correlation_id`` is ``correlation_id`` (a UUID, its
    text, or its last hex digits as :func:`~eventcore.notebook.short_id` prints them) and
    draws an arrow from each event to the events whose ``causation_id`` is its id. Events
    whose cause is not in the flow are roots, on the left; each column to the right is one
    step further down the chain. Each box shows the type, the stream and version, the global
    position and the short event id.
    """
    recorded = collect(source)
    wanted = resolve_correlation(recorded, correlation_id)
    nodes = [e for e in recorded if e.metadata.correlation_id == wanted]
    if not nodes:
        raise ValidationError(f"no events carry the correlation id {wanted}")
    layers, links = causation_layers(nodes)
    styles = event_styles(e.event_type for e in nodes)
    tallest = max(len(layer) for layer in layers)
    if ax is None:
        plt = require("matplotlib.pyplot")
        size = (max(5.0, 2.7 * len(layers) + 0.6), max(2.0, 0.95 * tallest + 0.9))
        _, ax = plt.subplots(figsize=size, layout="constrained")
    boxes: dict[UUID, Any] = {}
    for column, layer in enumerate(layers):
        for row, e in enumerate(layer):
            y = row - (len(layer) - 1) / 2
            boxes[e.event_id] = ax.text(
                column,
                y,
                f"{e.event_type}\n{e.stream_id} · v{e.stream_version}\n"
                f"#{e.position} · {short_id(e.event_id)}",
                ha="center",
                va="center",
                fontsize=8,
                linespacing=1.3,
                color=text_colour(styles[e.event_type].colour),
                bbox={
                    "boxstyle": "round,pad=0.45",
                    "facecolor": styles[e.event_type].colour,
                    "edgecolor": _EDGE,
                    "linewidth": 0.8,
                },
                gid=f"event:{e.position}",
                zorder=3,
            )
    for cause, effect in links:
        ax.annotate(
            "",
            xy=boxes[effect.event_id].get_position(),
            xytext=boxes[cause.event_id].get_position(),
            arrowprops={
                "arrowstyle": "-|>",
                "color": "#555555",
                "linewidth": 1.1,
                "patchA": boxes[cause.event_id].get_bbox_patch(),
                "patchB": boxes[effect.event_id].get_bbox_patch(),
                "shrinkA": 2,
                "shrinkB": 2,
            },
            gid=f"cause:{cause.position}->{effect.position}",
            zorder=4,  # after the boxes, whose outlines clip the arrow when it is drawn
        )
    ax.set_xlim(-0.6, len(layers) - 0.4)
    half = tallest / 2
    ax.set_ylim(half, -half)
    ax.axis("off")
    ax.set_title(
        title or f"causation in correlation {short_id(wanted)}: {len(nodes)} events",
        fontsize=10,
        loc="left",
    )
    return ax.get_figure(root=True)  # type: ignore[return-value]
