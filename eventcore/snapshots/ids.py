"""Snapshot ids: which snapshot a command may load.

The default id is ``<module>.<QualifiedName>/v<version>/<shape>/<streams>``: the command
class (module and qualified name), the policy version, a short SHA-256 of the *shape* of the
state type (its structure: dataclass field names and types, recursively, enum members,
container and element types), and the declared streams in order. No other command, and no
version of the same command whose state type has another shape, can load the snapshot. Ids
are the same in every process and every run (only ``hashlib`` digests, never ``hash()``).

>>> from dataclasses import dataclass
>>> from eventcore import Command, StreamId, stream
>>> from eventcore.snapshots import SnapshotPolicy
>>> @dataclass(frozen=True)
... class Balance:
...     amount: int
...     events: int
>>> state_shape(Balance)
'{amount:builtins.int,events:builtins.int}'
>>> class Deposit(Command[Balance]):
...     account: StreamId = stream()
...     snapshot = SnapshotPolicy(version=2, key=lambda command: "eur")
>>> snapshot_id_of(Deposit(account="account-1")).split("/")
['eventcore.snapshots.ids.Deposit', 'v2', '5af223bd283e', 'account-1', 'eur']
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import re
import types
import typing
from typing import TYPE_CHECKING, Any, Final, Literal, Union

from eventcore.errors import DefinitionError
from eventcore.snapshots.model import SnapshotPolicy, snapshot_policy, state_hint
from eventcore.types import StreamId

if TYPE_CHECKING:
    from eventcore.commands import Command

__all__ = ["MAX_SNAPSHOT_ID_LENGTH", "check_snapshot_id", "snapshot_id_of", "state_shape"]

MAX_SNAPSHOT_ID_LENGTH: Final = 1024
_STREAMS_IN_ID: Final = 200  # longer stream lists are hashed into the id
_SHAPE_DIGITS: Final = 12  # 48 bits: ids only ever compete within one command class
_DEFAULT_POLICY: Final = SnapshotPolicy()
_ADDRESS = re.compile(r" at 0x[0-9A-Fa-f]+")


def snapshot_id_of(command: Command[Any]) -> str:
    """The id under which ``command``'s snapshots are stored and looked up.

    ``<name>/v<version>/<shape>/<streams>``, then ``/<key>`` when the policy has a ``key``:
    ``name`` is the policy's, else the class's ``module.QualifiedName``; ``shape`` the
    digest of :func:`state_shape` of the state type; ``streams`` the declared streams in
    order (``%``, ``,`` and ``/`` percent-escaped; a list longer than 200 characters is
    replaced by its SHA-256). Raises :class:`DefinitionError` for a key that is not a
    non-empty str or an id longer than 1024 characters.
    """
    command_type: type = type(command)
    policy = snapshot_policy(command_type) or _DEFAULT_POLICY
    name = policy.name or f"{command_type.__module__}.{command_type.__qualname__}"
    streams = ",".join(_escape(s) for s in command.streams())
    if len(streams) > _STREAMS_IN_ID:
        streams = "sha256:" + hashlib.sha256(streams.encode("utf-8")).hexdigest()
    parts = [name, f"v{policy.version}", _shape_digest(command_type), streams]
    if policy.key is not None:
        extra = policy.key(command)
        if not isinstance(extra, str) or not extra:
            raise DefinitionError(
                f"the SnapshotPolicy key of {command_type.__name__} must return a non-empty "
                f"str, got {extra!r}"
            )
        parts.append(extra)
    return check_snapshot_id("/".join(parts))


def check_snapshot_id(value: object) -> str:
    """The id itself, or a :class:`DefinitionError` saying what is wrong with it."""
    if not isinstance(value, str) or not value or len(value) > MAX_SNAPSHOT_ID_LENGTH:
        raise DefinitionError(
            f"a snapshot id must be a non-empty str of at most {MAX_SNAPSHOT_ID_LENGTH} "
            f"characters, got {value!r}"
        )
    return value


def _escape(stream_id: StreamId) -> str:
    return stream_id.replace("%", "%25").replace(",", "%2C").replace("/", "%2F")


@functools.cache
def _shape_digest(command_type: type) -> str:
    shape = state_shape(state_hint(command_type))
    return hashlib.sha256(shape.encode("utf-8")).hexdigest()[:_SHAPE_DIGITS]


def state_shape(hint: Any) -> str:
    """A canonical text of a state type's structure, the same in every process.

    Dataclasses become ``{field:type,...}`` (field names in order, types recursively; the
    class's own name does not count), enums their members and values, unions their members
    in sorted order, other classes ``module.QualifiedName`` and generics
    ``origin[args]``. A dataclass that contains itself is named where it recurs.
    """
    return _shape(hint, ())


def _shape(hint: Any, stack: tuple[type, ...]) -> str:
    if hint is Any or hint is object:
        return "Any"
    if hint is None or hint is type(None):
        return "None"
    if hint is Ellipsis:
        return "..."
    if isinstance(hint, str):
        return hint
    if isinstance(hint, typing.ForwardRef):
        return hint.__forward_arg__
    if isinstance(hint, typing.TypeVar):
        return "Any"
    if isinstance(hint, typing.NewType):
        return _shape(hint.__supertype__, stack)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        return "Literal[" + ",".join(_no_address(repr(a)) for a in args) + "]"
    if origin is Union or origin is types.UnionType:
        return "Union[" + ",".join(sorted(_shape(a, stack) for a in args)) + "]"
    if origin is not None:
        return _shape(origin, stack) + "[" + ",".join(_shape(a, stack) for a in args) + "]"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "enum{" + ",".join(f"{m.name}={_no_address(repr(m.value))}" for m in hint) + "}"
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if hint in stack:
            return f"<recursive {_name(hint)}>"
        try:
            hints = typing.get_type_hints(hint, localns={"StreamId": StreamId})
        except Exception:  # an unresolvable forward reference: its text is the shape
            hints = {}
        inner = (*stack, hint)
        fields = (
            f"{f.name}:{_shape(hints.get(f.name, f.type), inner)}" for f in dataclasses.fields(hint)
        )
        return "{" + ",".join(fields) + "}"
    if isinstance(hint, type):
        return _name(hint)
    return _no_address(repr(hint))


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _no_address(text: str) -> str:
    return _ADDRESS.sub("", text)
