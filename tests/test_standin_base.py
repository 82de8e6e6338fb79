"""Fault injection of the stand-ins, exercised over real HTTP."""

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from standins.base import EmulatorServer, FaultInjector, with_faults

pytestmark = pytest.mark.integration


@pytest.fixture
def server():
    async def hello(request):
        return JSONResponse({"hello": "world"})

    injector = FaultInjector()
    app = with_faults(
        Starlette(routes=[Route("/v1/hello", hello)]),
        injector,
        error_body=lambda status: ({"object": "error", "status": status}, {}),
    )
    with EmulatorServer(app) as srv:
        yield srv, injector


def test_no_faults_passes_through(server):
    srv, _ = server
    assert httpx.get(f"{srv.url}/v1/hello").json() == {"hello": "world"}


def test_a_429_burst_carries_retry_after_then_clears(server):
    srv, _ = server
    configured = httpx.put(f"{srv.url}/_emulator/faults", json={"burst_429": 2, "retry_after_s": 3})
    assert configured.status_code == 200, configured.text
    answers = [httpx.get(f"{srv.url}/v1/hello") for _ in range(3)]
    assert [r.status_code for r in answers] == [429, 429, 200], "two 429s, then the burst is over"
    assert answers[0].headers["Retry-After"] == "3", "injected 429 carries the Retry-After set"
    assert answers[0].json()["object"] == "error", "injected 429 uses the vendor's error shape"
    injected = httpx.get(f"{srv.url}/_emulator/faults").json()["injected"]
    assert injected["429"] == 2, f"the admin API counts both injected 429s: {injected}"


def test_downtime_and_recovery(server):
    srv, injector = server
    injector.configure(down=True)
    statuses = {httpx.get(f"{srv.url}/v1/hello").status_code for _ in range(3)}
    assert statuses == {503}, f"every request answers 503 while down: {statuses}"
    health = httpx.get(f"{srv.url}/_emulator/health")
    assert health.status_code == 200, "the admin API stays reachable while the vendor API is down"
    httpx.post(f"{srv.url}/_emulator/faults/reset")
    assert httpx.get(f"{srv.url}/v1/hello").status_code == 200, "a reset ends the downtime"


def test_error_rate_is_seeded_and_proportional(server):
    srv, injector = server
    injector.configure(error_rate=0.3, error_status=500, seed=11)
    statuses = [httpx.get(f"{srv.url}/v1/hello").status_code for _ in range(200)]
    assert 40 <= statuses.count(500) <= 80, f"about 30% of 200 fail: {statuses.count(500)}"
    assert set(statuses) == {200, 500}, f"only 200 and the configured 500: {set(statuses)}"


def test_unknown_fault_setting_is_rejected(server):
    srv, _ = server
    response = httpx.put(f"{srv.url}/_emulator/faults", json={"explode": True})
    assert response.status_code == 400, response.text
    assert "explode" in response.json()["error"], "the error names the unknown setting"
