"""An interactive explorer (ipywidgets): replay the log up to a position, filter, look.

The widget callbacks are thin: each change calls :meth:`Explorer.update`, which recomputes
the view from the pure functions :func:`~eventcore.notebook.filter_events` and
:func:`~eventcore.notebook.state_at` and redraws. Widgets are not interactive in a static
page (the book), so :meth:`Explorer.figure` draws the current view as a figure.
"""

from __future__ import annotations

import io
import pprint
from collections.abc import Callable
from datetime import timedelta
from html import escape
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from eventcore.events import RecordedEvent
from eventcore.notebook._deps import require
from eventcore.notebook.log import EventSource, collect, filter_events, state_at
from eventcore.notebook.plots import _timeline_size, draw_timeline, event_styles, position_range

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Explorer", "explore"]

S = TypeVar("S")

_PRE = (
    '<pre style="font-family:monospace;font-size:90%;margin:0;padding:4px 8px;'
    'border-left:4px solid #2E9E44">{}</pre>'
)


def _default_render(state: object) -> str:
    return pprint.pformat(state, width=88, sort_dicts=True)


def _as_text(shown: object) -> str:
    return shown if isinstance(shown, str) else str(shown)


def _as_html(shown: object) -> str:
    html = getattr(shown, "_repr_html_", None)
    if not isinstance(shown, str) and callable(html):
        text = html()
        if isinstance(text, str):
            return text
    return _PRE.format(escape(_as_text(shown)))


