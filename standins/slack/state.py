"""The Slack stand-in's state: one workspace, its channels, bot tokens, webhooks, messages."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

# chat.postMessage: text is limited to 40,000 characters (longer is refused with msg_too_long
# here; Slack truncates or refuses, and a stand-in must not be more lenient than the vendor).
MAX_TEXT_CHARS = 40_000
MAX_BLOCKS = 50
# Slack allows about one message per second per channel, with short bursts; beyond that
# chat.postMessage and incoming webhooks answer HTTP 429 with Retry-After.
RATE_PER_S = 1.0
BURST = 3

LOCAL_BOT_TOKEN = "xoxb-local-stand-in-token"
LOCAL_CHANNEL = "#data-alerts"
LOCAL_CHANNEL_ID = "C0LOCALALRT"
LOCAL_WEBHOOK_PATH = "/services/T0LOCAL00/B0LOCAL00/localwebhooksecret000000"


@dataclass
class Bucket:
    """Token bucket per channel: ``BURST`` at once, refilled at ``RATE_PER_S``."""

    tokens: float = BURST
    stamp: float = field(default_factory=time.monotonic)

    def take(self, rate: float, burst: int) -> float:
        """0.0 if a message may go now, else seconds until one may."""
        now = time.monotonic()
        self.tokens = min(float(burst), self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / rate


@dataclass
class SlackState:
    """Workspace T0LOCAL00: channels by id and name, valid tokens, webhooks, posted messages."""

    tokens: set[str] = field(default_factory=lambda: {LOCAL_BOT_TOKEN})
    # channel id -> name (without '#'); the bot is a member of ``joined``
    channels: dict[str, str] = field(default_factory=lambda: {LOCAL_CHANNEL_ID: "data-alerts"})
    joined: set[str] = field(default_factory=lambda: {LOCAL_CHANNEL_ID})
    archived: set[str] = field(default_factory=set)
    # webhook path -> channel id
    webhooks: dict[str, str] = field(default_factory=lambda: {LOCAL_WEBHOOK_PATH: LOCAL_CHANNEL_ID})
    messages: list[dict[str, Any]] = field(default_factory=list)
    rate_per_s: float = RATE_PER_S
    burst: int = BURST
    buckets: dict[str, Bucket] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: int = 0

    def resolve(self, channel: str) -> str | None:
        """A channel id from an id, ``#name`` or ``name``."""
        if channel in self.channels:
            return channel
        name = channel.lstrip("#")
        return next((cid for cid, n in self.channels.items() if n == name), None)

    def wait_s(self, channel_id: str) -> float:
        bucket = self.buckets.setdefault(channel_id, Bucket(tokens=float(self.burst)))
        return bucket.take(self.rate_per_s, self.burst)

    def record(self, channel_id: str, text: str, blocks: Any, via: str) -> dict[str, Any]:
        self._ts += 1
        ts = f"{int(time.time())}.{self._ts:06d}"
        msg = {"type": "message", "channel": channel_id, "text": text, "ts": ts, "via": via}
        if blocks is not None:
            msg["blocks"] = blocks
        self.messages.append(msg)
        return msg


def default_state() -> SlackState:
    return SlackState()
