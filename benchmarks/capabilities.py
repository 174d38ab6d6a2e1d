"""What this build of EventCore offers the benchmarks, detected rather than assumed.

Issue 15 adds features the harness measures as soon as they exist: a pessimistic execution
mode (goal 1) and partitioned projections (goal 4). Until then their rows say "not available
in this build" instead of failing. Each is one small hook:

- **execution modes**: :data:`MODES` lists the modes the contention table knows;
  :func:`mode_support` says whether ``execute`` takes the ``concurrency`` keyword
  (``execute(store, command, concurrency="pessimistic")``) and :func:`execute_options` is
  what the benchmark passes to ``execute`` for a mode.
- **partitioned projections**: :func:`partitioned_projections` looks for the API; the
  workload that uses it is still to be written when it lands (see benchmarks/README.md).
"""

from __future__ import annotations

import inspect
from typing import Any, Final

MODES: Final = ("optimistic", "pessimistic")
DEFAULT_MODE: Final = "optimistic"


def _execute_parameters() -> frozenset[str]:
    from eventcore import execute

    return frozenset(inspect.signature(execute).parameters)


def mode_support(mode: str) -> str | None:
    """None when this build runs ``mode``; otherwise why not (shown in the table)."""
    if mode not in MODES:
        return f"unknown execution mode {mode!r}; choose from {', '.join(MODES)}"
    if mode == DEFAULT_MODE:
        return None
    if "concurrency" not in _execute_parameters():
        return "not available in this build: execute() has no concurrency parameter"
    return None


def execute_options(mode: str) -> dict[str, Any]:
    """Keyword arguments for ``execute`` in ``mode`` (none for the default mode, so that the
    benchmark runs on builds that predate modes)."""
    reason = mode_support(mode)
    if reason is not None:
        raise ValueError(reason)
    return {} if mode == DEFAULT_MODE else {"concurrency": mode}


def partitioned_projections() -> str | None:
    """None when this build offers partitioned projections; otherwise why not."""
    import eventcore.projections as projections

    if hasattr(projections, "PartitionWorker"):
        return None  # measured by `python -m benchmarks partitions`
    return "not available in this build: no partitioned projection API in eventcore.projections"
