"""What a snapshot is: the policy a command opts in with, the stored record, the state codec,
the never-regress rule and the replay report.

>>> policy = SnapshotPolicy(every=50, version=2)
>>> snap = Snapshot("Deposit/v2/account-1", ((StreamId("account-1"), 120),), (75,))
>>> snap.state, snap.versions
(75, {StreamId('account-1'): 120})
>>> older = Snapshot("Deposit/v2/account-1", ((StreamId("account-1"), 90),), (40,))
>>> snap.covers(older), older.covers(snap)
(True, False)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from eventcore.codec import ClassCodec, compile_codec
from eventcore.errors import DefinitionError, DeserializationError, SerializationError
from eventcore.types import StreamId, trusted_stream_id

if TYPE_CHECKING:
    from eventcore.commands import Command

__all__ = [
    "ReplayReport",
    "Snapshot",
    "SnapshotInfo",
    "SnapshotPolicy",
    "SnapshotWarning",
    "StateCodec",
    "StreamReplay",
    "default_snapshot_id",
    "state_codec",
]

MAX_SNAPSHOT_ID_LENGTH: Final = 1024
_STREAMS_IN_ID: Final = 200  # longer stream lists are hashed into the default id


class SnapshotWarning(UserWarning):
    """A stored snapshot was ignored (its state no longer decodes, or it claims versions the
    streams do not have); the command replayed the streams instead."""


@dataclass(frozen=True, slots=True)
class SnapshotPolicy:
    """Opt a command into snapshots: ``snapshot = SnapshotPolicy(every=100, version=1)``.

    ``every``: save a snapshot when one execution folded at least this many events from the
    log (a full replay, or the tail after the last snapshot). ``version``: the version of
    the state's meaning; it is part of the default snapshot id, so bumping it (when
    ``apply``, ``initial_state`` or the state type change) leaves old snapshots unused.
    """

    every: int = 100
    version: int = 1

    def __post_init__(self) -> None:
        for name in ("every", "version"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DefinitionError(f"SnapshotPolicy.{name} must be an int >= 1, got {value!r}")


def default_snapshot_id(command: Command[Any]) -> str:
    """``<Class>/v<version>/<stream>,<stream>...``: the command class, the policy version and
    the declared streams in order (``,`` and ``%`` in stream ids are percent-escaped; a long
    list is replaced by its SHA-256)."""
    policy = type(command).snapshot
    version = policy.version if isinstance(policy, SnapshotPolicy) else 1
    streams = ",".join(s.replace("%", "%25").replace(",", "%2C") for s in command.streams())
    if len(streams) > _STREAMS_IN_ID:
        streams = "sha256:" + hashlib.sha256(streams.encode("utf-8")).hexdigest()
    return f"{type(command).__qualname__}/v{version}/{streams}"


def check_snapshot_id(value: object) -> str:
    """The id itself, or a :class:`DefinitionError` saying what is wrong with it."""
    if not isinstance(value, str) or not value or len(value) > MAX_SNAPSHOT_ID_LENGTH:
        raise DefinitionError(
            f"a snapshot id must be a non-empty str of at most {MAX_SNAPSHOT_ID_LENGTH} "
            f"characters, got {value!r}"
        )
    return value


# -- the stored record ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A command's folded state at known stream versions.

    ``streams``: every stream the command read, in discovery order, with the version it had.
    ``checkpoints``: the encoded (JSON) state after folding each of those streams, in the same
    order; the last one is the state itself. ``saved_at`` is set by the store.
    """

    snapshot_id: str
    streams: tuple[tuple[StreamId, int], ...]
    checkpoints: tuple[Any, ...]
    saved_at: datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.streams or len(self.streams) != len(self.checkpoints):
            raise ValueError(
                f"snapshot {self.snapshot_id!r} needs one checkpoint per stream, got "
                f"{len(self.streams)} streams and {len(self.checkpoints)} checkpoints"
            )

    @property
    def state(self) -> Any:
        """The encoded state after every stream (the last checkpoint)."""
        return self.checkpoints[-1]

    @property
    def versions(self) -> dict[StreamId, int]:
        return dict(self.streams)

    @property
    def events(self) -> int:
        """How many events the snapshot stands for (the sum of its stream versions)."""
        return sum(v for _, v in self.streams)

    def covers(self, other: Snapshot) -> bool:
        """True when saving ``self`` over ``other`` is not a regression.

        No stream both share may go back, and ``self`` must keep every stream of ``other``
        unless one shared stream moved forward (a newer state may discover fewer streams).
        Equal versions cover each other, so a snapshot can be rebuilt in place.
        """
        return covers(self.versions, other.versions)

    def decode_state(self, command: Command[Any]) -> Any:
        """The state, decoded as ``command`` decodes it."""
        return command.decode_state(self.state)

    def to_json(self) -> str:
        """The streams and checkpoints as compact JSON text (what the SQL stores keep)."""
        try:
            return json.dumps(
                {"streams": [[s, v] for s, v in self.streams], "checkpoints": self.checkpoints},
                ensure_ascii=False,
                allow_nan=False,
                separators=(",", ":"),
            )
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"snapshot {self.snapshot_id!r} holds data that is not JSON: {exc}"
            ) from None

    def versions_json(self) -> str:
        """``{"stream": version, ...}`` as JSON text."""
        return json.dumps(dict(self.streams), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, snapshot_id: str, text: str, saved_at: datetime | None = None) -> Snapshot:
        """Parse what :meth:`to_json` wrote; a malformed record raises DeserializationError."""
        try:
            data = json.loads(text)
            streams = tuple((trusted_stream_id(str(s)), int(v)) for s, v in data["streams"])
            checkpoints = tuple(data["checkpoints"])
            return cls(snapshot_id, streams, checkpoints, saved_at)
        except (TypeError, ValueError, KeyError) as exc:
            raise DeserializationError(f"snapshot {snapshot_id!r} is malformed: {exc}") from None

    def info(self, size: int | None = None) -> SnapshotInfo:
        return SnapshotInfo(
            self.snapshot_id,
            self.streams,
            self.saved_at,
            len(self.to_json().encode("utf-8")) if size is None else size,
        )

    def _repr_html_(self) -> str:
        from eventcore.snapshots._html import snapshot_html

        return snapshot_html(self)


