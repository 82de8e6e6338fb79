"""What `make serve` shows: the webserver loads workspace.yaml with all three code locations."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from standins.base import free_port

pytestmark = pytest.mark.e2e

QUERY = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message }
    ... on RepositoryLocation { repositories { assetNodes { assetKey { path } } jobs { name }
      sensors { name } schedules { name } } } } } } } }"""


def test_webserver_loads_the_three_code_locations(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy("dagster.yaml", home / "dagster.yaml")
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    webserver = Path(sys.executable).parent / "dagster-webserver"
    proc = subprocess.Popen(
        [str(webserver), "-w", "workspace.yaml", "-p", str(port), "-h", "127.0.0.1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        entries = None
        while time.monotonic() < deadline:
            try:
                data = httpx.post(
                    f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, timeout=30
                ).json()
                entries = data["data"]["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    break
            except (httpx.HTTPError, KeyError, TypeError, ValueError):
                pass
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            time.sleep(1)
        assert entries is not None
        by_name = {e["name"]: e["locationOrLoadError"] for e in entries}
        assert sorted(by_name) == ["consultation_backup", "gfx_sync", "messaging"]
        for name, loc in by_name.items():
            assert loc["__typename"] == "RepositoryLocation", (
                f"{name}: {loc.get('message', '')[:500]}"
            )
            repo = loc["repositories"][0]
            keys = {"/".join(a["assetKey"]["path"]) for a in repo["assetNodes"]}
            assert any(k.startswith("supabase/") for k in keys), name
            assert f"{name}_migrations" in {j["name"] for j in repo["jobs"]}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
