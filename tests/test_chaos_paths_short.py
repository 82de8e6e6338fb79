"""The messaging chaos path's verdict (pure). The short runs of every path, this one included,
are in ``tests/test_chaos_short.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tooling.chaos.core import PathResult

ROOT = Path(__file__).resolve().parents[1]


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
