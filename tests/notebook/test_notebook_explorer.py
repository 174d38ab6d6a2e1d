"""The explorer: setting a widget's value fires its observer, no browser needed."""

from __future__ import annotations

import pytest
from shop_log import Shop, cart_fold

from eventcore.notebook import Explorer, explore, filter_events, state_at

pytest.importorskip("ipywidgets")
pd = pytest.importorskip("pandas")

PNG = b"\x89PNG"


def test_starts_at_the_end_with_everything_selected(shop: Shop) -> None:
    ex = explore(shop.store, cart_fold, {})
    assert (ex.slider.min, ex.slider.max, ex.slider.value) == (0, 7, 7)
    assert ex.streams.options == (
        "cart-1",
        "cart-2",
        "order-1",
        "payment-1",
        "stock-pot",
        "stock-tea",
    )
    assert ex.types.value == ("ItemAdded", "OrderPlaced", "StockReserved", "PaymentCaptured")
    assert ex.state == state_at(shop.store, None, cart_fold, {})
    assert ex.summary.value == "replayed <b>7</b> of 7 events, up to position <b>7</b>"
    assert bytes(ex.image.value).startswith(PNG)
    assert "cart-1:pot" in ex.state_view.value


def test_moving_the_slider_replays_the_state(shop: Shop) -> None:
    ex = explore(shop.store, cart_fold, {})
    before = ex.image.value
    ex.slider.value = 2
    assert ex.state == {"cart-1:tea": 2, "cart-2:mug": 1}
    assert ex.summary.value == "replayed <b>2</b> of 7 events, up to position <b>2</b>"
    assert bytes(ex.image.value).startswith(PNG) and bytes(ex.image.value) != bytes(before)
    assert "&#x27;cart-1:tea&#x27;: 2" in ex.state_view.value  # escaped text in a <pre>
    ex.slider.value = 0
    assert ex.state == {}


def test_stream_and_type_filters_select_what_is_replayed(shop: Shop) -> None:
    ex = Explorer(shop.store, cart_fold, {})
    ex.streams.value = ("cart-1",)
    assert [e.position for e in ex.shown] == [1, 3]
    assert ex.state == {"cart-1:tea": 2, "cart-1:pot": 1}
    assert "(5 filtered out)" in ex.summary.value
    ex.types.value = ("OrderPlaced",)
    assert ex.shown == [] and ex.state == {}
    ex.streams.value = ex.streams.options
    assert [e.position for e in ex.shown] == [
        e.position for e in filter_events(shop.store, types="OrderPlaced")
    ]
    assert ex.slider.max == 7  # the slider stays on global positions


def test_render_may_return_html_objects(shop: Shop) -> None:
    def as_table(state: dict[str, int]) -> object:
        return pd.DataFrame({"quantity": state}).rename_axis("cart:sku")

    ex = explore(shop.store, cart_fold, {}, render=as_table)
    assert "<table" in ex.state_view.value
    ex.slider.value = 1
    assert "cart-1:tea" in ex.state_view.value and "cart-2:mug" not in ex.state_view.value


def test_the_static_figure_shows_the_current_view(shop: Shop) -> None:
    ex = explore(shop.store, cart_fold, {})
    ex.slider.value = 3
    ex.streams.value = ("cart-1", "cart-2")
    fig = ex.figure()
    timeline_ax, state_ax = fig.axes
    assert [t.get_text() for t in timeline_ax.get_yticklabels()] == ["cart-1", "cart-2"]
    assert [line.get_gid() for line in timeline_ax.get_lines()].count("cursor") == 1
    assert (
        timeline_ax.get_title(loc="left")
        == "replayed 3 of 3 events (4 filtered out), up to position 3"
    )
    (text,) = state_ax.texts
    assert text.get_text().startswith("state at position 3:\n{'cart-1:pot': 1,")


def test_displays_as_its_widget(shop: Shop) -> None:
    ex = explore(shop.store, cart_fold, {})
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    # before the widgets load (or in a page without a kernel) the text part is shown
    assert bundle["text/plain"] == (
        "<Explorer of 7 events at position 7: run the cell to use its slider and filters>"
    )
    assert "VBox" not in repr(ex)


def test_the_x_axis_stays_put_while_the_slider_and_filters_move(shop: Shop) -> None:
    ex = explore(shop.store, cart_fold, {})
    ranges = set()
    for position in (7, 0, 3):
        ex.slider.value = position
        ranges.add(ex.figure().axes[0].get_xlim())
    ex.streams.value = ("order-1",)
    ranges.add(ex.figure().axes[0].get_xlim())
    assert len(ranges) == 1
    assert ranges.pop() == pytest.approx((-0.2, 7.7))


def test_the_time_axis_stays_put_too(shop: Shop) -> None:
    ex = explore(shop.store, cart_fold, {}, x="time")
    first = ex.figure().axes[0].get_xlim()
    ex.slider.value = 1
    ex.streams.value = ("cart-2",)
    assert ex.figure().axes[0].get_xlim() == first


def test_an_empty_log(shop: Shop) -> None:
    ex = explore([], cart_fold, {})
    assert (ex.slider.max, ex.state) == (0, {})
    assert bytes(ex.image.value).startswith(PNG)