def covers(new: Mapping[StreamId, int], old: Mapping[StreamId, int]) -> bool:
    """The never-regress rule on plain ``{stream: version}`` maps (see :meth:`Snapshot.covers`)."""
    shared = [s for s in old if s in new]
    if any(new[s] < old[s] for s in shared):
        return False
    return len(shared) == len(old) or any(new[s] > old[s] for s in shared)


def parse_versions(text: str) -> dict[StreamId, int]:
    """Read a versions column (``{"stream": version}``); malformed text gives ``{}``."""
    try:
        data = json.loads(text)
        return {trusted_stream_id(str(s)): int(v) for s, v in data.items()}
    except (TypeError, ValueError, AttributeError):
        return {}


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """One line of :meth:`SnapshotStore.list`: id, stream versions, when, how big."""

    snapshot_id: str
    streams: tuple[tuple[StreamId, int], ...]
    saved_at: datetime | None
    size: int

    @property
    def versions(self) -> dict[StreamId, int]:
        return dict(self.streams)

    def __str__(self) -> str:
        streams = ", ".join(f"{s}@{v}" for s, v in self.streams)
        return f"{self.snapshot_id}  [{streams}]  {self.size} bytes"


# -- the state codec -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateCodec:
    """Encode a command's state to JSON data and back, driven by the state's type hint."""

    hint: Any
    _codec: ClassCodec

    def encode(self, state: Any) -> Any:
        return self._codec.encode(self._codec.cls(state))["state"]

    def decode(self, data: Any) -> Any:
        return self._codec.decode({"state": data}).state


