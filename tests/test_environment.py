"""Which environment this is, and the local defaults the entry points apply."""

import json
from pathlib import Path

import pytest

from resources.environment import (
    LOCAL_DEFAULTS,
    UnknownEnvironment,
    apply_local_defaults,
    current_environment,
)
from tooling.local_setup import ensure_local_google_key, prepare_local_environment

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "expected"), [(None, "local"), ("local", "local"), ("PRODUCTION", "production")]
)
def test_current_environment(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("PLATFORM_ENV", raising=False)
    else:
        monkeypatch.setenv("PLATFORM_ENV", value)
    assert current_environment() == expected


def test_unknown_environment_is_an_error(monkeypatch):
    monkeypatch.setenv("PLATFORM_ENV", "staging")
    with pytest.raises(UnknownEnvironment, match="staging"):
        current_environment()


def test_local_defaults_fill_only_unset_variables_and_never_in_production():
    env = {"PLATFORM_ENV": "local", "NOTION_TOKEN": "mine"}
    filled = apply_local_defaults(env)
    assert env["NOTION_TOKEN"] == "mine" and "NOTION_TOKEN" not in filled
    assert env["SUPABASE_DB_URL"] == LOCAL_DEFAULTS["SUPABASE_DB_URL"]
    assert env["MESSAGING_SEND_MODE"] == "dry_run"
    prod = {"PLATFORM_ENV": "production"}
    assert apply_local_defaults(prod) == [] and prod == {"PLATFORM_ENV": "production"}


def test_the_local_drive_key_is_written_once_where_the_contract_points(tmp_path):
    env = {"PLATFORM_ENV": "local", "DAGSTER_HOME": str(tmp_path)}
    prepare_local_environment(env)
    key = Path(env["GOOGLE_SERVICE_ACCOUNT_JSON"])
    assert key.parent == tmp_path, f"key written outside DAGSTER_HOME: {key}"
    info = json.loads(key.read_text())
    assert info["token_uri"] == f"{LOCAL_DEFAULTS['GOOGLE_DRIVE_BASE_URL']}/token"
    assert info["type"] == "service_account" and "PRIVATE KEY" in info["private_key"]
    before = key.read_bytes()
    assert ensure_local_google_key(env) is None, "an existing key must not be rewritten"
    assert key.read_bytes() == before


def test_production_gets_no_defaults_and_no_key(tmp_path):
    env = {"PLATFORM_ENV": "production", "DAGSTER_HOME": str(tmp_path)}
    assert prepare_local_environment(env) == []
    assert env == {"PLATFORM_ENV": "production", "DAGSTER_HOME": str(tmp_path)}
    assert list(tmp_path.iterdir()) == [], "nothing may be written in production"


def test_no_key_is_written_for_a_real_drive_endpoint(tmp_path):
    env = {
        "PLATFORM_ENV": "local",
        "GOOGLE_SERVICE_ACCOUNT_JSON": str(tmp_path / "key.json"),
        "GOOGLE_DRIVE_BASE_URL": "https://www.googleapis.com",
    }
    assert ensure_local_google_key(env) is None
    assert not (tmp_path / "key.json").exists(), "a throwaway key is only for the stand-in"
