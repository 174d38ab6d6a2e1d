"""The privacy benchmark runs end to end on tiny sizes and writes well-formed results (no
timing is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.privacy import PrivacySizes, markdown, run_privacy


def test_privacy_benchmark_smoke(tmp_path: Path) -> None:
    sizes = PrivacySizes(transfers=4, accounts=3, rebuild_events=20, decode_events=40, rounds=2)
    lines: list[str] = []
    document = run_privacy(
        stores=["memory", "sqlite"], sizes=sizes, out_dir=str(tmp_path), log=lines.append
    )
    cells = {(r["store"], r["workload"], r["variant"]) for r in document["results"]}
    assert ("sqlite", "transfers", "encrypted (database keys)") in cells
    assert ("memory", "rebuild", "encrypted (memory keys)") in cells
    assert {v for s, w, v in cells if w == "decode"} == {"json", "pydantic", "msgspec"}
    assert all(len(r["rounds"]) == 2 and r["median"] > 0 for r in document["results"])
    base = [r for r in document["results"] if r["variant"] in ("plaintext", "json")]
    assert all(r["cost_vs_base"]["median"] == 1.0 for r in base)
    stored = json.loads((tmp_path / "privacy.json").read_text())
    assert stored["suite"] == "eventcore-privacy"
    assert (tmp_path / "privacy.md").read_text() == markdown(stored)
    assert any("wrote" in line for line in lines)
