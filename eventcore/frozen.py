"""Frozen JSON: the read-only, hashable objects and arrays that ``Metadata.custom`` holds.

:class:`FrozenDict` is a ``dict`` and :class:`FrozenList` a ``list`` for reading, for ``json``
and for equality, but every method that would change them raises ``TypeError`` (as a tuple
does), and they hash, so metadata is immutable all the way down and can be a set member or
a dictionary key.

>>> data = freeze_json({"who": {"roles": ["clerk"]}})
>>> data == {"who": {"roles": ["clerk"]}}, type(data["who"]["roles"]).__name__
(True, 'FrozenList')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, NoReturn, SupportsIndex

__all__ = ["EMPTY", "FrozenDict", "FrozenList", "freeze_json"]


def _read_only(obj: object, *args: object, **kwargs: object) -> NoReturn:
    raise TypeError(
        f"{type(obj).__name__} is read-only: Metadata.custom is frozen like the metadata that "
        "holds it; build new metadata instead, for example "
        "Metadata(custom={**old.custom, 'key': value})"
    )


class FrozenDict(dict[str, Any]):
    """A JSON object that cannot change: what ``Metadata.custom`` holds (nested objects and
    arrays are frozen too). It is a ``dict`` for reading, for ``json`` and for equality
    (``FrozenDict({"a": 1}) == {"a": 1}``), and it is hashable.

    >>> custom = FrozenDict({"roles": ["clerk"]})
    >>> custom == {"roles": ["clerk"]}, hash(custom) == hash(FrozenDict(custom))
    (True, True)
    >>> custom["roles"].append("admin")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: FrozenList is read-only: ...
    """

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        items = dict(*args, **kwargs)
        dict.update(self, {k: freeze_json(v) for k, v in items.items()})

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[type[FrozenDict], tuple[dict[str, Any]]]:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: object) -> FrozenDict:
        return self

    def __setitem__(self, key: str, value: Any) -> NoReturn:
        _read_only(self)

    def __delitem__(self, key: str) -> NoReturn:
        _read_only(self)

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _read_only(self)

    def clear(self) -> NoReturn:
        _read_only(self)

    def pop(self, *args: Any, **kwargs: Any) -> NoReturn:
        _read_only(self)

    def popitem(self) -> NoReturn:
        _read_only(self)

    def setdefault(self, *args: Any, **kwargs: Any) -> NoReturn:
        _read_only(self)

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        _read_only(self)


class FrozenList(list[Any]):
    """A JSON array that cannot change (inside a :class:`FrozenDict`). It is a ``list`` for
    reading, for ``json`` and for equality (``FrozenList([1]) == [1]``), and it is hashable."""

    __slots__ = ()

    def __init__(self, values: Iterable[Any] = ()) -> None:
        list.extend(self, [freeze_json(v) for v in values])

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))

    def __reduce__(self) -> tuple[type[FrozenList], tuple[list[Any]]]:
        return (FrozenList, (list(self),))

    def __copy__(self) -> FrozenList:
        return self

    def __deepcopy__(self, memo: object) -> FrozenList:
        return self

    def __setitem__(self, index: Any, value: Any) -> NoReturn:
        _read_only(self)

    def __delitem__(self, index: SupportsIndex | slice) -> NoReturn:
        _read_only(self)

    def __iadd__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _read_only(self)

    def __imul__(self, other: SupportsIndex) -> NoReturn:
        _read_only(self)

    def append(self, value: Any) -> NoReturn:
        _read_only(self)

    def extend(self, values: Any) -> NoReturn:
        _read_only(self)

    def insert(self, index: SupportsIndex, value: Any) -> NoReturn:
        _read_only(self)

    def pop(self, index: SupportsIndex = -1) -> NoReturn:
        _read_only(self)

    def remove(self, value: Any) -> NoReturn:
        _read_only(self)

    def clear(self) -> NoReturn:
        _read_only(self)

    def sort(self, *args: Any, **kwargs: Any) -> NoReturn:
        _read_only(self)

    def reverse(self) -> NoReturn:
        _read_only(self)


EMPTY: Final = FrozenDict()
"""The custom data of metadata without any: one shared, frozen, empty object."""


def freeze_json(value: Any) -> Any:
    """JSON data with every object a :class:`FrozenDict` and every array a
    :class:`FrozenList` (frozen parts are kept as they are)."""
    kind = type(value)
    if kind is FrozenDict or kind is FrozenList:
        return value
    if isinstance(value, Mapping):
        return FrozenDict(value) if value else EMPTY
    if isinstance(value, (list, tuple)):
        return FrozenList(value)
    return value
