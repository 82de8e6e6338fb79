"""Fixtures: fresh Notion / Drive / Storage stand-ins per test (tiny seeded workspace, served
on free ports and reached through the real client libraries), the resources pointed at them,
and clean domain tables in this process's private test database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from resources.postgres import PostgresResource
from tests.support.consultation import BackupEnv, backup_environment


@pytest.fixture
def backup_env(
    supabase_db: PostgresResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BackupEnv]:
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "local-service-role-key")
    with backup_environment(supabase_db, tmp_path) as env:
        yield env
