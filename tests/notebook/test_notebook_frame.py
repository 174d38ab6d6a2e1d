"""event_log: the DataFrame's columns and values."""

from __future__ import annotations

import pytest
from shop_log import Shop

from eventcore import StreamPrefix, execute
from eventcore.examples.bank import OpenAccount
from eventcore.notebook import ENVELOPE_COLUMNS, event_log, short_id

pd = pytest.importorskip("pandas")


def test_columns_start_with_the_envelope_then_data_then_metadata(shop: Shop) -> None:
    frame = event_log(shop.store)
    assert tuple(frame.columns[: len(ENVELOPE_COLUMNS)]) == ENVELOPE_COLUMNS
    assert list(frame.columns[len(ENVELOPE_COLUMNS) :]) == [
        "data.cart",
        "data.sku",
        "data.quantity",
        "data.order",
        "data.total",
        "data.ship_to.city",
        "data.stock",
        "data.payment",
        "data.amount",
        "meta.provider",
    ]
    assert list(frame["position"]) == [1, 2, 3, 4, 5, 6, 7]
    assert list(frame["version"]) == [1, 1, 2, 1, 1, 1, 1]
    assert frame["stream"][3] == "order-1" and frame["type"][3] == "OrderPlaced"


def test_values_short_ids_and_types(shop: Shop) -> None:
    events = list(shop.store.read_all())
    frame = event_log(shop.store)
    assert list(frame["id"]) == [short_id(e.event_id) for e in events]
    assert all(len(i) == 8 for i in frame["id"])
    assert frame["correlation"][0] == "00000001"
    assert frame["causation"][2] == frame["id"][0]  # position 3 was caused by position 1
    assert pd.isna(frame["causation"][0])
    assert str(frame["recorded_at"][0]) == "2026-01-01 09:00:00+00:00"
    # ints stay ints when some rows have no value; nested dataclasses are flattened
    assert str(frame["data.quantity"].dtype) == "Int64"
    assert list(frame["data.quantity"][:3]) == [2, 1, 1]
    assert pd.isna(frame["data.quantity"][3])
    assert frame["data.ship_to.city"][3] == "Oslo"
    assert frame["meta.provider"][6] == "acme"
    full = event_log(shop.store, short_ids=False)
    assert full["id"][0] == str(events[0].event_id)


def test_sources_and_filters(shop: Shop) -> None:
    assert list(event_log(shop.store, "cart-1")["position"]) == [1, 3]
    stock = event_log(shop.store, streams=StreamPrefix("stock-"))
    assert list(stock["stream"]) == ["stock-tea", "stock-pot"]
    assert list(event_log(shop.store, event_types=["OrderPlaced"])["position"]) == [4]
    result = execute(shop.store, OpenAccount(account="account-1", owner="Ann", initial_deposit=5))
    frame = event_log(result)
    assert list(frame["type"]) == ["AccountOpened", "MoneyDeposited"]
    assert list(frame.columns[len(ENVELOPE_COLUMNS) :]) == [
        "data.account",
        "data.owner",
        "data.amount",
    ]
    assert list(event_log(list(shop.store.read_all())[:2])["position"]) == [1, 2]


def test_an_empty_log_still_has_the_envelope_columns(shop: Shop) -> None:
    frame = event_log(shop.store, streams=StreamPrefix("nothing-"))
    assert tuple(frame.columns) == ENVELOPE_COLUMNS
    assert len(frame) == 0


def test_the_frame_is_deterministic(shop: Shop) -> None:
    from shop_log import make_shop

    assert event_log(shop.store).to_string() == event_log(make_shop().store).to_string()
