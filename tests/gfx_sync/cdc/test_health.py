"""Slot verdicts (pure): thresholds, an inactive slot retaining WAL, a lost slot, a stopped
stream."""

from __future__ import annotations

import pytest

from gfx_sync.cdc.errors import SlotInvalidated
from gfx_sync.cdc.health import SlotHealth, Thresholds, evaluate
from gfx_sync.cdc.slot import SlotInfo, assert_slot_usable

pytestmark = pytest.mark.unit

T = Thresholds(max_lag_bytes=1000, max_lag_seconds=10, max_inactive_retained_bytes=5000)


def verdicts(**kw) -> dict[str, bool]:
    base = dict(
        slot_name="s",
        exists=True,
        active=True,
        wal_status="reserved",
        lag_bytes=0,
        retained_bytes=0,
    )
    return {v.name: v.passed for v in evaluate(SlotHealth(**{**base, **kw}), T)}


@pytest.mark.parametrize(
    "kw, failing",
    [
        ({}, set()),
        ({"lag_bytes": 1001}, {"lag_bytes"}),
        ({"lag_seconds": 10.5}, {"lag_seconds"}),
        ({"active": True, "retained_bytes": 10**9}, set()),  # a busy consumer may retain WAL
        ({"active": False, "retained_bytes": 5000}, set()),
        ({"active": False, "retained_bytes": 5001}, {"inactive_slot_wal"}),
        ({"wal_status": "lost"}, {"slot_lost"}),
        ({"stopped_reason": "schema drift on public.gfx_hands"}, {"stopped"}),
    ],
)
def test_verdicts(kw, failing):
    assert {name for name, ok in verdicts(**kw).items() if not ok} == failing


def test_missing_slot_is_one_failing_verdict():
    [v] = evaluate(SlotHealth("s", exists=False), T)
    assert (v.name, v.passed) == ("slot_missing", False)
    assert "does not exist" in v.message


def test_inactive_retention_is_critical_and_lag_only_a_warning():
    sev = {
        v.name: v.severity
        for v in evaluate(
            SlotHealth("s", True, active=False, retained_bytes=10**6, lag_bytes=10**6), T
        )
    }
    assert sev["inactive_slot_wal"] == "critical"
    assert sev["lag_bytes"] == "warning"


def test_a_lost_slot_refuses_to_stream_and_names_the_fix():
    info = SlotInfo("gfx_cdc_x", "x", False, None, 0, 0, "lost", 100, None)
    with pytest.raises(SlotInvalidated, match="wal_status=lost.*init --resnapshot"):
        assert_slot_usable(info)
    assert_slot_usable(SlotInfo("gfx_cdc_x", "x", False, None, 0, 0, "extended", 100, None))
