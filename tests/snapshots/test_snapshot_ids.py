"""Snapshot ids name the command class (module and qualified name), the policy version, the
shape of the state type and the streams; they are the same in every process."""

from __future__ import annotations

import enum
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NewType, Optional

import pytest
from trail_commands import Observe, Trail

from eventcore import Command, DefinitionError, StreamId, stream
from eventcore.snapshots import SnapshotPolicy, snapshot_id_of, state_shape

HERE = Path(__file__).resolve().parent


class Move(Command[int]):
    source: StreamId = stream()
    target: StreamId = stream()
    snapshot = SnapshotPolicy(version=3)

    def initial_state(self) -> int:
        return 0


INT = "9b0d1b68cb67"  # sha256("builtins.int")[:12]


def test_the_default_id_names_module_class_version_shape_and_streams() -> None:
    assert snapshot_id_of(Move(source="a", target="b")) == f"{__name__}.Move/v3/{INT}/a,b"


def test_stream_ids_are_escaped_and_long_lists_hashed() -> None:
    assert snapshot_id_of(Move(source="a,b/c", target="100%")).endswith("/a%2Cb%2Fc,100%25")
    long = snapshot_id_of(Move(source="x" * 150, target="y" * 150))
    assert long.startswith(f"{__name__}.Move/v3/{INT}/sha256:") and len(long) < 200


def test_name_and_key_adjust_the_id() -> None:
    class Report(Command[int]):
        account: StreamId = stream()
        year: int
        snapshot = SnapshotPolicy(name="Report", key=lambda command: f"year={command.year}")

        def initial_state(self) -> int:
            return 0

    assert snapshot_id_of(Report(account="a", year=2026)) == f"Report/v1/{INT}/a/year=2026"
    assert snapshot_id_of(Report(account="a", year=2025)).endswith("/a/year=2025")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "a/b"}, "name must be a non-empty str without '/'"),
        ({"name": ""}, "name must be a non-empty str"),
        ({"key": "year"}, "key must be a function"),
        ({"encode": sorted}, "encode and decode together"),
        ({"version": True}, "version must be an int >= 1"),
    ],
)
def test_bad_policies_are_definition_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        SnapshotPolicy(**options)


def test_an_id_that_is_too_long_is_a_definition_error() -> None:
    class Wide(Move):
        snapshot = SnapshotPolicy(key=lambda command: "k" * 1100)

    with pytest.raises(DefinitionError, match="at most 1024 characters"):
        snapshot_id_of(Wide(source="a", target="b"))


# -- the shape of the state type ------------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Order:
    lines: tuple[Line, ...]
    colour: Colour | None
    tags: dict[StreamId, list[int]]


@dataclass(frozen=True)
class Renamed:  # the same structure as Line under another name
    sku: str
    quantity: int


@dataclass(frozen=True)
class Node:
    value: int
    children: tuple[Node, ...]


Cents = NewType("Cents", int)


def test_a_dataclass_shape_is_its_fields_recursively() -> None:
    assert state_shape(Order) == (
        "{lines:builtins.tuple[{sku:builtins.str,quantity:builtins.int},...],"
        "colour:Union[None,enum{RED='red',BLUE='blue'}],"
        "tags:builtins.dict[eventcore.types.StreamId,builtins.list[builtins.int]]}"
    )


def test_names_do_not_count_structure_does() -> None:
    assert state_shape(Line) == state_shape(Renamed)
    assert state_shape(int | str) == state_shape(str | int)
    assert state_shape(Optional[int]) == state_shape(int | None)  # noqa: UP045
    assert state_shape(Cents) == state_shape(int)
    assert state_shape(Literal["a", 1]) == "Literal['a',1]"
    assert state_shape(Any) == state_shape(object) == "Any"
    assert state_shape(tuple[int, str]) != state_shape(tuple[str, int])
    assert state_shape(dict[str, int]) != state_shape(dict[StreamId, int])


def test_a_recursive_dataclass_is_named_where_it_recurs() -> None:
    assert state_shape(Node) == (
        f"{{value:builtins.int,children:builtins.tuple[<recursive {__name__}.Node>,...]}}"
    )


def test_the_shape_comes_from_the_state_type_of_the_command() -> None:
    assert snapshot_id_of(Observe(streams_=(StreamId("s0"),))).startswith("observe/v1/")
    shape = snapshot_id_of(Observe(streams_=(StreamId("s0"),))).split("/")[2]
    assert len(shape) == 12 and state_shape(Trail).startswith("{seen:builtins.tuple[")


def test_ids_are_the_same_in_every_process() -> None:
    """No ``hash()`` of a str, no ``id()``: two interpreters with different hash seeds agree."""
    code = (
        "from trail_commands import Observe; from eventcore.snapshots import snapshot_id_of; "
        "print(snapshot_id_of(Observe(streams_=('s0', 'a,b'))))"
    )
    seen = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=HERE,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        seen.add(done.stdout.strip())
    assert seen == {snapshot_id_of(Observe(streams_=(StreamId("s0"), StreamId("a,b"))))}
