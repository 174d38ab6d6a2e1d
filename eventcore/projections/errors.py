"""Errors of the projection layer, still part of the one :class:`~eventcore.EventCoreError`
tree (see :mod:`eventcore.errors`).

>>> from eventcore import EventCoreError
>>> error = ProjectionFailed("balances", 7, KeyError("account"), "policy says stop")
>>> isinstance(error, EventCoreError), error.position
(True, 7)
>>> print(error)
projection 'balances' stopped at position 7: policy says stop; last error: KeyError: 'account'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventcore.errors import EventCoreError, LeadershipUnavailable

if TYPE_CHECKING:
    from eventcore.projections.api import ProjectionReport

__all__ = ["LeadershipUnavailable", "ProjectionFailed"]


class ProjectionFailed(EventCoreError):
    """A projection stopped on an error it was not allowed to get past.

    ``projection`` and ``position`` say where (the checkpoint stays before ``position``, so
    a restart tries that event again); ``cause`` is the last error (also ``__cause__``);
    ``report`` is the :class:`~eventcore.projections.ProjectionReport` of the run so far
    (``None`` when it failed before starting).
    """

    def __init__(
        self,
        projection: str,
        position: int,
        cause: BaseException,
        detail: str,
        report: ProjectionReport | None = None,
    ) -> None:
        self.projection = projection
        self.position = position
        self.cause = cause
        self.report = report
        super().__init__(
            f"projection {projection!r} stopped at position {position}: {detail}; last error: "
            f"{type(cause).__name__}: {cause}"
        )
