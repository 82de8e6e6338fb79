"""Two-way tables and the render queue: both directions, LWW with deterministic ties, no echo,
conflicts counted, deletes, and render results coming back."""

from datetime import timedelta

import pytest

from gfx_sync.specs import spec_for
from gfx_sync.two_way import two_way_sync
from tests.support.gfx import table_digest

pytestmark = pytest.mark.integration

OVR = spec_for("player_overrides")
CUE = spec_for("cue_sheets")
RQ = spec_for("render_queue")


def both_equal(supabase_db, gfx_source_db, table):
    return table_digest(supabase_db, table) == table_digest(gfx_source_db, table)


def test_changes_on_either_side_reach_the_other_and_never_echo(clean, supabase_db, gfx_source_db):
    gfx_source_db.execute(
        "INSERT INTO player_overrides (player_id, field_name, override_value) VALUES (1,"
        " 'nickname', 'ext')"
    )
    supabase_db.execute(
        "INSERT INTO player_overrides (player_id, field_name, override_value) VALUES (2,"
        " 'name_ko', '김민수')"
    )
    res = two_way_sync(gfx_source_db, supabase_db, OVR)
    assert res.to_external.inserted == 1
    assert res.to_supabase.inserted == 1
    assert both_equal(supabase_db, gfx_source_db, "player_overrides")
    origins = {
        r["override_value"]: r["sync_origin"]
        for r in supabase_db.fetch_all("SELECT override_value, sync_origin FROM player_overrides")
    }
    assert origins == {
        "ext": "external",
        "김민수": "supabase",
    }  # copies keep their origin and timestamp
    stamps = supabase_db.fetch_all("SELECT id, updated_at FROM player_overrides ORDER BY id")
    for _ in range(2):
        again = two_way_sync(gfx_source_db, supabase_db, OVR)
        assert again.written == 0
        assert again.conflicts == 0
    assert (
        supabase_db.fetch_all("SELECT id, updated_at FROM player_overrides ORDER BY id") == stamps
    )
    supabase_db.execute(
        "UPDATE player_overrides SET override_value = 'edited in UI' WHERE player_id = 1"
    )
    two_way_sync(gfx_source_db, supabase_db, OVR)
    assert (
        gfx_source_db.fetch_value("SELECT override_value FROM player_overrides WHERE player_id = 1")
        == "edited in UI"
    )
    assert both_equal(supabase_db, gfx_source_db, "player_overrides")


def test_concurrent_edits_last_write_wins_and_the_conflict_is_logged(
    clean, supabase_db, gfx_source_db
):
    gfx_source_db.execute(
        "INSERT INTO cue_sheets (id, sheet_name, cue_type, content)"
        " VALUES ('00000000-0000-4000-8000-000000000001', 'Main', 'lower_third', '{\"v\": 0}')"
    )
    two_way_sync(gfx_source_db, supabase_db, CUE)
    supabase_db.execute('UPDATE cue_sheets SET content = \'{"v": "supabase"}\'')
    gfx_source_db.execute(
        'UPDATE cue_sheets SET content = \'{"v": "external"}\''
    )  # later transaction: wins
    res = two_way_sync(gfx_source_db, supabase_db, CUE)
    assert res.conflicts == 1
    assert supabase_db.fetch_value("SELECT content->>'v' FROM cue_sheets") == "external"
    assert both_equal(supabase_db, gfx_source_db, "cue_sheets")
    log = supabase_db.fetch_one(
        "SELECT conflicts, details FROM sync_log WHERE operation = 'conflict'"
    )
    assert log["conflicts"] == 1
    assert log["details"]["keys"] == ["00000000-0000-4000-8000-000000000001"]
    assert (
        supabase_db.fetch_value(
            "SELECT conflicts FROM sync_log WHERE operation = 'two_way' ORDER BY id DESC LIMIT 1"
        )
        == 1
    )


def _same_stamp_edit(db, table, key, column, value):
    with db.transaction() as conn:
        conn.execute("SET LOCAL gfx_sync.applying = 'on'")
        side = "supabase" if "supabase" in db.dsn else "external"
        conn.execute(
            f"UPDATE {table} SET {column} = %s, sync_origin = %s, updated_at = '2026-11-20"
            f" 10:00:00+00'"
            " WHERE id = %s",
            (value, side, key),
        )


def test_a_tie_on_updated_at_goes_to_supabase_for_overrides(clean, supabase_db, gfx_source_db):
    key = "00000000-0000-4000-8000-0000000000aa"
    gfx_source_db.execute(
        "INSERT INTO player_overrides (id, player_id, field_name, override_value)"
        " VALUES (%s, 9, 'nickname', 'base')",
        (key,),
    )
    two_way_sync(gfx_source_db, supabase_db, OVR)
    _same_stamp_edit(gfx_source_db, "player_overrides", key, "override_value", "from external")
    _same_stamp_edit(supabase_db, "player_overrides", key, "override_value", "from supabase")
    res = two_way_sync(gfx_source_db, supabase_db, OVR, overlap=timedelta(days=3650))
    assert res.conflicts == 1
    for db in (supabase_db, gfx_source_db):
        assert db.fetch_value("SELECT override_value FROM player_overrides") == "from supabase"


