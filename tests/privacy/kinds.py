"""The same events declared three ways: frozen dataclasses (the JSON codec), Pydantic v2
models and msgspec Structs, with every field type the three agree on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from pydantic import BaseModel, ConfigDict

from eventcore import StreamId, event
from eventcore.serializers import JsonSerializer, Serializer
from eventcore.serializers.msgspec_structs import MsgspecSerializer
from eventcore.serializers.pydantic_models import PydanticSerializer

AT = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
REF = UUID("12345678-1234-5678-1234-567812345678")


@dataclass(frozen=True)
class DcOrdered:
    order: StreamId
    amount: Decimal
    at: datetime
    ref: UUID
    tags: tuple[str, ...]
    note: str | None
    qty: int
    weight: float


class PdOrdered(BaseModel):
    model_config = ConfigDict(frozen=True)
    order: StreamId
    amount: Decimal
    at: datetime
    ref: UUID
    tags: tuple[str, ...]
    note: str | None
    qty: int
    weight: float


class MsOrdered(msgspec.Struct, frozen=True):
    order: StreamId
    amount: Decimal
    at: datetime
    ref: UUID
    tags: tuple[str, ...]
    note: str | None
    qty: int
    weight: float


@event(subject="customer", personal=("name", "email"))
@dataclass(frozen=True)
class DcRegistered:
    account: StreamId
    customer: str
    name: str
    email: str
    plan: str


@event(subject="customer", personal=("name", "email"))
class PdRegistered(BaseModel):
    model_config = ConfigDict(frozen=True)
    account: StreamId
    customer: str
    name: str
    email: str
    plan: str


@event(subject="customer", personal=("name", "email"))
class MsRegistered(msgspec.Struct, frozen=True):
    account: StreamId
    customer: str
    name: str
    email: str
    plan: str


KINDS: dict[str, tuple[Serializer, type, type]] = {
    "json": (JsonSerializer(), DcOrdered, DcRegistered),
    "pydantic": (PydanticSerializer(), PdOrdered, PdRegistered),
    "msgspec": (MsgspecSerializer(), MsOrdered, MsRegistered),
}


def ordered(cls: type, n: int, **changes: Any) -> Any:
    fields: dict[str, Any] = {
        "order": StreamId(f"order-{n}"),
        "amount": Decimal("12.50") + n,
        "at": AT,
        "ref": REF,
        "tags": ("gift", f"n{n}"),
        "note": None if n % 2 else "leave at the door",
        "qty": n,
        "weight": 0.25 * n,
    }
    fields.update(changes)
    return cls(**fields)


def registered(cls: type, n: int) -> Any:
    return cls(
        account=StreamId(f"account-{n}"),
        customer=f"customer-{n}",
        name=f"Ada Lovelace {n}",
        email=f"ada{n}@example.org",
        plan="gold",
    )