_STATE_CODECS: dict[type, StateCodec] = {}


def state_codec(command_type: type) -> StateCodec:
    """The codec of a command class's state, compiled once.

    The type comes from the return annotation of ``initial_state``, else from the
    ``Command[State]`` base; without either, the state must be plain JSON data. Supported
    types are those of event fields (dataclasses, ``int``, ``dict[StreamId, int]``,
    ``tuple[int, int]``, ``Decimal``...); for anything else define ``encode_state`` and
    ``decode_state`` on the command. Raises :class:`DefinitionError` for unsupported types.
    """
    found = _STATE_CODECS.get(command_type)
    if found is not None:
        return found
    hint = _state_hint(command_type)
    box = dataclasses.make_dataclass(f"{command_type.__name__}State", [("state", hint)])
    box.__module__ = command_type.__module__
    try:
        codec = compile_codec(box)
    except DefinitionError as exc:
        raise DefinitionError(
            f"cannot snapshot the state of {command_type.__name__}: {exc}. Define "
            "encode_state(state) and decode_state(data) on the command for custom types"
        ) from None
    found = _STATE_CODECS[command_type] = StateCodec(hint, codec)
    return found


def _state_hint(command_type: type) -> Any:
    method = getattr(command_type, "initial_state", None)
    hint: Any = None
    if method is not None:
        try:
            hint = typing.get_type_hints(method, localns={"StreamId": StreamId}).get("return")
        except Exception as exc:
            raise DefinitionError(
                f"cannot resolve the return annotation of {command_type.__name__}."
                f"initial_state ({exc}); define the state type at module level"
            ) from None
    if _usable(hint):
        return hint
    for klass in command_type.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            args = typing.get_args(base)
            origin = typing.get_origin(base)
            if getattr(origin, "__name__", "") == "Command" and args and _usable(args[0]):
                return args[0]
    return Any


def _usable(hint: Any) -> bool:
    return hint is not None and hint is not type(None) and not isinstance(hint, typing.TypeVar)


# -- what a command replayed -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamReplay:
    """One stream of a replay: restored from a snapshot at ``snapshot_version`` (``None``:
    read from its first event), then ``events_applied`` events folded from the log, ending at
    ``version``."""

    stream_id: StreamId
    snapshot_version: int | None
    events_applied: int
    version: int

    @property
    def from_snapshot(self) -> bool:
        return self.snapshot_version is not None


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """How ``execute`` rebuilt the state on its last attempt, stream by stream.

    ``snapshot_id`` is ``None`` when snapshots were not in use for the command;
    ``loaded``: a snapshot was found and used; ``saved``: a new one was stored; ``note``
    says why a snapshot was ignored or not saved.
    """

    streams: tuple[StreamReplay, ...]
    snapshot_id: str | None = None
    loaded: bool = False
    saved: bool = False
    note: str | None = None

    @property
    def events_applied(self) -> int:
        """Events folded from the log (not counting those the snapshot stood for)."""
        return sum(s.events_applied for s in self.streams)

    @property
    def events_from_snapshot(self) -> int:
        """Events the snapshot stood for, on the streams restored from it."""
        return sum(s.snapshot_version or 0 for s in self.streams)

    def __str__(self) -> str:
        lines = [
            f"{s.stream_id}: "
            + (f"snapshot @{s.snapshot_version} + " if s.from_snapshot else "full read, ")
            + f"{s.events_applied} from the log -> version {s.version}"
            for s in self.streams
        ]
        if self.snapshot_id is not None:
            flags = [w for w, on in (("loaded", self.loaded), ("saved", self.saved)) if on]
            lines.insert(0, f"snapshot {self.snapshot_id} ({', '.join(flags) or 'not used'})")
        if self.note:
            lines.append(f"note: {self.note}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from eventcore.snapshots._html import replay_html

        return replay_html(self)