def test_a_tie_on_cue_sheets_is_broken_by_content_hash_the_same_way_on_both_sides(
    clean, supabase_db, gfx_source_db
):
    key = "00000000-0000-4000-8000-0000000000bb"
    gfx_source_db.execute(
        "INSERT INTO cue_sheets (id, sheet_name, cue_type) VALUES (%s, 'S', 'bug')", (key,)
    )
    two_way_sync(gfx_source_db, supabase_db, CUE)
    _same_stamp_edit(gfx_source_db, "cue_sheets", key, "operator", "박지훈")
    _same_stamp_edit(supabase_db, "cue_sheets", key, "operator", "이서연")
    supabase_db.execute("SET TIME ZONE 'UTC'")
    hashes = {}
    for name, db in (("ext", gfx_source_db), ("sb", supabase_db)):
        cols = [
            c
            for c in db.fetch_value(
                "SELECT array_agg(attname ORDER BY attnum) FROM pg_attribute WHERE attrelid ="
                " 'public.cue_sheets'::regclass"
                " AND attnum > 0 AND NOT attisdropped"
            )
            if c != "sync_origin"
        ]
        with db.transaction() as conn:
            conn.execute("SET LOCAL TimeZone = 'UTC'")
            hashes[name] = conn.execute(
                f"SELECT md5(row({', '.join(cols)})::text) FROM cue_sheets"
            ).fetchone()[0]
    expected = "박지훈" if hashes["ext"] > hashes["sb"] else "이서연"
    res = two_way_sync(gfx_source_db, supabase_db, CUE, overlap=timedelta(days=3650))
    assert res.conflicts == 1
    for db in (supabase_db, gfx_source_db):
        assert db.fetch_value("SELECT operator FROM cue_sheets") == expected


def test_deletes_travel_as_tombstones_in_both_directions(clean, supabase_db, gfx_source_db):
    gfx_source_db.execute(
        "INSERT INTO profile_images (player_id, storage_path, mime_type, thumbnail)"
        " SELECT g, 'players/' || g || '.webp', 'image/webp', decode('52494646', 'hex')"
        " FROM generate_series(1, 4) g"
    )
    two_way_sync(gfx_source_db, supabase_db, spec_for("profile_images"))
    assert supabase_db.fetch_value("SELECT count(*) FROM profile_images") == 4
    supabase_db.execute("DELETE FROM profile_images WHERE player_id = 1")
    gfx_source_db.execute("DELETE FROM profile_images WHERE player_id = 2")
    res = two_way_sync(gfx_source_db, supabase_db, spec_for("profile_images"))
    assert res.deleted == 2
    for db in (supabase_db, gfx_source_db):
        assert db.fetch_value(
            "SELECT array_agg(player_id ORDER BY player_id) FROM profile_images"
        ) == [3, 4]
    assert both_equal(supabase_db, gfx_source_db, "profile_images")
    assert two_way_sync(gfx_source_db, supabase_db, spec_for("profile_images")).written == 0


def test_render_jobs_go_out_and_only_their_results_come_back(clean, supabase_db, gfx_source_db):
    supabase_db.execute(
        "INSERT INTO render_queue (job_type, template_name, params, requested_by)"
        " VALUES ('leaderboard', 'lb_v2', '{\"top\": 10}', '관리자')"
    )
    two_way_sync(gfx_source_db, supabase_db, RQ)
    job = gfx_source_db.fetch_one("SELECT id, status, template_name FROM render_queue")
    assert job["status"] == "queued"
    assert job["template_name"] == "lb_v2"
    # the renderer works on the external side; it also (wrongly) touches a job field and adds its
    # own job
    gfx_source_db.execute(
        "UPDATE render_queue SET status = 'done', progress = 100, output_url = 'https://cdn/x.mov',"
        " rendered_at = now(), template_name = 'renderer-changed' WHERE id = %s",
        (job["id"],),
    )
    gfx_source_db.execute(
        "INSERT INTO render_queue (job_type, template_name) VALUES ('bug', 'external-only')"
    )
    two_way_sync(gfx_source_db, supabase_db, RQ)
    back = supabase_db.fetch_one(
        "SELECT status, progress, output_url, template_name FROM render_queue WHERE id = %s",
        (job["id"],),
    )
    assert (back["status"], back["progress"], back["output_url"]) == (
        "done",
        100,
        "https://cdn/x.mov",
    )
    assert back["template_name"] == "lb_v2"  # Supabase is absolute for the job itself
    assert supabase_db.fetch_value("SELECT count(*) FROM render_queue") == 1


def test_a_late_committing_supabase_edit_still_reaches_the_external_side(
    clean, supabase_db, gfx_source_db, test_databases
):
    import psycopg

    supabase_db.execute(
        "INSERT INTO player_overrides (player_id, field_name, override_value)"
        " SELECT g, 'nickname', 'v0' FROM generate_series(1, 2) g"
    )
    two_way_sync(gfx_source_db, supabase_db, OVR, overlap=timedelta(0))
    slow = psycopg.connect(test_databases.supabase_url)
    try:
        slow.execute(
            "UPDATE player_overrides SET override_value = 'slow' WHERE player_id = 1"
        )  # stamped, not committed
        supabase_db.execute(
            "UPDATE player_overrides SET override_value = 'fast' WHERE player_id = 2"
        )
        two_way_sync(gfx_source_db, supabase_db, OVR, overlap=timedelta(0))
        assert (
            gfx_source_db.fetch_value(
                "SELECT override_value FROM player_overrides WHERE player_id = 2"
            )
            == "fast"
        )
        slow.commit()
    finally:
        slow.close()
    two_way_sync(gfx_source_db, supabase_db, OVR, overlap=timedelta(0))
    assert (
        gfx_source_db.fetch_value("SELECT override_value FROM player_overrides WHERE player_id = 1")
        == "slow"
    )
    assert both_equal(supabase_db, gfx_source_db, "player_overrides")
