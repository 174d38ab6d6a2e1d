"""Metadata: who and what caused an event (correlation, causation, frozen custom JSON), its
JSON form as the stores keep it, and the fast ``loads_json`` the stores decode rows with.
:mod:`eventcore.events` re-exports all of it (``from eventcore.events import Metadata``).

>>> meta = Metadata(custom={"user": "alice"})
>>> Metadata.from_json(meta.to_json()) == meta
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventcore.clock import uuid_from_text
from eventcore.codec import check_json_value
from eventcore.errors import DeserializationError, SerializationError
from eventcore.frozen import EMPTY, FrozenDict, freeze_json

__all__ = ["Metadata", "loads_json", "trusted_metadata"]


_RAW_DECODE = json.JSONDecoder().raw_decode


def loads_json(text: str | bytes) -> Any:
    """``json.loads(text)``: the same values and errors, faster for compact text (stored
    data) because it skips ``json.loads``'s handling of surrounding whitespace."""
    if type(text) is str:
        try:
            value, end = _RAW_DECODE(text)
        except ValueError:
            pass  # json.loads raises the error (or accepts what was only leading space)
        else:
            if end == len(text):
                return value
    return json.loads(text)


@dataclass(frozen=True, slots=True)
class Metadata:
    """Who and what caused an event. Stamped on every event one command writes.

    ``correlation_id`` groups all events of one business flow; ``causation_id`` is the id of
    the event (or message) that caused this one; ``custom`` is free-form JSON data, frozen on
    construction (a :class:`FrozenDict`, nested arrays :class:`FrozenList`), so metadata is
    immutable all the way down and hashable.

    >>> meta = Metadata(custom={"user": "alice", "roles": ["clerk"]})
    >>> meta.custom == {"user": "alice", "roles": ["clerk"]}
    True
    >>> meta == Metadata.from_json(meta.to_json())
    True
    >>> len({meta, Metadata.from_json(meta.to_json())})
    1
    """

    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    custom: Mapping[str, Any] = field(default_factory=FrozenDict)

    def __post_init__(self) -> None:
        for name in ("correlation_id", "causation_id"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, UUID):
                raise SerializationError(
                    f"Metadata.{name} must be a UUID or None, got {type(value).__name__} "
                    f"{value!r}; put other identifiers in Metadata.custom"
                )
        custom = self.custom
        if not isinstance(custom, Mapping):
            raise SerializationError(f"Metadata.custom must be a dict, got {type(custom).__name__}")
        if not custom:
            # Two UUIDs and {}: nothing more to check (every command passes here).
            if custom is not EMPTY:
                object.__setattr__(self, "custom", EMPTY)
            return
        check_json_value(dict(custom), "Metadata.custom")
        try:
            self.to_json().encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate in some str
            raise SerializationError(f"Metadata.custom is not valid Unicode text: {exc}") from None
        if type(custom) is not FrozenDict:
            object.__setattr__(self, "custom", freeze_json(custom))

    @classmethod
    def _trusted(
        cls, correlation_id: UUID | None, causation_id: UUID | None, custom: Mapping[str, Any]
    ) -> Metadata:
        """Build metadata from parts validated before (stored, or taken from a checked
        ``Metadata``), without checking them again (the custom data is frozen if it is not)."""
        meta = _new(cls)
        _set_correlation(meta, correlation_id)
        _set_causation(meta, causation_id)
        _set_custom(meta, custom if type(custom) is FrozenDict else freeze_json(custom))
        return meta

    def to_json(self) -> str:
        return json.dumps(
            {
                "correlation_id": None if self.correlation_id is None else str(self.correlation_id),
                "causation_id": None if self.causation_id is None else str(self.causation_id),
                "custom": self.custom,
            },
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            sort_keys=True,
        )

    @staticmethod
    def from_json(text: str | bytes | Mapping[str, Any]) -> Metadata:
        """Metadata back from :meth:`to_json`'s text (or its parsed object); anything else
        raises :class:`DeserializationError`."""
        try:
            if type(text) is str:
                data = loads_json(text)
            else:
                data = text if isinstance(text, Mapping) else json.loads(text)
            if not isinstance(data, Mapping):
                raise TypeError(f"expected an object, got {type(data).__name__}")
            corr = data.get("correlation_id")
            cause = data.get("causation_id")
            custom = data.get("custom")
            if custom is None:
                custom = EMPTY
            elif not isinstance(custom, dict):
                raise TypeError(f"custom must be an object, got {custom!r}")
            # Stored metadata was validated when it was written: build it without re-checking
            # the custom data (the hot path of every read).
            return Metadata._trusted(_uuid_or_none(corr), _uuid_or_none(cause), custom)
        except (ValueError, TypeError, AttributeError, SerializationError) as exc:
            raise DeserializationError(
                f"stored metadata {_excerpt(text)} is corrupt: {exc}"
            ) from None
        except RecursionError:
            raise DeserializationError(
                f"stored metadata {_excerpt(text)} is corrupt: it nests too deeply for "
                "Python's recursion limit"
            ) from None


# The slots' own setters: what ``object.__setattr__`` ends up calling on a frozen, slotted
# dataclass, without its attribute-name lookup (every stored row builds one Metadata).
_new = object.__new__
_set_correlation, _set_causation, _set_custom = (
    getattr(Metadata, name).__set__ for name in ("correlation_id", "causation_id", "custom")
)


def trusted_metadata(
    correlation_id: UUID | None, causation_id: UUID | None, custom: Mapping[str, Any]
) -> Metadata:
    """:class:`Metadata` from parts the stores validated before (a stored row, a checked
    ``Metadata``), without checking them again. For the stores, not for applications."""
    meta = _new(Metadata)
    _set_correlation(meta, correlation_id)
    _set_causation(meta, causation_id)
    _set_custom(meta, custom if type(custom) is FrozenDict else freeze_json(custom))
    return meta


def _excerpt(value: object, size: int = 120) -> str:
    """``repr(value)``, cut to about ``size`` characters for an error message."""
    shown = repr(value)
    return shown if len(shown) <= size else f"{shown[:size]}... ({len(shown)} characters)"


def _uuid_or_none(value: object) -> UUID | None:
    if value is None:
        return None
    if type(value) is not str:
        raise TypeError(f"an id must be a UUID string or null, got {value!r}")
    return uuid_from_text(value)
