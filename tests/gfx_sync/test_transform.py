"""Pure logic: watermark/overlap arithmetic, chunk and row diffs, constraint parsing, drift
wording."""

from datetime import UTC, datetime, timedelta

import pytest

from gfx_sync import transform as tf
from gfx_sync.specs import SPECS, SPECS_BY_TABLE, spec_for

pytestmark = pytest.mark.unit

T = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "target_max, horizon, expected",
    [
        (None, T, None),  # empty target: full read
        (T, None, T),
        (
            T,
            T - timedelta(hours=2),
            T - timedelta(hours=2),
        ),  # a long transaction holds the watermark back
        (T - timedelta(hours=1), T, T - timedelta(hours=1)),  # never ahead of the committed data
    ],
)
def test_next_watermark(target_max, horizon, expected):
    assert tf.next_watermark(target_max, horizon) == expected


@pytest.mark.parametrize(
    "target_max, stored, expected",
    [
        (None, T, None),
        (T, None, None),
        (T, T - timedelta(minutes=30), T - timedelta(minutes=30)),
        (T - timedelta(minutes=5), T, T - timedelta(minutes=5)),
    ],
)
def test_read_base_takes_the_lower_of_target_and_stored_or_reads_everything(
    target_max, stored, expected
):
    assert tf.read_base(target_max, stored) == expected


def test_read_from_never_starts_in_the_future():
    future = T + timedelta(days=365)
    assert tf.read_from(future, timedelta(minutes=10), T) == T - timedelta(minutes=10)
    assert tf.read_from(T, timedelta(minutes=10), T + timedelta(hours=1)) == T - timedelta(
        minutes=10
    )
    assert tf.read_from(None, timedelta(minutes=10), T) is None


def test_day_window_is_utc_and_one_day():
    lo, hi = tf.day_window("2026-03-29")
    assert lo == datetime(2026, 3, 29, tzinfo=UTC)
    assert hi - lo == timedelta(days=1)


def test_diff_chunks_finds_changed_missing_and_extra():
    src = {0: (10, 5), 1: (10, 7), 2: (3, 1)}
    tgt = {0: (10, 5), 1: (10, 8), 3: (1, 1)}
    assert tf.diff_chunks(src, tgt) == [1, 2, 3]
    assert tf.diff_chunks(src, dict(src)) == []


def test_diff_rows_splits_copy_and_delete():
    to_copy, to_delete = tf.diff_rows({"1": 1, "2": 2, "3": 3}, {"1": 1, "2": 9, "4": 4})
    assert to_copy == ["2", "3"]
    assert to_delete == ["4"]


@pytest.mark.parametrize(
    "definition, expected",
    [
        ("CHECK ((chip_count >= 0))", "((chip_count >= 0))"),
        ("CHECK ((seat_no >= 1)) NOT VALID", "((seat_no >= 1))"),
        ("UNIQUE (a)", None),
    ],
)
def test_check_expression(definition, expected):
    assert tf.check_expression(definition) == expected


def test_compare_columns_names_every_difference():
    src = [("id", "bigint"), ("a", "text"), ("b", "integer")]
    assert tf.compare_columns(src, list(src)) == []
    problems = tf.compare_columns(src, [("id", "bigint"), ("a", "jsonb"), ("c", "text")])
    assert "column a: source text, target jsonb" in problems
    assert "column b (integer) missing on target" in problems
    assert "column c (text) missing on source" in problems
    assert tf.compare_columns(src, [src[1], src[0], src[2]]) == [
        "same columns in a different order (binary COPY needs the same order)"
    ]


def test_spec_list_matches_the_seed_matrix():
    assert {s.table for s in SPECS if s.method == "cdc"} == {
        "gfx_sessions",
        "gfx_hands",
        "gfx_hand_players",
        "gfx_players",
    }
    assert {s.table for s in SPECS if s.method == "batch"} == {
        "wsop_events",
        "wsop_players",
        "wsop_chip_counts",
    }
    assert spec_for("player_overrides").winner == "supabase"
    assert spec_for("profile_images").winner == "supabase"
    assert spec_for("cue_sheets").winner == "lww"
    assert spec_for("render_queue").direction == "supabase_to_external"
    assert all(s.winner == "external" for s in SPECS if s.method in ("cdc", "batch"))
    assert SPECS_BY_TABLE["gfx_hands"].freshness == timedelta(minutes=5)
    assert SPECS_BY_TABLE["wsop_events"].freshness == timedelta(minutes=30)
    with pytest.raises(KeyError, match="not a synced table"):
        spec_for("nope")


def test_bucket_predicates_are_key_ranges():
    spec = spec_for("gfx_hands")
    assert '"id" >= 100' in tf.chunk_predicate(spec, 100, [1]).as_string(None)
    assert tf.chunk_predicate(spec, 100, []).as_string(None) == "false"
