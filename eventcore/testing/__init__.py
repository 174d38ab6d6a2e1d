"""The testing kit: given/when/then scenarios and stores that inject faults.

>>> from eventcore.testing import scenario, ConflictInjectingStore, ChaosStore

Hypothesis strategies live in :mod:`eventcore.testing.strategies` (they need the
``hypothesis`` package) and the store contract suite, :class:`EventStoreContract`, in
:mod:`eventcore.testing.contract` (it needs ``pytest``); the projection contract,
:class:`ProjectionContract`, in :mod:`eventcore.testing.projection_contract`; the corrupt-row
and snapshot-store suites are :class:`CorruptRowContract` and :class:`SnapshotStoreContract`.
They are imported only when used, so notebooks can use the scenario helper without them
installed.
"""

from typing import TYPE_CHECKING, Any

from eventcore.testing.faults import (
    ChaosStore,
    ConflictInjectingStore,
    InjectedFault,
    InterleavingStore,
    LostAcknowledgementStore,
    StoreWrapper,
)
from eventcore.testing.scenario import Scenario, scenario

if TYPE_CHECKING:
    from eventcore.testing.contract import EventStoreContract
    from eventcore.testing.contract_rows import CorruptRowContract
    from eventcore.testing.projection_contract import ProjectionContract
    from eventcore.testing.snapshot_contract import SnapshotStoreContract

__all__ = [
    "ChaosStore",
    "ConflictInjectingStore",
    "CorruptRowContract",
    "EventStoreContract",
    "InjectedFault",
    "InterleavingStore",
    "LostAcknowledgementStore",
    "ProjectionContract",
    "Scenario",
    "SnapshotStoreContract",
    "StoreWrapper",
    "scenario",
]


# The contract suites need pytest (and some Hypothesis): imported on first use only.
_LAZY = {
    "CorruptRowContract": "eventcore.testing.contract_rows",
    "EventStoreContract": "eventcore.testing.contract",
    "ProjectionContract": "eventcore.testing.projection_contract",
    "SnapshotStoreContract": "eventcore.testing.snapshot_contract",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'eventcore.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
