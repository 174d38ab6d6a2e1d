"""The machine a run happened on, and how busy the rest of it was meanwhile."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import sqlite3
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from typing import Any


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe(postgres_version: str | None) -> dict[str, Any]:
    """CPU, cores, memory, Python, SQLite, PostgreSQL and library versions, and the date."""
    memory_gb: float | None = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version,
        "psycopg": _version("psycopg"),
        "eventsourcing": _version("eventsourcing"),
        "eventcore": _version("eventcore"),
    }


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    try:
        with open("/proc/stat", encoding="utf-8") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def _process_ticks() -> dict[int, tuple[str, int]]:
    """pid -> (command name, user+system jiffies) for every process we can see."""
    out: dict[int, tuple[str, int]] = {}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return out
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        name = text[text.find("(") + 1 : text.rfind(")")]
        rest = text[text.rfind(")") + 2 :].split()
        try:
            out[pid] = (name, int(rest[11]) + int(rest[12]))
        except (IndexError, ValueError):
            continue
    return out


class CpuMeter:
    """Machine-wide CPU use during the run, split into this process and everything else."""

    def __init__(self) -> None:
        self._start_ticks = _cpu_ticks()
        self._start_self = self._self_seconds()
        self._start_wall = time.perf_counter()
        self._load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
        self._procs_start = _process_ticks()

    @staticmethod
    def _self_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def report(self) -> dict[str, Any]:
        wall = time.perf_counter() - self._start_wall
        cores = os.cpu_count() or 1
        own = (self._self_seconds() - self._start_self) / (wall * cores) if wall > 0 else 0.0
        out: dict[str, Any] = {
            "wall_seconds": round(wall, 1),
            "this_process_cpu_share": round(own, 3),
            "load_average_start": self._load_start,
            "load_average_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        }
        end = _cpu_ticks()
        if self._start_ticks is not None and end is not None:
            busy = end[0] - self._start_ticks[0]
            total = end[1] - self._start_ticks[1]
            machine = busy / total if total else 0.0
            out["machine_cpu_busy"] = round(machine, 3)
            # Includes the PostgreSQL server working for us; see postgres_cpu_share.
            out["other_cpu_share"] = round(max(0.0, machine - own), 3)
        out.update(self._others(wall * cores))
        return out

    def _others(self, capacity_seconds: float) -> dict[str, Any]:
        """CPU used by other processes (by command name), PostgreSQL's backends apart."""
        if capacity_seconds <= 0:
            return {}
        hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        me = os.getpid()
        by_name: dict[str, float] = {}
        for pid, (name, ticks) in _process_ticks().items():
            if pid == me:
                continue
            before = self._procs_start.get(pid)
            used = ticks - before[1] if before is not None and before[0] == name else ticks
            if used > 0:
                by_name[name] = by_name.get(name, 0.0) + used / hz
        postgres = by_name.pop("postgres", 0.0)
        top = sorted(by_name.items(), key=lambda kv: -kv[1])[:5]
        return {
            "postgres_cpu_share": round(postgres / capacity_seconds, 3),
            "other_processes_cpu_share": round(sum(by_name.values()) / capacity_seconds, 3),
            "top_other_processes": [
                {"name": name, "cpu_share": round(sec / capacity_seconds, 3)} for name, sec in top
            ],
        }
