"""Pure parts of the history: where a superseded image object is kept."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consultation_backup.history import VERSIONS_PREFIX, version_path

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("path", "uploaded", "expected"),
    [
        (
            "customers/00001/consultations/00001_001/image_1.jpg",
            datetime(2026, 12, 3, 6, 1, 2, 345678, tzinfo=UTC),
            "versions/customers/00001/consultations/00001_001/image_1.20261203T060102345678Z.jpg",
        ),
        (
            "a/b/image_2.webp",
            "2026-12-03T06:01:02+00:00",
            "versions/a/b/image_2.20261203T0601020000.webp",
        ),
        ("a/b/noext", None, "versions/a/b/noext.unknown"),
    ],
)
def test_version_path_keeps_the_extension_and_names_the_upload_time(path, uploaded, expected):
    assert version_path(path, uploaded) == expected


def test_two_uploads_of_one_path_get_two_version_paths():
    first = version_path("p/image_1.png", datetime(2026, 1, 1, tzinfo=UTC))
    second = version_path("p/image_1.png", datetime(2026, 1, 2, tzinfo=UTC))
    assert first != second and first.startswith(VERSIONS_PREFIX)
