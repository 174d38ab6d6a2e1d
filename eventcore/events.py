"""Events: plain frozen dataclasses, their type names and streams, and the recorded envelope.

An event class is an ordinary frozen dataclass. Its *stream* is its one field typed
:class:`~eventcore.types.StreamId`; its *type name* is the class name. Both can be set
explicitly with the optional :func:`event` decorator, which also checks the class at once:

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class MoneyDeposited:
...     account: StreamId
...     amount: int
>>> info = event_info(MoneyDeposited)
>>> info.type_name, info.stream_field
('MoneyDeposited', 'account')
>>> @event(name="transfer-recorded", stream="source", version=2)
... @dataclass(frozen=True)
... class TransferRecorded:
...     source: StreamId
...     target: StreamId
...     amount: int
>>> event_info(TransferRecorded).type_name
'transfer-recorded'
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, Protocol, TypeVar, overload
from uuid import UUID

from eventcore.codec import type_hints
from eventcore.errors import (
    ConfigurationError,
    DefinitionError,
    DeserializationError,
    SerializationError,
)
from eventcore.frozen import FrozenDict, FrozenList
from eventcore.metadata import Metadata
from eventcore.metadata import loads_json as loads_json
from eventcore.metadata import trusted_metadata as trusted_metadata
from eventcore.serializers import EventCodec, Serializer, serializer_for
from eventcore.types import StreamId

__all__ = [
    "EventInfo",
    "EventTypes",
    "FrozenDict",
    "FrozenList",
    "Metadata",
    "RecordedEvent",
    "Sealing",
    "Upcaster",
    "UpcasterNotImplemented",
    "VersionedEvent",
    "event",
    "event_info",
    "stream_of",
]

T = TypeVar("T", bound=type)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns the JSON data of one schema version into the data of the next version."""


class UpcasterNotImplemented(DeserializationError, NotImplementedError):
    """An upcaster raised ``NotImplementedError`` (a stub not written yet): reported like any
    failing upcaster, and still caught by ``except NotImplementedError``."""


@dataclass(frozen=True, slots=True)
class EventInfo:
    """What EventCore knows about one event class."""

    cls: type
    type_name: str
    version: int
    stream_field: str
    codec: EventCodec
    subject_field: str | None = None
    """The field holding the id of the person the event is about (``None``: the stream)."""
    personal: tuple[str, ...] = ()
    """The fields holding personal data, encrypted under the subject's key (see
    :mod:`eventcore.crypto`); empty for an event without personal data."""
    serializer: str = "json"
    """The name of the :class:`~eventcore.serializers.Serializer` of the codec."""


class Sealing(Protocol):
    """What an :class:`EventTypes` registry needs of an encryption (see
    :class:`eventcore.crypto.Encryption`): a codec that seals an event class's personal
    fields, and whether classes that declare none are sealed too."""

    @property
    def all_events(self) -> bool: ...

    def seal(self, info: EventInfo) -> EventCodec: ...


_INFO: dict[type, EventInfo] = {}
_INFO_LOCK = threading.Lock()


@overload
def event(cls: T, /) -> T: ...
@overload
def event(
    *,
    name: str | None = None,
    stream: str | None = None,
    version: int = 1,
    subject: str | None = None,
    personal: Iterable[str] | None = None,
) -> Callable[[T], T]: ...
def event(
    cls: T | None = None,
    /,
    *,
    name: str | None = None,
    stream: str | None = None,
    version: int = 1,
    subject: str | None = None,
    personal: Iterable[str] | None = None,
) -> T | Callable[[T], T]:
    """Check an event class now (not at its first append) and optionally set its type name,
    stream field and schema version. Put it *above* ``@dataclass(frozen=True)``.

    ``subject`` names the field holding the id of the person the event is about, and
    ``personal`` the fields holding their personal data (with only ``subject``: every field
    but the stream and the subject; with only ``personal``: the subject is the stream). A
    store encrypts those fields under the subject's key (:mod:`eventcore.crypto`) and
    refuses to store the class without an encryption."""

    def apply(c: T) -> T:
        if name is not None:
            c.__event_type__ = name  # type: ignore[attr-defined]
        if stream is not None:
            c.__event_stream__ = stream  # type: ignore[attr-defined]
        if subject is not None:
            c.__event_subject__ = subject  # type: ignore[attr-defined]
        if personal is not None:
            c.__event_personal__ = (  # type: ignore[attr-defined]
                (personal,) if isinstance(personal, str) else tuple(personal)
            )
        c.__event_version__ = version  # type: ignore[attr-defined]
        event_info(c)
        return c

    return apply(cls) if cls is not None else apply


