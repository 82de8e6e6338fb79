"""Importing the platform changes nothing in the environment; the entry points apply defaults."""

import os
import subprocess
import sys

import pytest

from resources.environment import LOCAL_DEFAULTS

pytestmark = pytest.mark.e2e

PLATFORM = os.path.join(os.path.dirname(sys.executable), "platform")
CONTRACT = [*LOCAL_DEFAULTS, "GOOGLE_SERVICE_ACCOUNT_JSON"]


def _bare_env(tmp_path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CONTRACT and k != "PLATFORM_ENV"}
    env["DAGSTER_HOME"] = str(tmp_path)
    env.update(extra)
    return env


def test_importing_the_code_locations_leaves_the_environment_alone(tmp_path):
    script = (
        "import os; before = dict(os.environ);"
        "import resources.shared, consultation_backup.definitions, gfx_sync.definitions,"
        " messaging.definitions;"
        "changed = sorted(set(os.environ.items()) ^ set(before.items()));"
        "print(changed); raise SystemExit(1 if changed else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=_bare_env(tmp_path), capture_output=True, text=True
    )
    assert done.returncode == 0, f"import changed os.environ: {done.stdout}{done.stderr[-2000:]}"


def test_platform_exec_runs_a_command_with_the_local_defaults(tmp_path):
    done = subprocess.run(
        [
            PLATFORM,
            "exec",
            "--",
            sys.executable,
            "-c",
            "import os; print(os.environ['NOTION_TOKEN'])",
        ],
        env=_bare_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == LOCAL_DEFAULTS["NOTION_TOKEN"]
    assert (tmp_path / "google-service-account.local.json").exists(), "local Drive key not written"


def test_platform_exec_in_production_passes_the_environment_unchanged(tmp_path):
    done = subprocess.run(
        [
            PLATFORM,
            "exec",
            "--",
            sys.executable,
            "-c",
            "import os; print('NOTION_TOKEN' in os.environ)",
        ],
        env=_bare_env(tmp_path, PLATFORM_ENV="production"),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False", "production must not get local defaults"


def test_a_postgres_only_command_loads_no_vendor_client(tmp_path):
    """The shared instances are built on first use: the gfx command lines need only PostgreSQL."""
    script = (
        "import sys; import resources.shared as s;"
        "from resources.shared import supabase_db, gfx_source_db;"
        "assert s.resources_for('supabase_db')['supabase_db'] is supabase_db;"
        "heavy = [m for m in ('notion_client', 'sqlglot', 'pymysql', 'googleapiclient')"
        " if m in sys.modules];"
        "print(heavy); raise SystemExit(1 if heavy else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=_bare_env(tmp_path), capture_output=True, text=True
    )
    assert done.returncode == 0, f"vendor clients imported: {done.stdout}{done.stderr[-2000:]}"
