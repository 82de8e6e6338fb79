"""`pytest -m unit` needs no database: the unit level runs with every server out of reach."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
NOWHERE_PG = "postgresql://postgres@127.0.0.1:1/nowhere"


def test_unit_level_passes_with_no_database_reachable(tmp_path):
    env = {
        **os.environ,
        "SUPABASE_DB_URL": NOWHERE_PG,
        "GFX_SOURCE_DB_URL": NOWHERE_PG,
        "PG_ADMIN_URL": NOWHERE_PG,
        "MYSQL_HOST": "127.0.0.1",
        "MYSQL_PORT": "1",
        "MYSQL_ADMIN_PORT": "1",
        "DAGSTER_HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "unit", "-p", "no:cacheprovider", "tests"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    tail = done.stdout[-3000:] + done.stderr[-2000:]
    assert done.returncode == 0, f"unit level failed without databases:\n{tail}"
    assert " passed" in done.stdout and " failed" not in done.stdout, tail
