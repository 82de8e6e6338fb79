"""Demo data: deterministic, independent streams, realistic Korean values and real images."""

import io

import filetype
import pytest
from PIL import Image

from tooling.demo_data import DemoData, scale_factor

pytestmark = pytest.mark.unit


def test_demo_data_is_deterministic_and_streams_are_independent():
    a, b = DemoData(seed=5, scale="tiny"), DemoData(seed=5, scale="tiny")
    assert [a.korean_name() for _ in range(5)] == [b.korean_name() for _ in range(5)]
    assert [a.mobile_phone() for _ in range(5)] == [b.mobile_phone() for _ in range(5)]
    assert a.image_bytes("png") == b.image_bytes("png")
    assert (
        DemoData(seed=5).child("gfx").korean_name() == DemoData(seed=5).child("gfx").korean_name()
    )
    assert (
        DemoData(seed=6).korean_name() != DemoData(seed=5).korean_name()
        or DemoData(seed=6).address() != DemoData(seed=5).address()
    )


def test_demo_data_is_realistic():
    d = DemoData(seed=1)
    name, phone, address = d.korean_name(), d.mobile_phone(), d.address()
    assert all("\uac00" <= ch <= "\ud7a3" for ch in name) and 2 <= len(name) <= 4
    assert phone.startswith("010-") and len(phone) == 13
    assert any("\uac00" <= ch <= "\ud7a3" for ch in address)
    for fmt, mime in (("jpeg", "image/jpeg"), ("png", "image/png"), ("webp", "image/webp")):
        data = d.image_bytes(fmt)
        assert filetype.guess_mime(data) == mime
        assert Image.open(io.BytesIO(data)).size == (64, 48)


@pytest.mark.parametrize(
    ("scale", "rows"), [("tiny", 20), ("large", 1_000_000), ("1234", 1234), (99, 99)]
)
def test_scale_factor(scale, rows):
    assert scale_factor(scale) == rows


def test_unknown_scale_is_an_error():
    with pytest.raises(ValueError, match="unknown scale"):
        scale_factor("gigantic")
