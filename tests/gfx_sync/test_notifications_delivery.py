"""Notifications reach Slack (the local stand-in) once, by bot token or webhook; refusals and
rate limits are retried later; without a channel the table is the channel."""

import pytest

from gfx_sync.notify_delivery import deliver_pending
from resources.notifications import notify
from resources.slack import SlackAlertResource
from standins.base import EmulatorServer
from standins.slack import LOCAL_BOT_TOKEN, LOCAL_CHANNEL, LOCAL_WEBHOOK_PATH, create_slack_app

pytestmark = pytest.mark.integration


@pytest.fixture
def slack():
    app = create_slack_app()
    with EmulatorServer(app, name="slack") as server:
        yield server, app.state


@pytest.fixture
def inbox(supabase_db):
    supabase_db.execute("TRUNCATE public.notifications")
    yield


def _bot(server, token=LOCAL_BOT_TOKEN, channel=LOCAL_CHANNEL):
    return SlackAlertResource(
        token=token, channel=channel, base_url=f"{server.url}/api/", read_environment=False
    )


def _notify(db, n, severity="error"):
    with db.transaction() as conn:
        for i in range(n):
            notify(
                conn,
                domain="gfx_sync",
                type="sync_failure",
                severity=severity,
                title=f"동기화 실패: external_pg.t{i}",
                message="연속 실패 1회",
            )


def _undelivered(db):
    return db.fetch_value("SELECT count(*) FROM notifications WHERE delivered_at IS NULL")


def test_bot_token_delivers_each_notification_once(inbox, supabase_db, slack):
    server, state = slack
    _notify(supabase_db, 2)
    first = deliver_pending(supabase_db, _bot(server))
    second = deliver_pending(supabase_db, _bot(server))
    assert (first.channel, first.delivered, second.delivered) == ("bot", 2, 0)
    assert [m["text"].split("· ")[1].splitlines()[0] for m in state.messages] == [
        "동기화 실패: external_pg.t0",
        "동기화 실패: external_pg.t1",
    ]
    assert _undelivered(supabase_db) == 0


def test_incoming_webhook_delivers(inbox, supabase_db, slack):
    server, state = slack
    _notify(supabase_db, 1, severity="critical")
    hook = SlackAlertResource(webhook_url=server.url + LOCAL_WEBHOOK_PATH, read_environment=False)
    report = deliver_pending(supabase_db, hook)
    assert (report.channel, report.delivered) == ("webhook", 1)
    assert state.messages[0]["via"] == "webhook"
    assert "[CRITICAL]" in state.messages[0]["text"]


def test_rate_limit_defers_the_rest_with_retry_after(inbox, supabase_db, slack):
    server, state = slack
    state.burst, state.rate_per_s = 1, 0.2  # one now, the next in 5 s
    _notify(supabase_db, 3)
    report = deliver_pending(supabase_db, _bot(server))
    assert (report.delivered, report.failed, report.error) == (1, 1, "ratelimited")
    row = supabase_db.fetch_one(
        "SELECT delivery_attempts, last_delivery_error,"
        " extract(epoch FROM next_delivery_at - now()) AS wait_s"
        " FROM notifications WHERE delivered_at IS NULL ORDER BY id LIMIT 1"
    )
    assert row["delivery_attempts"] == 1
    assert row["last_delivery_error"] == "ratelimited"
    assert 1 <= row["wait_s"] <= 6  # Slack's Retry-After, not our own backoff
    assert len(state.messages) == 1


def test_refused_token_is_recorded_and_retried_later(inbox, supabase_db, slack):
    server, state = slack
    _notify(supabase_db, 2)
    report = deliver_pending(supabase_db, _bot(server, token="xoxb-wrong"))
    assert (report.delivered, report.error) == (0, "invalid_auth")
    assert _undelivered(supabase_db) == 2
    # due again (as the backoff would make it), with a good token: delivered
    supabase_db.execute("UPDATE notifications SET next_delivery_at = now()")
    assert deliver_pending(supabase_db, _bot(server)).delivered == 2
    assert len(state.messages) == 2


def test_unknown_channel_is_slacks_ok_false_error(inbox, supabase_db, slack):
    server, _state = slack
    _notify(supabase_db, 1)
    assert deliver_pending(supabase_db, _bot(server, channel="#nope")).error == "channel_not_found"


def test_without_a_channel_notifications_stay_in_the_table(inbox, supabase_db):
    _notify(supabase_db, 1)
    report = deliver_pending(supabase_db, SlackAlertResource(read_environment=False))
    assert (report.channel, report.delivered, report.pending) == (None, 0, 1)
    assert supabase_db.fetch_value("SELECT delivery_attempts FROM notifications") == 0


def test_a_failing_sync_reaches_slack_through_health_and_the_delivery_sensor(
    clean, supabase_db, slack
):
    import dagster as dg

    from gfx_sync.batch import batch_sync
    from gfx_sync.health import run_health
    from gfx_sync.sensors import notification_delivery_sensor
    from gfx_sync.specs import spec_for
    from resources.errors import ServiceUnavailable
    from resources.postgres import PostgresResource

    server, state = slack
    dead = PostgresResource(
        dsn="postgresql://postgres@127.0.0.1:1/none", connect_attempts=1, pool_timeout_s=0.3
    )
    with pytest.raises(ServiceUnavailable):
        batch_sync(dead, supabase_db, spec_for("wsop_events"))
    run_health(supabase_db)
    with dg.build_sensor_context(
        resources={"supabase_db": supabase_db, "slack": _bot(server)}
    ) as ctx:
        skip = notification_delivery_sensor(ctx)
    assert "delivered 1 via bot" in skip.skip_message
    (msg,) = state.messages
    assert "[ERROR] gfx_sync · 동기화 실패: external_pg.wsop_events" in msg["text"]
