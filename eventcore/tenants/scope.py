"""A tenant's namespace of stream ids: ``@<tenant>/<stream>``, and the checks that keep every
id, selector and key inside it.

>>> scope = TenantScope("acme")
>>> scope.inner(StreamId("order-1"))
StreamId('@acme/order-1')
>>> scope.outer(StreamId("@acme/order-1"))
StreamId('order-1')
>>> scope.selector(StreamPattern("*"))
StreamPattern('@acme/*')
>>> TenantScope("Acme!")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
eventcore.errors.ConfigurationError: tenant name 'Acme!' is not valid: ...
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any, Final

from eventcore.errors import ConfigurationError
from eventcore.events import RecordedEvent, VersionedEvent, event_info
from eventcore.types import StreamId, StreamPattern, StreamPrefix, trusted_stream_id

__all__ = ["TENANT_NAME", "TenantScope", "check_tenant"]

TENANT_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
"""A tenant name: 1 to 63 lowercase letters, digits, ``_`` and ``-``, starting with a letter
or digit. Such a name holds none of ``@ / * ? [ ]``, so no tenant's prefix is the prefix of
another's and no pattern syntax can reach outside it."""


def check_tenant(name: object) -> str:
    """``name`` if it is a valid tenant name, else ``ConfigurationError``."""
    if not isinstance(name, str) or TENANT_NAME.fullmatch(name) is None:
        raise ConfigurationError(
            f"tenant name {name!r} is not valid: use 1 to 63 lowercase letters, digits, '_' "
            "and '-', starting with a letter or digit (for example 'acme')"
        )
    return name


class TenantScope:
    """Maps one tenant's stream ids, selectors and keys to the store's and back."""

    __slots__ = ("prefix", "tenant")

    def __init__(self, tenant: str) -> None:
        self.tenant = check_tenant(tenant)
        self.prefix = f"@{tenant}/"

    def __repr__(self) -> str:
        return f"TenantScope({self.tenant!r})"

    def inner(self, stream_id: str) -> StreamId:
        """The store's id of the tenant's stream ``stream_id`` (validated as a StreamId
        first: the tenant's id alone must be valid, so no trimming can move the prefix)."""
        return StreamId(self.prefix + StreamId(stream_id))

    def owns(self, stream_id: str) -> bool:
        return stream_id.startswith(self.prefix)

    def outer(self, stream_id: str) -> StreamId:
        """The tenant's id of the store's ``stream_id`` (which must be the tenant's)."""
        return trusted_stream_id(stream_id[len(self.prefix) :])

    def selector(self, selector: StreamPrefix | StreamPattern) -> StreamPrefix | StreamPattern:
        """The tenant's selector as the store's: anchored at the tenant's prefix (a prefix
        that holds no pattern syntax, so the selector cannot match outside it)."""
        if isinstance(selector, StreamPrefix):
            return StreamPrefix(self.prefix + selector)
        if isinstance(selector, StreamPattern):
            return StreamPattern(self.prefix + selector)
        raise ConfigurationError(
            f"streams must hold StreamPrefix or StreamPattern values, got {selector!r}"
        )

    def everything(self) -> StreamPrefix:
        return StreamPrefix(self.prefix)

    def key(self, name: str) -> str:
        """A name (checkpoint, projection, snapshot id, idempotency key) in the tenant's
        namespace."""
        if not isinstance(name, str):
            raise ConfigurationError(f"expected a str name, got {type(name).__name__} {name!r}")
        return self.prefix + name

    def unkey(self, name: str) -> str:
        return name[len(self.prefix) :] if name.startswith(self.prefix) else name

    def event_in(self, event: object) -> object:
        """The event with its stream field moved into the tenant's namespace."""
        return _with_stream(event, self.inner)

    def event_out(self, event: object) -> object:
        return _with_stream(event, lambda v: self.outer(v) if self.owns(v) else v)

    def versioned_out(self, found: Iterable[Any]) -> list[VersionedEvent]:
        """A fold read (or records) of the tenant's streams as the tenant sees it: each
        event and its version, the event's stream field without the prefix."""
        return [VersionedEvent(item.stream_version, self.event_out(item.event)) for item in found]

    def record_out(self, record: RecordedEvent) -> RecordedEvent:
        """A stored record as the tenant sees it: its stream id and its event's stream
        field without the prefix."""
        return dataclasses.replace(
            record,
            stream_id=self.outer(record.stream_id),
            event=self.event_out(record.event),
        )


def _with_stream(event: Any, convert: Any) -> object:
    if not dataclasses.is_dataclass(event) or isinstance(event, type):
        return event
    field = event_info(type(event)).stream_field
    value = getattr(event, field)
    if not isinstance(value, str):
        return event
    return dataclasses.replace(event, **{field: convert(value)})
