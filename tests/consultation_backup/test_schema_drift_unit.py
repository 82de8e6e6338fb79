"""Pure parts of the rename-proof reads: resolving the pinned properties against a data
source's schema, canonical page properties by id, the 25-reference cap, 상담수 trust and the
stable identity of Notion-hosted files."""

from __future__ import annotations

import pytest

from consultation_backup import transform as T
from consultation_backup.models import PinnedProperty
from resources.notion import NotionPage

pytestmark = pytest.mark.unit

REQUIRED = {"고객명": frozenset({"rich_text"}), "상담일자": frozenset({"date"})}
OPTIONAL = {"상담일지": frozenset({"relation"})}
PINNED = {
    "고객명": PinnedProperty("고객명", "a1", "rich_text", "고객명"),
    "상담일자": PinnedProperty("상담일자", "d1", "date", "상담일자"),
    "상담일지": PinnedProperty("상담일지", "r1", "relation", "상담일지"),
}


def _page(properties: dict, page_id: str = "p1") -> NotionPage:
    return NotionPage(
        id=page_id,
        created_time="2026-11-01T00:00:00.000Z",
        last_edited_time="2026-11-01T00:00:00.000Z",
        in_trash=False,
        url=None,
        properties=properties,
    )


def test_first_resolution_pins_by_name():
    current = [("a1", "고객명", "rich_text"), ("d1", "상담일자", "date"), ("x", "기타", "number")]
    got, changes = T.resolve_properties(REQUIRED, OPTIONAL, {}, current)
    assert changes == []
    assert {k: v.property_id for k, v in got.items()} == {"고객명": "a1", "상담일자": "d1"}


def test_a_rename_is_followed_by_id():
    current = [("a1", "이름", "rich_text"), ("d1", "날짜", "date"), ("r1", "기록", "relation")]
    got, changes = T.resolve_properties(REQUIRED, OPTIONAL, PINNED, current)
    assert changes == []
    assert got["고객명"].name == "이름" and got["상담일자"].name == "날짜"


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        ([("d1", "상담일자", "date")], "'고객명' (id 'a1', last named '고객명') was removed"),
        (
            [("a1", "고객명", "rich_text"), ("d1", "상담일자", "rich_text")],
            "'상담일자' (id 'd1', named '상담일자') changed type from date to rich_text",
        ),
        # a new property under the old name is not the pinned one
        ([("zz", "고객명", "rich_text"), ("d1", "상담일자", "date")], "was removed"),
    ],
    ids=["removed", "retyped", "replaced-by-namesake"],
)
def test_removed_or_retyped_required_properties_are_changes(current, expected):
    got, changes = T.resolve_properties(REQUIRED, OPTIONAL, PINNED, current)
    assert len(changes) == 1 and expected in changes[0]


def test_an_optional_property_that_goes_away_is_dropped_not_a_change():
    current = [("a1", "고객명", "rich_text"), ("d1", "상담일자", "date")]
    got, changes = T.resolve_properties(REQUIRED, OPTIONAL, PINNED, current)
    assert changes == [] and "상담일지" not in got


def test_a_required_property_missing_at_first_pin_is_a_change():
    _, changes = T.resolve_properties(REQUIRED, OPTIONAL, {}, [("a1", "고객명", "number")])
    assert any("'고객명' has type number" in c for c in changes)
    assert any("'상담일자' was not found" in c for c in changes)


def test_canonical_properties_follow_ids_and_drop_unknown_ones():
    props = {
        "이름": {"id": "a1", "type": "rich_text", "rich_text": []},
        "고객명": {"id": "new", "type": "rich_text", "rich_text": []},  # a namesake
    }
    got = T.canonical_properties(props, {"a1": "고객명"})
    assert got == {"고객명": props["이름"]}
    assert T.canonical_properties(props, {}) == props


@pytest.mark.parametrize(
    ("value", "cut"),
    [
        ({"type": "relation", "relation": [{"id": "x"}] * 25, "has_more": True}, True),
        ({"type": "relation", "relation": [{"id": "x"}] * 25, "has_more": False}, False),
        ({"type": "people", "people": [{}] * 25}, True),
        ({"type": "rich_text", "rich_text": [{"type": "mention"}] * 25}, True),
        ({"type": "rich_text", "rich_text": [{"type": "text"}] * 40}, False),
    ],
)
def test_truncated_values(value, cut):
    assert T.truncated(value) is cut


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"상담수": {"type": "formula", "formula": {"type": "number", "number": 3}}}, 3),
        ({"상담수": {"type": "formula", "formula": {"type": "number", "number": 25}}}, None),
        (
            {
                "상담수": {"type": "formula", "formula": {"type": "number", "number": 25}},
                "상담일지": {"type": "relation", "relation": [{"id": "x"}] * 60, "has_more": False},
            },
            60,
        ),
        (
            {
                "상담수": {"type": "formula", "formula": {"type": "number", "number": 25}},
                "상담일지": {"type": "relation", "relation": [{"id": "x"}] * 25, "has_more": True},
            },
            None,
        ),
    ],
    ids=["formula", "formula-capped", "completed-relation", "relation-not-completed"],
)
def test_consultation_count_is_not_trusted_past_25(props, expected):
    assert T.consultation_count(_page(props)) == expected


def test_notion_hosted_files_are_kept_by_identity_not_url():
    files = {
        "증상이미지": {
            "id": "f%3D1",
            "type": "files",
            "files": [
                {"name": "a.jpg", "type": "external", "external": {"url": "https://x/a.jpg"}},
                {
                    "name": "혀.png",
                    "type": "file",
                    "file": {"url": "https://s3/x?X-Amz-Signature=s", "expiry_time": "t"},
                },
            ],
        }
    }
    page = _page(files, "page-1")
    refs = T.file_urls(page, "증상이미지")
    assert refs == ["https://x/a.jpg", "notion-file:page-1/f%3D1/2/혀.png"]
    assert T.parse_notion_file_ref(refs[1]) == ("page-1", "f%3D1", 2, "혀.png")
    assert T.hosted_file_url(page, "f%3D1", 2) == ("https://s3/x?X-Amz-Signature=s", "t")
    assert T.hosted_file_url(page, "f%3D1", 1) == ("", "")