def event_info(cls: type) -> EventInfo:
    """Check ``cls`` as an event class and describe it, or raise :class:`DefinitionError`."""
    info = _INFO.get(cls)
    if info is not None:
        return info
    with _INFO_LOCK:
        info = _INFO.get(cls) or _describe(cls)
        _INFO[cls] = info
    return info


def _describe(cls: type, serializer: Serializer | None = None) -> EventInfo:
    serializer = serializer or serializer_for(cls)
    names = serializer.fields(cls)  # raises DefinitionError: not a class, not frozen
    type_name = cls.__dict__.get("__event_type__", cls.__name__)
    if not isinstance(type_name, str) or not type_name.strip() or len(type_name) > 200:
        raise DefinitionError(
            f"{cls.__name__}.__event_type__ must be a non-empty str of at most 200 characters, "
            f"got {type_name!r}"
        )
    version = cls.__dict__.get("__event_version__", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DefinitionError(
            f"{cls.__name__}.__event_version__ must be an int >= 1, got {version!r}"
        )
    codec = serializer.codec(cls)  # raises DefinitionError for unsupported field types
    hints = type_hints(cls)
    stream_fields = [n for n in names if hints.get(n) is StreamId]
    explicit = getattr(cls, "__event_stream__", None)
    if explicit is not None:
        if explicit not in stream_fields:
            raise DefinitionError(
                f"{cls.__name__} names {explicit!r} as its stream field, but its StreamId "
                f"fields are {stream_fields}; name one of them"
            )
        stream_field = explicit
    elif len(stream_fields) == 1:
        stream_field = stream_fields[0]
    elif not stream_fields:
        raise DefinitionError(
            f"{cls.__name__} has no StreamId field, so EventCore cannot tell which stream it "
            "belongs to; add one (for example 'account: StreamId')"
        )
    else:
        raise DefinitionError(
            f"{cls.__name__} has several StreamId fields {stream_fields}; say which one is its "
            f"stream with @event(stream={stream_fields[0]!r}) or "
            f"__event_stream__ = {stream_fields[0]!r}"
        )
    subject_field, personal = _personal_fields(cls, names, stream_field)
    return EventInfo(
        cls,
        type_name.strip(),
        version,
        stream_field,
        codec,
        subject_field,
        personal,
        serializer.name,
    )


def _personal_fields(
    cls: type, names: tuple[str, ...], stream_field: str
) -> tuple[str | None, tuple[str, ...]]:
    """The subject field and the personal fields that ``cls`` declares (see :func:`event`)."""
    subject = getattr(cls, "__event_subject__", None)
    personal = getattr(cls, "__event_personal__", None)
    if subject is not None and (not isinstance(subject, str) or subject not in names):
        raise DefinitionError(
            f"{cls.__name__} names {subject!r} as its data subject, but its fields are "
            f"{list(names)}; name one of them"
        )
    if subject == stream_field:
        subject = None  # the stream is the subject anyway
    if personal is None:
        if subject is None:
            return None, ()
        personal = tuple(n for n in names if n not in (stream_field, subject))
    personal = tuple(personal)
    unknown = [p for p in personal if p not in names]
    kept = [p for p in personal if p in (stream_field, subject)]
    if unknown or kept or not personal or len(set(personal)) != len(personal):
        raise DefinitionError(
            f"{cls.__name__} declares personal fields {list(personal)}: each must be one of "
            f"its fields {list(names)}, named once, and neither its stream field "
            f"{stream_field!r} nor its subject field (they stay readable to find the key)"
        )
    return subject, personal


def stream_of(evt: object) -> StreamId:
    """The stream an event belongs to.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Opened:
    ...     account: StreamId
    >>> stream_of(Opened(StreamId("account-1")))
    StreamId('account-1')
    """
    info = event_info(type(evt))
    value = getattr(evt, info.stream_field)
    if isinstance(value, StreamId):
        return value
    try:
        return StreamId(value)
    except ValueError as exc:
        raise SerializationError(
            f"{info.type_name}.{info.stream_field} is not a valid stream id: {exc}"
        ) from None


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: the domain event and its envelope.

    ``stream_version`` counts events in the stream (the first is 1); ``position`` is the
    global position, strictly increasing in commit order.

    Frozen, with frozen :class:`Metadata`; ``event`` is as immutable as its class (a frozen
    dataclass whose lists and dicts each reader gets afresh). Records hash by position and
    event id, so they can be kept in sets and used as dictionary keys.
    """

    position: int
    stream_id: StreamId
    stream_version: int
    event_type: str
    event: Any
    event_id: UUID
    recorded_at: datetime
    metadata: Metadata

    def __hash__(self) -> int:
        """From the position and the event id (equal records have both equal), so records
        hash even when the domain event holds a list."""
        return hash((self.position, self.event_id))

    def _repr_html_(self) -> str:
        from eventcore._html import recorded_event_html

        return recorded_event_html(self)


@dataclass(frozen=True, slots=True)
class VersionedEvent:
    """A domain event and its version in its stream, without the rest of the envelope: what
    a command's fold needs (``apply`` sees ``event``; the version is checked at append).

    The SQL stores' ``read_stream_events`` gives these to ``execute``: it decodes each event
    but not its id, time or metadata: about half the cost of reading each as a
    :class:`RecordedEvent`.
    """

    stream_version: int
    event: Any


_JSON: Final = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
)
"""One encoder for every event (``json.dumps`` with options builds a new one per call). The
codec's output is fresh and acyclic, so the circular-reference check has nothing to find."""


class EventTypes:
    """Maps stored type names to event classes, for one store. Not global: each store owns one.

    Classes are added when they are first appended, or up front (``events=[...]`` on a store)
    so that a fresh process can read what an earlier one wrote.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Opened:
    ...     account: StreamId
    >>> types = EventTypes([Opened])
    >>> types.class_for("Opened").__name__
    'Opened'
    """

    def __init__(
        self,
        classes: Iterable[type] = (),
        *,
        serializer: Serializer | None = None,
        encryption: Sealing | None = None,
    ) -> None:
        self.serializer = serializer
        """Every class goes through this serializer (``None``: each through its kind's)."""
        self.encryption = encryption
        """Seals personal fields (:class:`eventcore.crypto.Encryption`), or ``None``."""
        self._by_name: dict[str, EventInfo] = {}
        self._by_class: dict[type, EventInfo] = {}  # classes registered here, for encode()
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._lock = threading.Lock()
        for cls in classes:
            self.register(cls)

    def register(self, cls: type) -> EventInfo:
        """Add an event class; a different class with the same type name is an error."""
        known = self._by_class.get(cls)
        if known is not None:
            return known
        info = self._configured(event_info(cls))
        with self._lock:
            known = self._by_name.get(info.type_name)
            if known is not None and known.cls is not cls:
                raise DefinitionError(
                    f"event type name {info.type_name!r} is used by both "
                    f"{known.cls.__module__}.{known.cls.__qualname__} and "
                    f"{cls.__module__}.{cls.__qualname__}; give one of them another name "
                    "with @event(name=...)"
                )
            self._by_name[info.type_name] = info
            self._by_class[cls] = info
        return info

    def _configured(self, info: EventInfo) -> EventInfo:
        """``info`` with this registry's serializer and encryption applied."""
        serializer = self.serializer
        if serializer is not None and serializer.name != info.serializer:
            if not serializer.accepts(info.cls):
                raise DefinitionError(
                    f"{info.cls.__name__} cannot be stored by this store's {serializer.name!r} "
                    f"serializer (it is a {info.serializer!r} class); use one kind of event "
                    "class per store, or no serializer to pick one per class"
                )
            info = _describe(info.cls, serializer)
        sealing = self.encryption
        if sealing is not None and (info.personal or sealing.all_events):
            info = dataclasses.replace(info, codec=sealing.seal(info))
        elif info.personal:
            raise ConfigurationError(
                f"{info.cls.__name__} declares personal fields {list(info.personal)} but this "
                "store has no encryption, so they would be stored in plaintext; pass "
                "events=EventTypes([...], encryption=Encryption(keys)) "
                "(eventcore.crypto, pip install eventcore[crypto])"
            )
        return info

    def register_upcaster(self, type_name: str, from_version: int, upcaster: Upcaster) -> None:
        """Teach the registry to turn stored ``type_name`` data of ``from_version`` into the
        data of ``from_version + 1``. Chains run until the class's current version."""
        self._upcasters[(type_name, from_version)] = upcaster

    def names_for(self, selectors: Iterable[str | type]) -> frozenset[str]:
        """Type names for a mix of names and classes (classes are registered on the way)."""
        return frozenset(s if isinstance(s, str) else self.register(s).type_name for s in selectors)

    @property
    def by_name(self) -> Mapping[str, EventInfo]:
        """The registered types by type name: a live, read-only view."""
        return MappingProxyType(self._by_name)

    def class_for(self, type_name: str) -> type:
        return self._info_for_name(type_name, "").cls

    def _info_for_name(self, type_name: str, where: str) -> EventInfo:
        info = self._by_name.get(type_name)
        if info is None and type_name.startswith("eventcore."):
            from eventcore.tombstones import system_info  # tombstones: every registry reads them

            info = system_info(type_name)
        if info is None:
            known = ", ".join(sorted(self._by_name)) or "none"
            raise DeserializationError(
                f"unknown event type {type_name!r}{where}; this store knows: {known}. "
                "Pass the class to the store, for example "
                f"SqliteEventStore(path, events=[{type_name}, ...])"
            )
        return info

    def encode(self, evt: object) -> tuple[EventInfo, str]:
        """Return the event's info and its JSON text, or raise SerializationError."""
        info = self._by_class.get(type(evt))
        if info is None:
            try:
                info = self.register(type(evt))
            except DefinitionError as exc:
                raise SerializationError(f"cannot store {evt!r}: {exc}") from None
        data = info.codec.encode(evt)
        try:
            text = _JSON.encode(data)
        except (TypeError, ValueError) as exc:  # pragma: no cover - the codec checks first
            raise SerializationError(f"cannot encode {info.type_name}: {exc}") from None
        except RecursionError:  # only in an already deep call stack: the codec checks depth
            raise SerializationError(
                f"cannot encode {info.type_name}: its data nests too deeply for Python's "
                "recursion limit; flatten it. Nothing was written."
            ) from None
        try:
            if not text.isascii():  # ASCII text cannot hold a surrogate
                text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate in some str field
            raise SerializationError(
                f"cannot encode {type(evt).__name__}: its text is not valid Unicode ({exc}). "
                "Nothing was written."
            ) from None
        return info, text

    def decode(
        self, type_name: str, version: int, data: str | bytes | dict[str, Any], where: str = ""
    ) -> Any:
        """Decode stored data (JSON text or an already-parsed dict) into an event."""
        info = self._info_for_name(type_name, where)
        if type(version) is not int or version < 1:
            raise DeserializationError(
                f"stored schema version {version!r} of {type_name}{where} is not an int >= 1; "
                "the row is corrupt"
            )
        try:
            payload = loads_json(data) if isinstance(data, (str, bytes)) else data
        except ValueError as exc:
            raise DeserializationError(
                f"stored data of {type_name}{where} is not valid JSON: {exc}"
            ) from None
        except RecursionError:
            raise DeserializationError(
                f"stored data of {type_name}{where} nests too deeply for Python's recursion limit"
            ) from None
        upcasting = getattr(info.codec, "decode_upcast", None)  # a sealed codec's
        if version != info.version:
            if upcasting is not None:
                try:
                    return upcasting(
                        payload, version, lambda p: self._upcast(info, version, p, where)
                    )
                except DeserializationError as exc:
                    if where in str(exc):
                        raise
                    raise type(exc)(f"{exc}{where}") from None
            payload = self._upcast(info, version, payload, where)
        try:
            return info.codec.decode(payload)
        except DeserializationError as exc:
            if upcasting is None and isinstance(payload, dict) and "$sealed" in payload:
                raise DeserializationError(
                    f"stored data of {type_name}{where} is encrypted but this store has no "
                    "encryption for it; pass events=EventTypes([...], "
                    "encryption=Encryption(keys)) with the key store that wrote it"
                ) from None
            raise type(exc)(f"{exc}{where}") from None  # MissingKey stays MissingKey

    def _upcast(self, info: EventInfo, version: int, payload: Any, where: str) -> Any:
        if version > info.version:
            raise DeserializationError(
                f"{info.type_name}{where} was stored with schema version {version}, newer than "
                f"the class's version {info.version}; upgrade the code that reads it"
            )
        while version < info.version:
            up = self._upcasters.get((info.type_name, version))
            if up is None:
                raise DeserializationError(
                    f"{info.type_name}{where} was stored with schema version {version} but the "
                    f"class is version {info.version}; register an upcaster with "
                    f"register_upcaster({info.type_name!r}, {version}, fn)"
                )
            try:
                payload = up(payload)
            except Exception as exc:
                error = (
                    UpcasterNotImplemented
                    if isinstance(exc, NotImplementedError)
                    else DeserializationError
                )
                raise error(
                    f"the upcaster of {info.type_name} from schema version {version} to "
                    f"{version + 1} failed{where}: {type(exc).__name__}: {exc}; fix the "
                    "upcaster so that it accepts this stored data"
                ) from exc
            version += 1
        return payload
