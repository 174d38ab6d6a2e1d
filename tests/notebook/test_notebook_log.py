"""The pure helpers: collect, filter_events, state_at, short ids, causation links."""

from __future__ import annotations

import uuid

import pytest
from shop_log import CART, FLOW, ItemAdded, OrderPlaced, Shop, cart_fold, make_shop

from eventcore import StreamPattern, StreamPrefix, ValidationError, execute
from eventcore.examples.bank import Balances, OpenAccount, fold
from eventcore.notebook import (
    causation_links,
    collect,
    filter_events,
    in_correlation,
    short_id,
    state_at,
)
from eventcore.notebook.log import resolve_correlation


def positions(events: list) -> list[int]:
    return [e.position for e in events]


def test_short_id_keeps_the_last_eight_hex_digits() -> None:
    assert short_id(uuid.UUID(int=0xABCDEF0123)) == "cdef0123"
    assert short_id(uuid.UUID("018f3173-7000-752e-89a7-834df2a74de4")) == "f2a74de4"
    assert short_id(None) is None


def test_collect_reads_stores_results_lists_and_single_events(shop: Shop) -> None:
    everything = collect(shop.store)
    assert positions(everything) == [1, 2, 3, 4, 5, 6, 7]
    assert positions(collect(shop.store, "cart-1")) == [1, 3]
    assert positions(collect(list(reversed(everything)))) == [1, 2, 3, 4, 5, 6, 7]
    assert positions(collect(everything[3])) == [4]
    result = execute(shop.store, OpenAccount(account="account-1", owner="Ann"))
    assert positions(collect(result)) == [8]


def test_collect_refuses_what_it_cannot_read(shop: Shop) -> None:
    with pytest.raises(ValidationError, match="only be read from a store"):
        collect(collect(shop.store), "cart-1")
    with pytest.raises(ValidationError, match="RecordedEvent items"):
        collect([1, 2])
    with pytest.raises(ValidationError, match="cannot read events from int"):
        collect(42)


@pytest.mark.parametrize(
    ("streams", "expected"),
    [
        (None, [1, 2, 3, 4, 5, 6, 7]),
        ("cart-1", [1, 3]),
        (["cart-2", "order-1"], [2, 4]),
        (StreamPrefix("stock-"), [5, 6]),
        (StreamPattern("*-1"), [1, 3, 4, 7]),
        ([], []),
    ],
)
def test_filter_by_streams(shop: Shop, streams: object, expected: list[int]) -> None:
    assert positions(filter_events(shop.store, streams=streams)) == expected


def test_filter_by_types_accepts_names_and_classes(shop: Shop) -> None:
    assert positions(filter_events(shop.store, types="OrderPlaced")) == [4]
    assert positions(filter_events(shop.store, types=[ItemAdded, "PaymentCaptured"])) == [
        1,
        2,
        3,
        7,
    ]
    assert positions(filter_events(shop.store, streams="cart-1", types=OrderPlaced)) == []


def test_store_filters_are_passed_to_the_store(shop: Shop) -> None:
    events = collect(shop.store, streams=StreamPattern("cart-*"), event_types=[ItemAdded])
    assert positions(events) == [1, 2, 3]


def test_state_at_replays_up_to_a_position(shop: Shop) -> None:
    assert state_at(shop.store, 0, cart_fold, {}) == {}
    assert state_at(shop.store, 2, cart_fold, {}) == {"cart-1:tea": 2, "cart-2:mug": 1}
    full = {"cart-1:tea": 2, "cart-2:mug": 1, "cart-1:pot": 1}
    assert state_at(shop.store, None, cart_fold, {}) == full
    assert state_at(shop.store, 99, cart_fold, {}) == full
    cart_only = filter_events(shop.store, streams=CART)
    assert state_at(cart_only, 2, cart_fold, {}) == {"cart-1:tea": 2}


def test_state_at_with_a_command_fold() -> None:
    from eventcore import InMemoryEventStore, SeededIds, TickingClock

    store = InMemoryEventStore(clock=TickingClock(), ids=SeededIds(seed=1))
    execute(store, OpenAccount(account="account-a", owner="A", initial_deposit=50))
    balances = state_at(store, 2, fold, Balances())
    assert balances["account-a"] == 50 and balances.is_open("account-a")
    assert not state_at(store, 0, fold, Balances()).is_open("account-a")


def test_correlation_and_causation_links(shop: Shop) -> None:
    flow = in_correlation(shop.store, FLOW)
    assert positions(flow) == [1, 3, 4, 5, 6, 7]
    assert positions(in_correlation(shop.store, "00000001")) == positions(flow)
    assert positions(in_correlation(shop.store, str(FLOW))) == positions(flow)
    links = [(c.position, e.position) for c, e in causation_links(flow)]
    assert links == [(1, 3), (3, 4), (4, 5), (4, 6), (4, 7)]
    # An event whose cause is outside the given events is a root: no link.
    assert [(c.position, e.position) for c, e in causation_links(flow[2:])] == [
        (4, 5),
        (4, 6),
        (4, 7),
    ]


def test_resolve_correlation_explains_a_miss() -> None:
    events = collect(make_shop().store)
    with pytest.raises(ValidationError, match="no correlation ids end with 'zzz'"):
        resolve_correlation(events, "zzz")
    other = events[1].metadata.correlation_id
    assert resolve_correlation(events, short_id(other) or "") == other


def test_importing_the_helpers_loads_no_optional_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, eventcore.notebook\n"
        "loaded = sorted({'pandas', 'matplotlib', 'ipywidgets'} & set(sys.modules))\n"
        "print(loaded)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_missing_optional_library_says_how_to_install_it() -> None:
    from eventcore.notebook._deps import require

    with pytest.raises(ModuleNotFoundError, match=r"pip install 'eventcore\[course\]'"):
        require("no_such_plotting_library.pyplot")