class Explorer(Generic[S]):
    """Replay an event log interactively: a position slider, a stream and a type filter.

    ``events`` is anything :func:`~eventcore.notebook.event_log` reads (read once, when the
    explorer is made); ``fold(state, event)`` and ``initial`` replay the state, as a
    command's ``apply`` and ``initial_state`` do; ``render(state)`` turns it into text, or
    into an object with ``_repr_html_`` such as a DataFrame (default: ``pprint``).

    The state replays the *selected* events (streams and types) up to the slider's global
    position; the timeline shows them with a cursor there. Display the explorer as the last
    expression of a cell. Its parts are attributes: ``slider``, ``streams``, ``types``,
    ``summary``, ``image``, ``state_view`` and ``widget`` (the whole box); after each change
    ``shown`` holds the selected events and ``state`` the replayed state.
    """

    def __init__(
        self,
        events: EventSource,
        fold: Callable[[S, Any], S],
        initial: S,
        *,
        render: Callable[[S], object] | None = None,
        x: Literal["position", "time"] = "position",
    ) -> None:
        widgets = require("ipywidgets")
        self.events: list[RecordedEvent] = collect(events)
        self.fold = fold
        self.initial = initial
        self.render: Callable[[S], object] = render or _default_render
        self.x: Literal["position", "time"] = x
        self.styles = event_styles(e.event_type for e in self.events)
        self.xlim: tuple[Any, Any] | None = self._fixed_range()
        self.shown: list[RecordedEvent] = []
        self.state: S = initial
        last = self.events[-1].position if self.events else 0
        stream_ids = sorted({str(e.stream_id) for e in self.events})
        type_names = list(self.styles)
        self.slider: Any = widgets.IntSlider(
            value=last,
            min=0,
            max=last,
            step=1,
            description="position",
            continuous_update=False,
            layout=widgets.Layout(width="70%"),
        )
        self.streams: Any = widgets.SelectMultiple(
            options=stream_ids,
            value=tuple(stream_ids),
            description="streams",
            rows=min(6, max(2, len(stream_ids))),
        )
        self.types: Any = widgets.SelectMultiple(
            options=type_names,
            value=tuple(type_names),
            description="types",
            rows=min(6, max(2, len(type_names))),
        )
        self.summary: Any = widgets.HTML()
        self.image: Any = widgets.Image(format="png")
        self.state_view: Any = widgets.HTML()
        self.widget: Any = widgets.VBox(
            [
                self.slider,
                widgets.HBox([self.streams, self.types]),
                self.summary,
                self.image,
                self.state_view,
            ]
        )
        for control in (self.slider, self.streams, self.types):
            control.observe(self._changed, names="value")
        self.update()

    def _fixed_range(self) -> tuple[Any, Any] | None:
        """The x range of every view: the whole log's, whatever the slider and filters say."""
        if self.x == "position":
            return position_range(self.events)
        if not self.events:
            return None
        first, last = self.events[0].recorded_at, self.events[-1].recorded_at
        pad = (last - first) / 40 if last > first else timedelta(seconds=1)
        return (first - pad, last + pad)

    @property
    def position(self) -> int:
        """The global position the state is replayed to (the slider's value)."""
        return int(self.slider.value)

    def _changed(self, change: dict[str, Any]) -> None:
        self.update()

    def update(self) -> None:
        """Recompute the view from the controls and redraw (the widgets call this)."""
        self.shown = filter_events(self.events, streams=self.streams.value, types=self.types.value)
        self.state = state_at(self.shown, self.position, self.fold, self.initial)
        self.summary.value = self.describe()
        self.state_view.value = _as_html(self.render(self.state))
        self.image.value = self._png()

    def describe(self) -> str:
        """One line about the current view: how many events are replayed, up to where."""
        done = sum(1 for e in self.shown if e.position <= self.position)
        hidden = len(self.events) - len(self.shown)
        extra = f" ({hidden} filtered out)" if hidden else ""
        return (
            f"replayed <b>{done}</b> of {len(self.shown)} events{extra}, "
            f"up to position <b>{self.position}</b>"
        )

    def _draw(self, fig: Figure, *, with_state: bool) -> None:
        summary = self.describe().replace("<b>", "").replace("</b>", "")
        if not with_state:
            draw_timeline(
                fig.subplots(),
                self.shown,
                self.styles,
                x=self.x,
                cursor=self.position,
                xlim=self.xlim,
            )
            return
        text = f"state at position {self.position}:\n{_as_text(self.render(self.state))}"
        lines = text.count("\n") + 1
        height = _timeline_size(self.events)[1]
        top, bottom = fig.subplots(2, 1, height_ratios=[height, 0.16 * lines + 0.3])
        draw_timeline(
            top,
            self.shown,
            self.styles,
            x=self.x,
            cursor=self.position,
            title=summary,
            xlim=self.xlim,
        )
        bottom.axis("off")
        bottom.text(
            0.0, 1.0, text, family="monospace", fontsize=8, va="top", transform=bottom.transAxes
        )

    def _png(self) -> bytes:
        figure_module = require("matplotlib.figure")
        fig = figure_module.Figure(figsize=_timeline_size(self.events), layout="constrained")
        self._draw(fig, with_state=False)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        return buffer.getvalue()

    def figure(self) -> Figure:
        """The current view as a static figure: the timeline with its cursor, and the state
        below it. In a notebook end the cell with ``plt.show()``."""
        plt = require("matplotlib.pyplot")
        text_lines = _as_text(self.render(self.state)).count("\n") + 2
        width, height = _timeline_size(self.events)
        fig = plt.figure(figsize=(width, height + 0.16 * text_lines + 0.5), layout="constrained")
        self._draw(fig, with_state=True)
        result: Figure = fig
        return result

    def __repr__(self) -> str:
        return (
            f"<Explorer of {len(self.events)} events at position {self.position}: "
            "run the cell to use its slider and filters>"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget; its plain-text part (what a notebook shows before the widgets load, or
        without a kernel) is one readable line instead of ``VBox(children=...)``."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, tuple):
            data, meta = bundle
            return {**data, "text/plain": repr(self)}, meta
        if isinstance(bundle, dict):
            return {**bundle, "text/plain": repr(self)}
        return bundle


def explore(
    events: EventSource,
    fold: Callable[[S, Any], S],
    initial: S,
    *,
    render: Callable[[S], object] | None = None,
    x: Literal["position", "time"] = "position",
) -> Explorer[S]:
    """Make an :class:`Explorer`; show it by ending a cell with it."""
    return Explorer(events, fold, initial, render=render, x=x)
