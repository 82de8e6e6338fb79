"""Deterministic, realistic demo data: Korean names, phone numbers, addresses, timestamps and real
image bytes. Seeded, so the same seed and scale always give the same data; scaled by a size
factor from ``tiny`` (tests) to millions of rows (benchmarks). Domains build on ``DemoData``.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from faker import Faker
from PIL import Image, ImageDraw

SEOUL = ZoneInfo("Asia/Seoul")

# rows of the main entity per scale; domains derive their own counts from it.
SCALES: dict[str, int] = {
    "tiny": 20,
    "small": 200,
    "demo": 1_000,
    "medium": 50_000,
    "large": 1_000_000,
    "huge": 5_000_000,
}

IMAGE_FORMATS = {
    "jpeg": ("JPEG", "image/jpeg", "jpg"),
    "png": ("PNG", "image/png", "png"),
    "webp": ("WEBP", "image/webp", "webp"),
}

SYMPTOMS = [
    "두통",
    "소화불량",
    "불면",
    "피로",
    "어지럼증",
    "손발저림",
    "변비",
    "설사",
    "피부 가려움",
    "기침",
    "인후통",
    "콧물",
    "관절통",
    "요통",
    "생리통",
    "식욕부진",
    "안구건조",
    "구내염",
    "위산역류",
    "알레르기",
]


def scale_factor(scale: str | int) -> int:
    """Rows for a named scale (or an explicit integer)."""
    if isinstance(scale, int):
        return scale
    if scale.isdigit():
        return int(scale)
    try:
        return SCALES[scale]
    except KeyError:
        raise ValueError(
            f"unknown scale {scale!r}; use one of {', '.join(SCALES)} or a number"
        ) from None


@dataclass
class DemoData:
    """A seeded source of realistic values. Every method is deterministic for a given seed."""

    seed: int = 20261121
    scale: str | int = "demo"

    @cached_property
    def rng(self) -> random.Random:
        return random.Random(self.seed)

    @cached_property
    def faker(self) -> Faker:
        fake = Faker("ko_KR")
        fake.seed_instance(self.seed)
        return fake

    @property
    def size(self) -> int:
        return scale_factor(self.scale)

    def child(self, name: str) -> DemoData:
        """An independent deterministic stream (adding one domain doesn't shift another)."""
        return DemoData(seed=hash_seed(self.seed, name), scale=self.scale)

    # -- people -------------------------------------------------------------------------
    def korean_name(self) -> str:
        return self.faker.name()

    def gender(self) -> str:
        return self.rng.choice(["남", "여"])

    def mobile_phone(self, dashed: bool = True) -> str:
        """A Korean mobile number, 010-XXXX-XXXX."""
        middle, last = self.rng.randint(2000, 9999), self.rng.randint(0, 9999)
        return f"010-{middle:04d}-{last:04d}" if dashed else f"010{middle:04d}{last:04d}"

    def address(self) -> str:
        return self.faker.address()

    def email(self) -> str:
        return self.faker.free_email()

    def birth_date(self, min_age: int = 18, max_age: int = 85, today: date | None = None) -> date:
        today = today or date(2026, 11, 1)
        return today - timedelta(days=self.rng.randint(min_age * 365, max_age * 365))

    def symptoms(self, k: int | None = None) -> list[str]:
        return self.rng.sample(SYMPTOMS, k or self.rng.randint(1, 3))

    def sentence(self) -> str:
        return self.faker.sentence()

    # -- time -----------------------------------------------------------------------------
    def timestamp_between(self, start: datetime, end: datetime) -> datetime:
        span = (end - start).total_seconds()
        return start + timedelta(seconds=self.rng.uniform(0, span))

    def recent_timestamp(self, days: int = 90, now: datetime | None = None) -> datetime:
        now = now or datetime(2026, 11, 21, tzinfo=UTC)
        return self.timestamp_between(now - timedelta(days=days), now)

    # -- images ---------------------------------------------------------------------------
    def image_bytes(self, fmt: str = "jpeg", size: tuple[int, int] = (64, 48)) -> bytes:
        """Real, decodable image bytes (JPEG, PNG or WebP) with a little deterministic drawing."""
        pil_format = IMAGE_FORMATS[fmt][0]
        color = tuple(self.rng.randint(0, 255) for _ in range(3))
        img = Image.new("RGB", size, color)
        draw = ImageDraw.Draw(img)
        for _ in range(3):
            x0, y0 = self.rng.randint(0, size[0] - 2), self.rng.randint(0, size[1] - 2)
            draw.rectangle(
                [x0, y0, min(size[0] - 1, x0 + 10), min(size[1] - 1, y0 + 8)],
                fill=tuple(self.rng.randint(0, 255) for _ in range(3)),
            )
        buf = io.BytesIO()
        img.save(buf, format=pil_format, quality=80) if pil_format != "PNG" else img.save(
            buf, format=pil_format
        )
        return buf.getvalue()

    def random_image(self) -> tuple[bytes, str, str]:
        """(bytes, mime type, extension) in a random one of the three allowed formats."""
        fmt = self.rng.choice(list(IMAGE_FORMATS))
        return self.image_bytes(fmt), IMAGE_FORMATS[fmt][1], IMAGE_FORMATS[fmt][2]


def hash_seed(seed: int, name: str) -> int:
    """A stable derived seed (Python's ``hash`` is salted per process, so not that)."""
    h = seed & 0xFFFFFFFF
    for ch in name.encode():
        h = (h * 16777619 ^ ch) & 0xFFFFFFFF
    return h
