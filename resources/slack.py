"""Slack as an alert channel: a bot token (``chat.postMessage``) or an incoming webhook.

:class:`SlackAlertResource` extends ``dagster-slack``'s ``SlackResource`` (which builds a
``slack_sdk.WebClient``) with the API base URL, the channel and the webhook URL, so the same code
reaches Slack in production and the local stand-in (``standins.slack``) in tests and the demo.

The channel is optional: the settings are read at run time (``SLACK_BOT_TOKEN`` +
``SLACK_CHANNEL``, or ``SLACK_WEBHOOK_URL``; ``SLACK_BASE_URL`` for the Web API root) unless
given explicitly, so a deployment without Slack loads and runs, and its alerts stay in the
``notifications`` table. The token and the webhook URL are secrets: never logged, never put in
an error message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from dagster_slack import SlackResource
from pydantic import Field
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

DEFAULT_BASE_URL = "https://slack.com/api/"
# Web API errors that no retry can fix without a configuration change.
CONFIG_ERRORS = frozenset(
    {
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "no_service",
        "channel_is_archived",
        "action_prohibited",
    }
)

ChannelKind = Literal["bot", "webhook"]


class SlackDeliveryError(Exception):
    """A message was not accepted.

    Attributes:
        reason: Slack's error code (``ratelimited``, ``invalid_auth``, ``http_503``, …).
        retry_after_s: the server's ``Retry-After`` when rate limited.
        config_problem: True when only a configuration change can fix it.
    """

    def __init__(self, reason: str, retry_after_s: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.config_problem = reason in CONFIG_ERRORS


@dataclass(frozen=True)
class SlackSettings:
    kind: ChannelKind
    token: str
    channel: str
    webhook_url: str
    base_url: str


class SlackAlertResource(SlackResource):
    """Posts alert messages to Slack by bot token or incoming webhook (bot token preferred).

    Every field left empty is read from the environment at run time (see the module doc).
    """

    token: str = Field(default="", description="Bot token (xoxb-…); empty: SLACK_BOT_TOKEN.")
    channel: str = Field(default="", description="Channel id or #name; empty: SLACK_CHANNEL.")
    webhook_url: str = Field(default="", description="Incoming webhook; empty: SLACK_WEBHOOK_URL.")
    base_url: str = Field(default="", description="Web API root; empty: SLACK_BASE_URL or Slack.")
    read_environment: bool = Field(
        default=True, description="Fill empty fields from SLACK_* variables at run time."
    )
    timeout_s: int = 10

    def settings(self) -> SlackSettings | None:
        """The configured channel, or None (alerts stay in the table)."""
        env = os.environ if self.read_environment else {}
        token = self.token or env.get("SLACK_BOT_TOKEN", "")
        channel = self.channel or env.get("SLACK_CHANNEL", "")
        webhook = self.webhook_url or env.get("SLACK_WEBHOOK_URL", "")
        base = self.base_url or env.get("SLACK_BASE_URL", "") or DEFAULT_BASE_URL
        if not base.endswith("/"):
            base += "/"
        if token and channel:
            return SlackSettings("bot", token, channel, "", base)
        if webhook:
            return SlackSettings("webhook", "", "", webhook, base)
        return None

    def get_client(self) -> WebClient:
        """The ``slack_sdk.WebClient`` pointed at the configured API root."""
        cfg = self.settings()
        token = cfg.token if cfg else self.token
        base = cfg.base_url if cfg else DEFAULT_BASE_URL
        # No retry handlers: a rate-limited or failed message is retried by the caller's
        # delivery schedule (it records the attempt), not by blocking here.
        return WebClient(token=token, base_url=base, timeout=self.timeout_s, retry_handlers=[])

    def post(self, text: str) -> str:
        """Post ``text``; return the message ts (bot) or ``"ok"`` (webhook).

        Raises:
            SlackDeliveryError: not accepted (rate limited, refused, unreachable).
            LookupError: no channel is configured.
        """
        cfg = self.settings()
        if cfg is None:
            raise LookupError("no Slack channel configured")
        try:
            if cfg.kind == "bot":
                resp = self.get_client().chat_postMessage(channel=cfg.channel, text=text)
                return str(resp.get("ts", ""))
            hook = WebhookClient(cfg.webhook_url, timeout=self.timeout_s, retry_handlers=[])
            wresp = hook.send(text=text)
        except SlackApiError as exc:
            r = exc.response
            retry = r.headers.get("Retry-After") or r.headers.get("retry-after")
            reason = str(r.get("error") or f"http_{r.status_code}")
            raise SlackDeliveryError(reason, float(retry) if retry else None) from None
        except OSError as exc:  # connection refused, timeout: no secret in the message
            raise SlackDeliveryError(f"unreachable: {type(exc).__name__}") from None
        if wresp.status_code != 200:
            retry = wresp.headers.get("Retry-After") or wresp.headers.get("retry-after")
            reason = (wresp.body or f"http_{wresp.status_code}").strip()[:100]
            if wresp.status_code == 429:
                reason = "ratelimited"
            raise SlackDeliveryError(reason, float(retry) if retry else None)
        return "ok"
