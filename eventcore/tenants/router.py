"""Tenants as a unit of scale: a router that places each tenant on a store — a PostgreSQL
server, a schema, an SQLite file — and hands out that tenant's view of it.

>>> from eventcore.stores.memory import InMemoryEventStore
>>> router = TenantRouter(
...     {"eu": InMemoryEventStore, "us": InMemoryEventStore},
...     placement={"acme": "eu", "globex": "us"},
... )
>>> router.for_tenant("acme")
TenantStore(InMemoryEventStore(events=0, streams=0), tenant='acme')
>>> router.target_of("globex"), router.target_of("initech")
('us', None)
>>> router.for_tenant("initech")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
eventcore.errors.ConfigurationError: tenant 'initech' is placed on no store; ...
>>> router.close()
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from eventcore.errors import ConfigurationError
from eventcore.tenants.scope import check_tenant
from eventcore.tenants.store import TenantStore

__all__ = ["TenantRouter"]


class TenantRouter:
    """Places tenants on stores and opens each store once.

    ``targets``: store name to a function that opens that store (``lambda:
    PostgresEventStore(PostgresConfig(dsn_eu))``, a schema per tenant, an SQLite file).
    ``placement``: tenant to store name — a mapping, or a function (for example a hash of
    the tenant over the targets, or ``lambda tenant: tenant`` for one target per tenant
    when ``targets`` is a function of the name). ``default``: the target of tenants the
    placement does not name (None: they are refused).
    """

    def __init__(
        self,
        targets: Mapping[str, Callable[[], Any]] | Callable[[str], Any],
        *,
        placement: Mapping[str, str] | Callable[[str], str | None],
        default: str | None = None,
    ) -> None:
        if not callable(targets) and not isinstance(targets, Mapping):
            raise ConfigurationError(
                "targets must map store names to functions that open them, or be a function "
                f"of the name, got {type(targets).__name__}"
            )
        if not callable(placement) and not isinstance(placement, Mapping):
            raise ConfigurationError(
                f"placement must map tenants to store names, or be a function, got {placement!r}"
            )
        if isinstance(placement, Mapping):
            for tenant in placement:
                check_tenant(tenant)
        self._targets = targets
        self._placement = placement
        self._default = default
        self._open: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TenantRouter(open={sorted(self._open)})"

    def target_of(self, tenant: str) -> str | None:
        """The name of the store ``tenant`` lives on, or None."""
        check_tenant(tenant)
        placement = self._placement
        found = placement.get(tenant) if isinstance(placement, Mapping) else placement(tenant)
        return found if found is not None else self._default

    def store_of(self, name: str) -> Any:
        """The store named ``name``, opened on first use."""
        with self._lock:
            store = self._open.get(name)
            if store is None:
                targets = self._targets
                if isinstance(targets, Mapping):
                    opener = targets.get(name)
                    if opener is None:
                        raise ConfigurationError(
                            f"no store is named {name!r}; the targets are {sorted(targets)}"
                        )
                    store = opener()
                else:
                    store = targets(name)
                self._open[name] = store
            return store

    def for_tenant(self, tenant: str) -> TenantStore:
        """The tenant's view of the store it is placed on."""
        name = self.target_of(tenant)
        if name is None:
            raise ConfigurationError(
                f"tenant {tenant!r} is placed on no store; add it to the placement or give "
                "the router a default"
            )
        return TenantStore(self.store_of(name), tenant)

    def close(self) -> None:
        """Close every store this router opened."""
        with self._lock:
            opened, self._open = self._open, {}
        for store in opened.values():
            store.close()

    def __enter__(self) -> TenantRouter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
