"""timeline and causation_graph: what the figures contain."""

from __future__ import annotations

from dataclasses import replace

import pytest
from shop_log import FLOW, Shop

from eventcore import StreamPrefix, ValidationError
from eventcore.notebook import EVENT_COLOURS, READ_MODEL_GREEN, causation_graph, timeline
from eventcore.notebook.plots import position_range, text_colour

plt = pytest.importorskip("matplotlib.pyplot")
colors = pytest.importorskip("matplotlib.colors")


def lanes(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_yticklabels()]


def legend(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def cursor_lines(fig) -> list:
    return [line for line in fig.axes[0].get_lines() if line.get_gid() == "cursor"]


def test_one_lane_per_stream_sorted(shop: Shop) -> None:
    fig = timeline(shop.store)
    assert lanes(fig) == ["cart-1", "cart-2", "order-1", "payment-1", "stock-pot", "stock-tea"]
    assert fig.axes[0].get_xlabel() == "global position"
    assert cursor_lines(fig) == []


def test_legend_lists_event_types_in_order_of_first_appearance(shop: Shop) -> None:
    fig = timeline(shop.store)
    assert legend(fig) == ["ItemAdded", "OrderPlaced", "StockReserved", "PaymentCaptured"]
    handles = fig.axes[0].get_legend().legend_handles
    assert [colors.to_hex(h.get_markerfacecolor()).upper() for h in handles] == [
        c.upper() for c in EVENT_COLOURS[:4]
    ]


def test_version_labels_above_each_marker(shop: Shop) -> None:
    fig = timeline(shop.store)
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == ["v1", "v1", "v2", "v1", "v1", "v1", "v1"]


def test_cursor_line_and_faded_future(shop: Shop) -> None:
    fig = timeline(shop.store, cursor=4)
    (line,) = cursor_lines(fig)
    assert line.get_xdata()[0] == pytest.approx(4.5)  # between the last replayed and the next
    assert colors.to_hex(line.get_color()).upper() == READ_MODEL_GREEN.upper()
    alphas = sorted({c.get_alpha() for c in fig.axes[0].collections})
    assert alphas == [pytest.approx(0.22), 1.0]
    assert "replayed to 4" in [t.get_text() for t in fig.axes[0].texts]


def test_time_axis_and_filters(shop: Shop) -> None:
    fig = timeline(shop.store, x="time", cursor=4, streams=StreamPrefix("cart-"))
    assert lanes(fig) == ["cart-1", "cart-2"]
    assert fig.axes[0].get_xlabel() == "recorded at"
    assert len(cursor_lines(fig)) == 1
    with pytest.raises(ValidationError, match="x must be"):
        timeline(shop.store, x="when")


def test_draws_on_a_given_axes_and_handles_no_events(shop: Shop) -> None:
    fig, (_, right) = plt.subplots(1, 2)
    assert timeline(shop.store, ax=right, event_types=["OrderPlaced"]) is fig
    assert [t.get_text() for t in right.get_yticklabels()] == ["order-1"]
    empty = timeline([], title="nothing yet")
    assert lanes(empty) == []
    assert "no events" in [t.get_text() for t in empty.axes[0].texts]
    assert empty.axes[0].get_title(loc="left") == "nothing yet"


def test_every_position_has_a_tick_label(shop: Shop) -> None:
    fig = timeline(shop.store, cursor=7)
    fig.canvas.draw()
    left, right = fig.axes[0].get_xlim()
    ticks = [t for t in fig.axes[0].get_xticks() if left <= t <= right]
    assert set(range(1, 8)) <= set(ticks)  # odd positions too: the text asks about position 7


def test_a_long_log_gets_fewer_ticks(shop: Shop) -> None:
    events = shop.store.read_all()
    long_log = [replace(events[0], position=n) for n in range(1, 61)]
    fig = timeline(long_log)
    left, right = fig.axes[0].get_xlim()
    assert len([t for t in fig.axes[0].get_xticks() if left <= t <= right]) < 20


def test_text_on_event_boxes_contrasts_with_the_box() -> None:
    assert [text_colour(c) for c in EVENT_COLOURS] == [
        "black",
        "white",
        "black",
        "white",
        "black",
        "black",
        "black",
        "white",
    ]


def test_causation_boxes_use_the_readable_colour(shop: Shop) -> None:
    fig = causation_graph(shop.store, FLOW)
    for text in fig.axes[0].texts:
        if text.get_gid() and text.get_gid().startswith("event:"):
            face = colors.to_hex(text.get_bbox_patch().get_facecolor()).upper()
            assert colors.to_hex(text.get_color()) == colors.to_hex(text_colour(face))


def test_the_position_range_leaves_room_for_a_cursor_at_zero(shop: Shop) -> None:
    assert position_range(shop.store.read_all()) == pytest.approx((-0.2, 7.7))
    assert position_range([]) == (-0.7, 0.7)


def test_the_figure_size_is_deterministic(shop: Shop) -> None:
    assert repr(timeline(shop.store)) == "<Figure size 650x430 with 1 Axes>"


def test_causation_graph_edges_and_layers(shop: Shop) -> None:
    fig = causation_graph(shop.store, FLOW)
    ax = fig.axes[0]
    edges = sorted(a.get_gid() for a in ax.texts if (a.get_gid() or "").startswith("cause:"))
    assert edges == ["cause:1->3", "cause:3->4", "cause:4->5", "cause:4->6", "cause:4->7"]
    nodes = {
        t.get_gid(): t.get_position() for t in ax.texts if (t.get_gid() or "").startswith("event:")
    }
    assert sorted(nodes) == ["event:1", "event:3", "event:4", "event:5", "event:6", "event:7"]
    # columns: the root first, then one step down the chain per column
    assert [nodes[f"event:{p}"][0] for p in (1, 3, 4, 5, 6, 7)] == [0, 1, 2, 3, 3, 3]
    assert ax.get_title(loc="left") == "causation in correlation 00000001: 6 events"
    fig.canvas.draw()  # the arrows clip against the boxes at draw time


def test_causation_graph_of_an_unknown_flow(shop: Shop) -> None:
    with pytest.raises(ValidationError, match="no correlation ids end with 'ffff'"):
        causation_graph(shop.store, "ffff")
    import uuid

    with pytest.raises(ValidationError, match="no events carry"):
        causation_graph(shop.store, uuid.UUID(int=99))
