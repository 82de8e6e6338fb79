"""The short version of the chaos paths for the gfx CDC stream (pgoutput worker and Debezium
engine) and the messaging send: ``python -m tooling.chaos --kills 3 --only <path>``, the real
harness command line, its verdict table read back. The full run is ``make chaos``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tooling.chaos.core import PathResult

ROOT = Path(__file__).resolve().parents[1]


def _table_row(table: str, path: str) -> list[str]:
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == path:
            return cells
    raise AssertionError(f"no row for {path!r} in:\n{table}")


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("path", "row_name"),
    [("gfx-cdc", "gfx cdc"), ("gfx-debezium", "gfx debezium"), ("messaging", "messaging")],
)
def test_chaos_path_short_run_loses_and_duplicates_nothing(
    path: str, row_name: str, tmp_path: Path
) -> None:
    out = tmp_path / "chaos.md"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "tooling.chaos", "--kills", "3", "--only", path, "--seed", "7"]
        + ["--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    cells = _table_row(out.read_text(), row_name)
    # | path | kills | faults | compared | lost | duplicated | differing | quarantined | s | verdict
    assert cells[-1] == "ok", cells
    assert int(cells[1]) == 3, cells
    assert int(cells[3]) > 0, cells
    assert (cells[4], cells[5], cells[6]) == ("0", "0", "0"), cells


def _log(key: str, status: str, error_code: str | None = None) -> dict[str, object]:
    return {"idempotency_key": key, "status": status, "error_code": error_code}


@pytest.mark.unit
def test_messaging_verdict_counts_pending_unaccepted_twice_and_quarantined() -> None:
    from tooling.chaos.messaging import tally

    logs = [
        _log("k-once", "sent"),
        _log("k-delivered", "delivered"),
        _log("k-pending", "pending"),  # never settled: lost
        _log("k-unaccepted", "sent"),  # recorded as sent, SOLAPI never accepted it: lost
        _log("k-twice", "sent"),  # accepted twice: one duplicate
        _log("k-bad-phone", "failed", "INVALID_PHONE"),  # quarantined, not sent
        _log("k-refused", "failed", "SOLAPI_REFUSED"),  # not sent for another reason: lost
    ]
    accepted = {"k-once": 1, "k-delivered": 1, "k-twice": 2}
    result = PathResult("messaging")
    tally(logs, accepted, result)
    assert (result.compared, result.lost, result.duplicated, result.quarantined) == (7, 3, 1, 1)
    assert not result.ok

    clean = PathResult("messaging")
    tally([_log("a", "sent"), _log("b", "failed", "INVALID_PHONE")], {"a": 1}, clean)
    assert (clean.compared, clean.lost, clean.duplicated, clean.quarantined) == (2, 0, 0, 1)
    assert clean.ok
