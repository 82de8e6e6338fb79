"""Local stand-in for Slack: ``chat.postMessage`` (bot token) and incoming webhooks.

Reached by ``slack_sdk``'s ``WebClient(base_url=…)`` (what ``dagster-slack`` builds) and
``WebhookClient(url)``; see :mod:`standins.slack.app` for the documented semantics it follows
(``ok: false`` errors at HTTP 200, 429 with ``Retry-After`` at about one message per second per
channel with a burst of 3). ``GET /_emulator/messages`` lists what was posted.
"""

from standins.slack.app import build, create_app, create_slack_app
from standins.slack.state import (
    LOCAL_BOT_TOKEN,
    LOCAL_CHANNEL,
    LOCAL_CHANNEL_ID,
    LOCAL_WEBHOOK_PATH,
    MAX_TEXT_CHARS,
    SlackState,
    default_state,
)

__all__ = [
    "LOCAL_BOT_TOKEN",
    "LOCAL_CHANNEL",
    "LOCAL_CHANNEL_ID",
    "LOCAL_WEBHOOK_PATH",
    "MAX_TEXT_CHARS",
    "SlackState",
    "build",
    "create_app",
    "create_slack_app",
    "default_state",
]
