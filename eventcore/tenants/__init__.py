"""Multi-tenancy: one deployment, several customers, no data crossing between them.

``store.for_tenant("acme")`` (or :class:`TenantStore`) is the tenant's view of a store:
commands (``execute``), reads, sessions, tombstones and projections through it see and
write only the tenant's streams, which the store keeps as ``@acme/<stream>``. The prefix is
added to every stream id, selector and idempotency key on the way in and removed on the
way out; tenant names hold no ``/``, ``@`` or pattern syntax, so no id or pattern reaches
another tenant. :func:`tenant_config` and :class:`TenantSnapshots` do the same for
checkpoints, leadership, dead letters and snapshots.

On PostgreSQL the database enforces it too: :mod:`eventcore.tenants.postgres` turns on
row-level security over the tenant column and creates a read-only role per tenant. On
SQLite, give each tenant its own file (a :class:`TenantRouter` placement) when the
isolation must not depend on the library. :class:`TenantRouter` places tenants on
different servers, schemas or files.
"""

from eventcore.tenants.router import TenantRouter
from eventcore.tenants.scope import TenantScope, check_tenant
from eventcore.tenants.scoped import (
    TenantCheckpoints,
    TenantDeadLetters,
    TenantLeadership,
    TenantSnapshots,
    tenant_checkpoints,
    tenant_config,
)
from eventcore.tenants.store import TenantSession, TenantStore

__all__ = [
    "TenantCheckpoints",
    "TenantDeadLetters",
    "TenantLeadership",
    "TenantRouter",
    "TenantScope",
    "TenantSession",
    "TenantSnapshots",
    "TenantStore",
    "check_tenant",
    "tenant_checkpoints",
    "tenant_config",
]
