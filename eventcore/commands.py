"""Commands: which streams they need, how they fold state, and what they decide.

A command is a class with *stream fields* (marked with :func:`stream`), ordinary fields, an
initial state, a pure ``apply`` and a pure ``handle``. Subclasses become frozen, keyword-only
dataclasses automatically, so stream fields and ordinary fields mix in any order:

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Deposited:
...     account: StreamId
...     amount: int
>>> class Deposit(Command[int]):
...     account: StreamId = stream()
...     amount: int
...
...     def initial_state(self) -> int:
...         return 0
...
...     def apply(self, balance: int, event: object) -> int:
...         return balance + event.amount if isinstance(event, Deposited) else balance
...
...     def handle(self, balance: int) -> list[object]:
...         require(self.amount > 0, "amount must be positive")
...         return [Deposited(self.account, self.amount)]
>>> cmd = Deposit(account="account-1", amount=5)
>>> cmd.streams()
(StreamId('account-1'),)
>>> cmd.handle(cmd.initial_state())
[Deposited(account=StreamId('account-1'), amount=5)]
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import typing
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Generic, NoReturn, TypeVar, dataclass_transform

from eventcore.errors import BusinessRuleViolation, DefinitionError, InvalidStreamId
from eventcore.types import StreamId

__all__ = ["Command", "require", "stream"]

S = TypeVar("S")

_STREAM_KEY = "eventcore.stream"


def stream() -> Any:
    """Mark a command field as a stream the command reads, folds and version-checks.

    The field's type must be ``StreamId`` or ``tuple[StreamId, ...]``. Plain strings are
    accepted when constructing the command and are validated into ``StreamId``.
    """
    return dataclasses.field(metadata={_STREAM_KEY: True})


def require(condition: object, error: str | BusinessRuleViolation) -> None:
    """Raise a business-rule violation unless ``condition`` holds.

    ``error`` is a message or a :class:`BusinessRuleViolation` instance (subclass it for
    typed domain errors).

    >>> require(2 > 1, "never raised")
    >>> require(0 > 1, "amount must be positive")
    Traceback (most recent call last):
    ...
    eventcore.errors.BusinessRuleViolation: amount must be positive
    """
    if condition:
        return
    _fail(error)


def _fail(error: str | BusinessRuleViolation) -> NoReturn:
    if isinstance(error, BusinessRuleViolation):
        raise error
    if isinstance(error, str):
        raise BusinessRuleViolation(error)
    raise DefinitionError(  # a TypeError too: the command's handle() passed the wrong thing
        f"require() takes a message or a BusinessRuleViolation, got {type(error).__name__}; "
        "make your domain error a subclass of BusinessRuleViolation"
    )


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(stream,))
class Command(Generic[S]):
    """Base class of commands. ``S`` is the type of the state the command folds.

    Override ``initial_state``, ``apply`` and ``handle``; optionally ``discover_streams`` to
    read more streams that the state names (for example the products in an order).
    A class attribute ``snapshot = SnapshotPolicy(...)`` opts the command into state
    snapshots; the pipeline never looks at it (see :mod:`eventcore.snapshots`).
    """

    _stream_fields: ClassVar[tuple[tuple[str, bool], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_streams_first(cls)
        if "__dataclass_fields__" not in cls.__dict__:
            dataclasses.dataclass(cls, frozen=True, kw_only=True)
        cls._stream_fields = _stream_fields_of(cls)
        abstract = cls.__dict__.get("__abstract__", False)
        if not cls._stream_fields and not abstract:
            raise DefinitionError(
                f"command {cls.__name__} declares no streams; mark at least one field with "
                "stream(), for example 'account: StreamId = stream()'"
            )

    def __post_init__(self) -> None:
        _check_stream_fields(self)

    def streams(self) -> tuple[StreamId, ...]:
        """The declared streams, in declaration order, without duplicates."""
        seen: dict[StreamId, None] = {}
        for name, many in self._stream_fields:
            value = getattr(self, name)
            for sid in value if many else (value,):
                seen.setdefault(sid, None)
        return tuple(seen)

    def initial_state(self) -> S:
        """The state before any event is applied. Override it."""
        raise NotImplementedError(f"{type(self).__name__} must define initial_state()")

    def apply(self, state: S, event: Any) -> S:
        """Fold one event into the state and return the new state. Pure: no I/O."""
        raise NotImplementedError(f"{type(self).__name__} must define apply(state, event)")

    def handle(self, state: S) -> Sequence[object]:
        """Decide: return the new events, or raise through :func:`require`. Pure: no I/O."""
        raise NotImplementedError(f"{type(self).__name__} must define handle(state)")

    def discover_streams(self, state: S) -> Iterable[StreamId]:
        """More streams to read, named by the state folded so far (none by default).

        Called after every stream is folded; each new stream is read once, breadth-first,
        and joins the concurrency check.
        """
        return ()


def _check_stream_fields(command: Command[Any]) -> None:
    """Validate every stream field into ``StreamId`` (idempotent: a checked id stays)."""
    for name, many in command._stream_fields:
        value = getattr(command, name)
        try:
            if many:
                if isinstance(value, str) or not isinstance(value, Iterable):
                    raise InvalidStreamId(
                        f"expected a tuple of stream ids, got {type(value).__name__}"
                    )
                checked: object = tuple(StreamId(v) for v in value)
            else:
                checked = StreamId(value)
        except InvalidStreamId as exc:
            raise InvalidStreamId(f"{type(command).__name__}.{name}: {exc}") from None
        if checked is not value:
            object.__setattr__(command, name, checked)


def _check_streams_first(cls: type) -> None:
    """Make the stream fields of ``cls`` validated whatever its body defines: a
    ``__post_init__`` of its own runs after the check (and sees checked ids), an ``__init__``
    of its own is followed by it."""
    own_post_init = cls.__dict__.get("__post_init__")
    if own_post_init is not None and not hasattr(own_post_init, "__eventcore_checked__"):

        @functools.wraps(own_post_init)
        def __post_init__(self: Command[Any], *args: Any, **kwargs: Any) -> None:
            _check_stream_fields(self)
            own_post_init(self, *args, **kwargs)

        __post_init__.__eventcore_checked__ = True  # type: ignore[attr-defined]
        cls.__post_init__ = __post_init__  # type: ignore[attr-defined]
    own_init = cls.__dict__.get("__init__")
    if own_init is not None and not hasattr(own_init, "__eventcore_checked__"):

        @functools.wraps(own_init)
        def __init__(self: Command[Any], *args: Any, **kwargs: Any) -> None:
            own_init(self, *args, **kwargs)
            _check_stream_fields(self)

        __init__.__eventcore_checked__ = True  # type: ignore[attr-defined]
        cls.__init__ = __init__  # type: ignore[misc]


def _stream_fields_of(cls: type) -> tuple[tuple[str, bool], ...]:
    found: list[tuple[str, bool]] = []
    for f in dataclasses.fields(cls):
        if not f.metadata.get(_STREAM_KEY):
            continue
        hint = _resolve(cls, f.name, f.type)
        if hint is StreamId:
            found.append((f.name, False))
        elif typing.get_origin(hint) is tuple and typing.get_args(hint) == (StreamId, ...):
            found.append((f.name, True))
        else:
            shown = (
                repr(hint).replace("eventcore.types.", "")  # list[StreamId], not just list
                if typing.get_origin(hint) is not None
                else getattr(hint, "__name__", None) or repr(hint)
            )
            raise DefinitionError(
                f"{cls.__name__}.{f.name} is marked stream() but typed {shown}; "
                "stream fields must be StreamId or tuple[StreamId, ...]"
            )
    return tuple(found)


def _resolve(cls: type, name: str, annotation: object) -> object:
    """Resolve one field's annotation (only stream fields need resolving)."""
    if not isinstance(annotation, str):
        return annotation
    module = sys.modules.get(cls.__module__)
    namespace = {**vars(module)} if module is not None else {}
    namespace.setdefault("StreamId", StreamId)
    try:
        return eval(annotation, namespace, dict(vars(cls)))
    except Exception as exc:
        raise DefinitionError(
            f"cannot resolve the annotation {annotation!r} of {cls.__name__}.{name} ({exc})"
        ) from None
