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

from tooling.chaos.consultation import compare_pages
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
    [
        ("consultation-backup", "consultation backup"),
        ("gfx-batch", "gfx batch"),
        ("gfx-cdc", "gfx cdc"),
        ("gfx-debezium", "gfx debezium"),
        ("messaging", "messaging"),
    ],
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
    cells = _table_row(out.read_text(), row_name)
    # | path | kills | faults | compared | lost | duplicated | differing | quarantined | s | verdict
    assert cells[-1] == "ok", cells
    assert int(cells[1]) == 3, cells
    assert int(cells[3]) > 0, cells
    assert (cells[4], cells[5], cells[6]) == ("0", "0", "0"), cells


def _text(kind: str, value: str) -> dict[str, object]:
    return {"type": kind, kind: [{"plain_text": value}]}


def _customer(title: str, name: str, *, trashed: bool = False) -> dict[str, object]:
    return {
        "in_trash": trashed,
        "properties": {
            "id": _text("title", title),
            "고객명": _text("rich_text", name),
            "전화번호": {"type": "phone_number", "phone_number": "010-1234-5678"},
        },
    }


def _row(title: str, name: str, deleted: bool = False) -> tuple[object, ...]:
    # notion_page_id, customer_id, name, phone, address, special_note, is_deleted
    return ("", title, name, "010-1234-5678", None, None, deleted)


@pytest.mark.unit
def test_consultation_verdict_counts_lost_differing_trashed_and_extra_rows() -> None:
    pages = {
        "p-equal": _customer("00001", " 김 민준 "),
        "p-lost": _customer("00002", "이서연"),
        "p-stripped": _customer("00003", " 박지호\n"),
        "p-trashed": _customer("00004", "최유나", trashed=True),
        "p-quarantined": _customer("00005", ""),
    }
    rows = {
        "p-equal": _row("00001", " 김 민준 "),
        "p-stripped": _row("00003", "박지호"),  # whitespace lost: not byte-exact
        "p-trashed": _row("00004", "최유나", deleted=False),  # trashed, still live
        "p-gone": _row("00009", "정하은"),  # no such page
    }
    result = PathResult("consultation backup")
    compare_pages("customers", pages, rows, {"p-quarantined": "고객명 missing"}, result)
    assert (result.compared, result.lost, result.differing, result.duplicated) == (5, 1, 2, 1)
    assert not result.ok

    fixed = {**rows, "p-lost": _row("00002", "이서연"), "p-stripped": _row("00003", " 박지호\n")}
    fixed["p-trashed"] = _row("00004", "최유나", deleted=True)
    del fixed["p-gone"]
    clean = PathResult("consultation backup")
    compare_pages("customers", pages, fixed, {"p-quarantined": "고객명 missing"}, clean)
    assert (clean.lost, clean.differing, clean.duplicated) == (0, 0, 0)
    assert clean.ok
