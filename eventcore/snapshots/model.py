"""What a snapshot is: the policy a command opts in with, the stored record, the state codec
and the never-regress rule.

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
import functools
import inspect
import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from eventcore.codec import compile_codec
from eventcore.errors import DefinitionError, DeserializationError, SerializationError
from eventcore.types import StreamId, trusted_stream_id

if TYPE_CHECKING:
    from eventcore.commands import Command

__all__ = [
    "Snapshot",
    "SnapshotInfo",
    "SnapshotPolicy",
    "SnapshotWarning",
    "StateCodec",
    "snapshot_policy",
    "state_codec",
    "state_hint",
]


class SnapshotWarning(UserWarning):
    """A stored snapshot was ignored (its state no longer decodes, or it claims versions the
    streams do not have); the command replayed the streams instead."""


@dataclass(frozen=True, slots=True)
class SnapshotPolicy:
    """Opt a command into snapshots: ``snapshot = SnapshotPolicy(every=100, version=1)``.

    ``every``: save a snapshot when one execution folded at least this many events from the
    log (a full replay, or the tail after the last snapshot). ``version``: the version of
    the fold's meaning; bump it when ``initial_state``, ``apply`` or ``discover_streams``
    change, and old snapshots are never loaded again (a change of the state's *type* changes
    the snapshot id by itself).

    The snapshot id (see :func:`~eventcore.snapshots.snapshot_id_of`) names the command
    class, the version, the shape of the state type and the declared streams. Two hooks
    adjust it:

    - ``key``: a function of the command returning one more part of the id, for the
      fields besides the streams that change the state (``key=lambda c: f"year={c.year}"``);
    - ``name``: the command's name in the id instead of ``module.QualifiedName``, to keep
      snapshots across a rename or to share them between classes that fold alike.

    ``encode`` and ``decode`` (both or neither) turn the state into JSON data and back, for
    state types the event codec does not support: ``encode=sorted, decode=frozenset``.

    >>> SnapshotPolicy(every=0)
    Traceback (most recent call last):
    ...
    eventcore.errors.DefinitionError: SnapshotPolicy.every must be an int >= 1, got 0
    """

    every: int = 100
    version: int = 1
    name: str | None = None
    key: Callable[[Any], str] | None = None
    encode: Callable[[Any], Any] | None = None
    decode: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        for number in ("every", "version"):
            value = getattr(self, number)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DefinitionError(f"SnapshotPolicy.{number} must be an int >= 1, got {value!r}")
        if self.name is not None and (
            not isinstance(self.name, str) or not self.name or "/" in self.name
        ):
            raise DefinitionError(
                f"SnapshotPolicy.name must be a non-empty str without '/', got {self.name!r}"
            )
        for hook in ("key", "encode", "decode"):
            value = getattr(self, hook)
            if value is not None and not callable(value):
                raise DefinitionError(
                    f"SnapshotPolicy.{hook} must be a function, got {type(value).__name__}"
                )
        if (self.encode is None) != (self.decode is None):
            raise DefinitionError(
                "SnapshotPolicy takes encode and decode together (the state to JSON data and "
                "back), or neither"
            )


_LEGACY_HOOKS = {
    "snapshot_id": "pass key= (a function of the command giving one more part of the id) or "
    "name= to the SnapshotPolicy",
    "encode_state": "pass encode= and decode= to the SnapshotPolicy",
    "decode_state": "pass encode= and decode= to the SnapshotPolicy",
}


def snapshot_policy(command_type: type) -> SnapshotPolicy | None:
    """The ``snapshot`` policy a command class declares, or ``None``.

    Raises :class:`DefinitionError` for anything else, and for a class that still defines
    the methods the snapshot hooks used to be (``snapshot_id``, ``encode_state``,
    ``decode_state``): they are not called any more, and ignoring them could mix up states.
    """
    policy = getattr(command_type, "snapshot", None)
    if policy is None:
        return None
    if not isinstance(policy, SnapshotPolicy):
        raise DefinitionError(
            f"{command_type.__name__}.snapshot must be a SnapshotPolicy, got {policy!r}"
        )
    for method, instead in _LEGACY_HOOKS.items():
        if inspect.isfunction(getattr(command_type, method, None)):
            raise DefinitionError(
                f"{command_type.__name__} defines {method}(), which snapshots no longer call; "
                f"{instead} (see book/snapshots.md, 'Versioning the state')"
            )
    return policy


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
        """The state, decoded as ``command``'s snapshots are (see :func:`state_codec`)."""
        return state_codec(type(command)).decode(self.state)

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
    """Encode a command's state to JSON data (``encode``) and back (``decode``)."""

    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]


def state_codec(command_type: type) -> StateCodec:
    """The codec of a command class's snapshots: the policy's ``encode``/``decode`` when it
    has them, else one compiled (once) from the state's type.

    The type comes from the return annotation of ``initial_state``, else from the
    ``Command[State]`` base; without either, the state must be plain JSON data. Supported
    types are those of event fields (dataclasses, ``int``, ``dict[StreamId, int]``,
    ``tuple[int, int]``, ``Decimal``...); for anything else give the policy ``encode`` and
    ``decode``. Raises :class:`DefinitionError` for unsupported types.
    """
    policy = snapshot_policy(command_type)
    if policy is not None and policy.encode is not None and policy.decode is not None:
        return StateCodec(policy.encode, policy.decode)
    return _compiled_codec(command_type)


@functools.cache
def _compiled_codec(command_type: type) -> StateCodec:
    hint = state_hint(command_type)
    box = dataclasses.make_dataclass(f"{command_type.__name__}State", [("state", hint)])
    box.__module__ = command_type.__module__
    try:
        codec = compile_codec(box)
    except DefinitionError as exc:
        raise DefinitionError(
            f"cannot snapshot the state of {command_type.__name__}: {exc}. Give its "
            "SnapshotPolicy encode= and decode= functions for custom types"
        ) from None

    def encode(state: Any) -> Any:
        return codec.encode(box(state))["state"]

    def decode(data: Any) -> Any:
        return codec.decode({"state": data}).state

    return StateCodec(encode, decode)


def state_hint(command_type: type) -> Any:
    """The type of a command class's state: the return annotation of ``initial_state``, else
    the ``Command[State]`` parameter, else ``Any``."""
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
