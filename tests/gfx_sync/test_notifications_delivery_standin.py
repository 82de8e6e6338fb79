"""The Slack stand-in is as strict as Slack: chat.postMessage's ok:false errors at HTTP 200,
429 with Retry-After, incoming webhooks' plain-text errors; reached with slack_sdk's clients."""

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from standins.base import EmulatorServer
from standins.slack import (
    LOCAL_BOT_TOKEN,
    LOCAL_CHANNEL,
    LOCAL_WEBHOOK_PATH,
    MAX_TEXT_CHARS,
    create_slack_app,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def slack():
    app = create_slack_app()
    with EmulatorServer(app, name="slack") as server:
        yield server, app.state


def _client(server, token=LOCAL_BOT_TOKEN):
    return WebClient(token=token, base_url=f"{server.url}/api/", retry_handlers=[])


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"channel": LOCAL_CHANNEL}, "no_text"),
        ({"channel": LOCAL_CHANNEL, "text": "x" * (MAX_TEXT_CHARS + 1)}, "msg_too_long"),
        ({"channel": "#elsewhere", "text": "hi"}, "channel_not_found"),
    ],
)
def test_post_message_errors_are_ok_false(slack, kwargs, error):
    server, state = slack
    with pytest.raises(SlackApiError) as exc:
        _client(server).chat_postMessage(**kwargs)
    assert exc.value.response.status_code == 200
    assert exc.value.response["error"] == error
    assert state.messages == []


def test_a_wrong_token_is_invalid_auth_and_none_is_not_authed(slack):
    server, _state = slack
    with pytest.raises(SlackApiError, match="invalid_auth"):
        _client(server, token="xoxb-nope").chat_postMessage(channel=LOCAL_CHANNEL, text="hi")
    with pytest.raises(SlackApiError, match="not_authed"):
        WebClient(base_url=f"{server.url}/api/").chat_postMessage(channel=LOCAL_CHANNEL, text="x")


def test_a_channel_the_bot_is_not_in(slack):
    server, state = slack
    state.channels["C0OTHER000"] = "private-ops"
    with pytest.raises(SlackApiError, match="not_in_channel"):
        _client(server).chat_postMessage(channel="#private-ops", text="hi")


def test_rate_limit_answers_429_with_retry_after(slack):
    server, state = slack
    state.burst, state.rate_per_s = 1, 0.5
    client = _client(server)
    ok = client.chat_postMessage(channel=LOCAL_CHANNEL, text="one")
    assert ok["ok"] is True
    assert ok["channel"] == "C0LOCALALRT"
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel=LOCAL_CHANNEL, text="two")
    assert exc.value.response.status_code == 429
    assert int(exc.value.response.headers["Retry-After"]) >= 1


def test_webhook_success_and_errors(slack):
    server, state = slack
    hook = WebhookClient(server.url + LOCAL_WEBHOOK_PATH, retry_handlers=[])
    assert (hook.send(text="hello").status_code, hook.send(text="hello").body) == (200, "ok")
    assert (hook.send(blocks=[]).status_code, hook.send(blocks=[]).body) == (400, "no_text")
    unknown = WebhookClient(server.url + "/services/T0/B0/wrong", retry_handlers=[])
    assert (unknown.send(text="x").status_code, unknown.send(text="x").body) == (404, "no_service")
    state.archived.add("C0LOCALALRT")
    archived = hook.send(text="x")
    assert (archived.status_code, archived.body) == (410, "channel_is_archived")
    assert [m["text"] for m in state.messages] == ["hello", "hello"]
