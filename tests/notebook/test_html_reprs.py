"""Rich Jupyter reprs: deterministic, escaped, without memory addresses."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shop_log import Shop, make_shop

from eventcore import (
    BusinessRuleViolation,
    ConcurrencyError,
    Conflict,
    InMemoryEventStore,
    SeededIds,
    StreamId,
    TickingClock,
    VersionConflict,
    execute,
)
from eventcore.examples.bank import InsufficientFunds, OpenAccount, Withdraw

ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


def test_recorded_event_html(shop: Shop) -> None:
    event = next(iter(shop.store.read_stream(StreamId("order-1"))))
    html = event._repr_html_()
    assert html.startswith("<table")
    for cell in ("<td>4</td>", "<td>order-1</td>", "<td>1</td>", "<td>OrderPlaced</td>"):
        assert cell in html
    assert "ship_to=Address(city=&#x27;Oslo&#x27;)" in html
    assert "<td>2026-01-01T09:00:03+00:00</td>" in html
    assert html == next(iter(make_shop().store.read_stream(StreamId("order-1"))))._repr_html_()


def test_result_html_counts_events_and_attempts() -> None:
    store = InMemoryEventStore(clock=TickingClock(), ids=SeededIds(seed=1))
    result = execute(store, OpenAccount(account="account-a", owner="<A>", initial_deposit=5))
    html = result._repr_html_()
    assert html.startswith("<p><b>2 events recorded</b> (1 attempt)</p><table")
    assert "owner=&lt;A&gt;" in html  # escaped
    assert not ADDRESS.search(html)


def test_error_html() -> None:
    refused = InsufficientFunds(StreamId("account-a"), 5, 10)
    assert refused._repr_html_() == (
        '<div style="border-left:4px solid #c0392b;padding:4px 8px">'
        "<b>InsufficientFunds</b>: account-a holds 5, cannot withdraw 10</div>"
    )
    assert "&lt;b&gt;" in BusinessRuleViolation("<b>")._repr_html_()
    conflict = Conflict("account-a", 1, 3)
    gave_up = ConcurrencyError([conflict], attempts=5)._repr_html_()
    assert "<b>ConcurrencyError</b>: gave up after 5 attempts" in gave_up
    assert "<tr><td>account-a</td><td>1</td><td>3</td></tr>" in gave_up
    assert (
        "<tr><td>account-a</td><td>1</td><td>3</td></tr>"
        in VersionConflict([conflict])._repr_html_()
    )


def test_no_memory_addresses() -> None:
    class Opaque:
        pass

    @dataclass(frozen=True)
    class Odd:
        stream: StreamId

    error = BusinessRuleViolation(f"cannot use {Opaque()!r}")
    assert ADDRESS.search(str(error))
    assert not ADDRESS.search(error._repr_html_())
    from eventcore._html import _event_fields

    assert not ADDRESS.search(_event_fields(Opaque()))
    assert _event_fields(Odd(StreamId("s"))) == "stream=s"


def test_refused_command_leaves_no_html_surprises() -> None:
    store = InMemoryEventStore(clock=TickingClock(), ids=SeededIds(seed=1))
    execute(store, OpenAccount(account="account-a", owner="A"))
    try:
        execute(store, Withdraw(account="account-a", amount=1))
    except InsufficientFunds as error:
        assert "cannot withdraw 1" in error._repr_html_()
    else:  # pragma: no cover
        raise AssertionError("expected InsufficientFunds")
