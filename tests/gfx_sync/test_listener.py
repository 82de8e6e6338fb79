"""Event-driven overrides and render queue: a supervised listener applies Supabase changes to
the external database as they are notified, and polls the external side briefly, both through
the existing two-way code."""

import threading
import time

import pytest

from gfx_sync.listener import Listener, relevant
from gfx_sync.pause import pause_tables

TABLES = ("player_overrides", "profile_images", "cue_sheets", "render_queue")


@pytest.mark.unit
@pytest.mark.parametrize(
    "payload, expected",
    [
        (
            '{"table": "player_overrides", "operation": "UPDATE", "origin": "supabase"}',
            "player_overrides",
        ),
        ('{"table": "player_overrides", "operation": "UPDATE", "origin": "external"}', None),
        ('{"table": "cue_sheets", "operation": "DELETE", "origin": "external"}', "cue_sheets"),
        ('{"table": "gfx_hands", "operation": "INSERT", "origin": "supabase"}', None),
        ("not json", None),
    ],
)
def test_only_other_writers_changes_are_exchanged(payload, expected):
    assert relevant(payload, TABLES) == expected


def _wait_for(predicate, what, limit_s=20.0):
    """Wait until ``predicate()`` holds (a deadline against hangs, not a timing assertion)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
def listener(clean, supabase_db, gfx_source_db):
    lst = Listener(gfx_source_db, supabase_db, poll_interval_s=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=lst.run, args=(stop,), daemon=True)
    thread.start()
    # the second poll comes after the start-up catch-up exchanges: a test's changes from here on
    # are the listener's to see (a pause does not stop an exchange already under way)
    _wait_for(lambda: lst.stats.polls >= 2, "listener started and caught up")
    yield lst
    stop.set()
    thread.join(timeout=30)


@pytest.mark.integration
def test_an_override_edit_in_supabase_reaches_the_external_db(listener, supabase_db, gfx_source_db):
    before = listener.stats.exchanges.get("player_overrides", 0)
    supabase_db.execute(
        "INSERT INTO player_overrides (player_id, field_name, override_value)"
        " VALUES (7, 'nickname', 'Ace')"
    )
    _wait_for(
        lambda: (
            gfx_source_db.fetch_value(
                "SELECT override_value FROM player_overrides WHERE player_id = 7"
            )
            == "Ace"
        ),
        "override copied to the external database",
    )
    # by notification; the exchange is counted after its commit, so the copy can be seen first
    _wait_for(
        lambda: listener.stats.exchanges["player_overrides"] > before,
        "the exchange counted",
    )
    supabase_db.execute("UPDATE player_overrides SET override_value = 'King' WHERE player_id = 7")
    _wait_for(
        lambda: (
            gfx_source_db.fetch_value(
                "SELECT override_value FROM player_overrides WHERE player_id = 7"
            )
            == "King"
        ),
        "override update copied",
    )


@pytest.mark.integration
def test_an_external_change_reaches_supabase_by_the_short_poll(
    listener, supabase_db, gfx_source_db
):
    gfx_source_db.execute(
        "INSERT INTO cue_sheets (session_id, sheet_name, segment_no, cue_type)"
        " VALUES (1, '오프닝', 1, 'intro')"
    )
    _wait_for(
        lambda: (
            supabase_db.fetch_value("SELECT sheet_name FROM cue_sheets WHERE segment_no = 1")
            == "오프닝"
        ),
        "cue sheet copied to Supabase",
    )
    # the copy into Supabase notified with origin 'external': ignored, no echo back
    _wait_for(lambda: listener.stats.ignored_own_writes >= 1, "own write ignored")


@pytest.mark.integration
def test_render_jobs_go_out_and_results_come_back(listener, supabase_db, gfx_source_db):
    supabase_db.execute(
        "INSERT INTO render_queue (job_type, template_name, priority)"
        " VALUES ('lower_third', 't1', 3)"
    )
    _wait_for(
        lambda: gfx_source_db.fetch_value("SELECT count(*) FROM render_queue") == 1,
        "render job sent to the renderer",
    )
    gfx_source_db.execute(
        "UPDATE render_queue SET status = 'completed', progress = 100, output_url = 'https://x/1.mp4'"
    )
    _wait_for(
        lambda: supabase_db.fetch_value("SELECT status FROM render_queue") == "completed",
        "render result back in Supabase",
    )


@pytest.mark.integration
def test_a_paused_table_is_not_exchanged(listener, supabase_db, gfx_source_db):
    pause_tables(supabase_db, ["profile_images"], reason="maintenance")
    supabase_db.execute(
        "INSERT INTO profile_images (player_id, storage_path, mime_type)"
        " VALUES (1, 'players/1.png', 'image/png')"
    )
    _wait_for(lambda: listener.stats.skipped_paused >= 1, "paused table skipped")
    assert gfx_source_db.fetch_value("SELECT count(*) FROM profile_images") == 0


@pytest.mark.e2e
def test_the_listen_command_runs_until_sigterm(clean, supabase_db, gfx_source_db):
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "gfx_sync.cli", "listen", "--poll-interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert "listening" in proc.stdout.readline()
        supabase_db.execute(
            "INSERT INTO player_overrides (player_id, field_name, override_value)"
            " VALUES (9, 'nickname', 'Nine')"
        )
        _wait_for(
            lambda: (
                gfx_source_db.fetch_value(
                    "SELECT override_value FROM player_overrides WHERE player_id = 9"
                )
                == "Nine"
            ),
            "override copied by the listen command",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert '"player_overrides"' in out


@pytest.mark.integration
def test_the_listener_reconnects_after_its_connection_is_killed(
    listener, supabase_db, gfx_source_db
):
    killed = supabase_db.fetch_value(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = 'gfx-listener' AND datname = current_database()"
    )
    assert killed == 1
    _wait_for(lambda: listener.stats.errors >= 1, "connection loss noticed")
    supabase_db.execute(
        "INSERT INTO player_overrides (player_id, field_name, override_value)"
        " VALUES (11, 'nickname', 'after reconnect')"
    )
    _wait_for(
        lambda: (
            gfx_source_db.fetch_value(
                "SELECT override_value FROM player_overrides WHERE player_id = 11"
            )
            == "after reconnect"
        ),
        "override copied after the reconnect",
    )
