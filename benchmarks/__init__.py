"""EventCore benchmark suite: six workloads on memory, SQLite and PostgreSQL, measured side
by side with the ``eventsourcing`` library and with hand-written driver code.

Run it with ``python -m benchmarks run`` (or ``make bench``); see ``book/performance.md``.
"""
