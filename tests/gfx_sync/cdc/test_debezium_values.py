"""Debezium field values converted to PostgreSQL text input, type by type."""

from __future__ import annotations

import base64

import pytest

from gfx_sync.cdc.debezium import UNAVAILABLE, to_pg_text
from gfx_sync.cdc.models import UNCHANGED

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "value, schema, expected",
    [
        (None, None, None),
        (True, None, "true"),
        (3, None, "3"),
        ("x", None, "x"),
        ({"한": [1]}, None, '{"한": [1]}'),
        (["a", 'b"c', None], None, '{"a","b\\"c",NULL}'),
        (20413, {"name": "io.debezium.time.Date"}, "2025-11-21"),
        (
            1_763_719_200_123_456,
            {"name": "io.debezium.time.MicroTimestamp"},
            "2025-11-21 10:00:00.123456",
        ),
        (1_763_719_200_123, {"name": "io.debezium.time.Timestamp"}, "2025-11-21 10:00:00.123000"),
        (
            base64.b64encode((-5).to_bytes(1, "big", signed=True)).decode(),
            {"name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "3"}},
            "-0.005",
        ),
        (UNAVAILABLE, None, UNCHANGED),
    ],
)
def test_value_conversion(value, schema, expected):
    assert to_pg_text(value, schema) == expected
