"""Text PostgreSQL can store: NUL (U+0000) replaced everywhere a payload can carry it."""

from __future__ import annotations

import pytest

from resources.pgtext import storable

pytestmark = pytest.mark.unit


def test_nul_is_replaced_in_strings_keys_and_nested_values_and_nothing_else_changes():
    payload = {"a\x00": ["x\x00y", ("z\x00",), 3, None], "b": {"c": "d\x00"}, "n": 1.5}
    assert storable(payload) == {
        "a\ufffd": ["x\ufffdy", ["z\ufffd"], 3, None],
        "b": {"c": "d\ufffd"},
        "n": 1.5,
    }
    assert storable("plain") == "plain" and storable(None) is None and storable(b"\x00") == b"\x00"
