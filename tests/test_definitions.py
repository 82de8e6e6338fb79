"""Every code location loads on its own and the three merge without conflicts."""

import importlib

import dagster as dg
import pytest
import yaml

from tooling.materialize import workspace_modules

pytestmark = pytest.mark.unit

LOCATIONS = ["consultation_backup", "gfx_sync", "messaging"]


@pytest.mark.parametrize("location", LOCATIONS)
def test_each_code_location_loads(location):
    defs = importlib.import_module(f"{location}.definitions").defs
    assert isinstance(defs, dg.Definitions)
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def(f"{location}_migrations") is not None


def test_the_three_locations_merge():
    merged = dg.Definitions.merge(
        *(importlib.import_module(f"{loc}.definitions").defs for loc in LOCATIONS)
    )
    dg.Definitions.validate_loadable(merged)
    # shared resources are the same objects everywhere, so no key is bound twice differently
    assert {"supabase_db"} <= set(merged.resources)


def test_workspace_names_every_location_once(tmp_path):
    with open("workspace.yaml", encoding="utf-8") as fh:
        yaml.safe_load(fh)
    entries = workspace_modules("workspace.yaml")
    assert sorted(name for name, _, _ in entries) == sorted(LOCATIONS)
    assert all(module == f"{name}.definitions" and attr == "defs" for name, module, attr in entries)


def test_definitions_load_without_any_secret(monkeypatch):
    """EnvVars resolve at run time: loading a location must not need a single secret."""
    for name in (
        "NOTION_TOKEN",
        "SOLAPI_API_SECRET",
        "SUPABASE_SERVICE_ROLE_KEY",
        "MYSQL_READ_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PLATFORM_ENV", "production")
    for loc in LOCATIONS:
        module = importlib.reload(importlib.import_module(f"{loc}.definitions"))
        dg.Definitions.validate_loadable(module.defs)
