"""The short version of ``make chaos`` in ``make test``: a few random kills per path, the real
harness command line, its verdict table read back.

The full run (``make chaos``, 50 kills per path) is not part of ``make test``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]


def _row(table: str, path: str) -> list[str]:
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == path:
            return cells
    raise AssertionError(f"no row for {path!r} in:\n{table}")


@pytest.mark.parametrize(
    ("path", "row_name"),
    [("consultation-backup", "consultation backup"), ("gfx-batch", "gfx batch")],
)
def test_chaos_short_run_loses_and_duplicates_nothing(
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
    cells = _row(out.read_text(), row_name)
    # | path | kills | faults | compared | lost | duplicated | differing | quarantined | s | verdict
    assert cells[-1] == "ok", cells
    assert int(cells[1]) == 3, cells
    assert int(cells[3]) > 0, cells
    assert (cells[4], cells[5], cells[6]) == ("0", "0", "0"), cells
