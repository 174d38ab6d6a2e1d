"""The testing kit: given/when/then scenarios and stores that inject faults.

>>> from eventcore.testing import scenario, ConflictInjectingStore, ChaosStore

Hypothesis strategies live in :mod:`eventcore.testing.strategies` (they need the
``hypothesis`` package) and the store contract suite, :class:`EventStoreContract`, in
:mod:`eventcore.testing.contract` (it needs ``pytest``); the projection contract,
:class:`ProjectionContract`, in :mod:`eventcore.testing.projection_contract`. They are
imported only when used, so notebooks can use the scenario helper without them installed.
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
    from eventcore.testing.projection_contract import ProjectionContract

__all__ = [
    "ChaosStore",
    "ConflictInjectingStore",
    "EventStoreContract",
    "InjectedFault",
    "InterleavingStore",
    "LostAcknowledgementStore",
    "ProjectionContract",
    "Scenario",
    "StoreWrapper",
    "scenario",
]


def __getattr__(name: str) -> Any:
    if name == "EventStoreContract":
        from eventcore.testing.contract import EventStoreContract

        return EventStoreContract
    if name == "ProjectionContract":
        from eventcore.testing.projection_contract import ProjectionContract

        return ProjectionContract
    raise AttributeError(f"module 'eventcore.testing' has no attribute {name!r}")
