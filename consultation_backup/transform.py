"""Pure logic of the backup: Notion pages to rows (with the reason a page is rejected), image
type sniffing, storage paths, conflict decisions, field diffs and restore properties.

No Dagster, no clients: everything here is tested with plain tables.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from consultation_backup.models import (
    ConflictDecision,
    CustomerRow,
    NotionPageLike,
    PinnedProperty,
    RecordRow,
)
from resources.pgtext import storable

SEOUL = ZoneInfo("Asia/Seoul")
# ASCII digits only: ``\d`` would also take full-width or other Unicode digits, which the SQL
# contract check (``~ '^[0-9]{5}$'``) and every lookup by id would then miss.
CUSTOMER_ID_RE = re.compile(r"^[0-9]{5}$")
CONSULTATION_ID_RE = re.compile(r"^([0-9]{5})_([0-9]{3})$")
MAX_ESTIMATED_AGE = 150
GENDERS = ("남", "여")
PAGE_REFERENCE_CAP = 25
NOTION_FILE_PREFIX = "notion-file:"
DRIVE_ID_RES = (
    re.compile(r"/file/d/([A-Za-z0-9_-]+)"),
    re.compile(r"[?&]id=([A-Za-z0-9_-]+)"),
    re.compile(r"/uc\?.*id=([A-Za-z0-9_-]+)"),
)


class InvalidPage(ValueError):
    """A Notion page that cannot be backed up; ``reason`` is what the sync log and quarantine
    say."""

    def __init__(self, reason: str, business_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        # the id goes into JSONB (sync log, quarantine), which cannot hold NUL
        self.business_id = storable(business_id)


def _reject_nul(row: CustomerRow | RecordRow, business_id: str | None) -> None:
    """PostgreSQL text and JSONB cannot hold NUL (U+0000): such a page is quarantined, not
    loaded."""
    for name, value in row.as_dict().items():
        if (isinstance(value, str) and "\x00" in value) or (
            isinstance(value, list | dict) and "\\u0000" in json.dumps(value, default=str)
        ):
            raise InvalidPage(
                f"NUL character (U+0000) in {name}: PostgreSQL text cannot store it", business_id
            )


def _no_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# -- Notion property values ---------------------------------------------------------------
def _prop(page: NotionPageLike, name: str) -> Mapping[str, Any]:
    value: Mapping[str, Any] = page.properties.get(name) or {}
    return value


def text(page: NotionPageLike, name: str) -> str:
    """Plain text of a title / rich_text / phone_number / select / formula-string property,
    byte-exact: rich text objects joined as Notion returns them, nothing trimmed or
    normalized."""
    value = _prop(page, name)
    typ = value.get("type")
    if typ in ("title", "rich_text"):
        return "".join(
            i.get("plain_text") or (i.get("text") or {}).get("content", "")
            for i in value.get(typ) or []
        )
    if typ == "phone_number":
        return value.get("phone_number") or ""
    if typ == "select":
        return (value.get("select") or {}).get("name") or ""
    if typ == "formula":
        inner = value.get("formula") or {}
        return str(inner.get(inner.get("type")) or "")
    return ""


def number(page: NotionPageLike, name: str) -> float | None:
    value = _prop(page, name)
    if value.get("type") == "number":
        return value.get("number")
    if value.get("type") == "formula":
        inner = value.get("formula") or {}
        got = inner.get(inner.get("type"))
        return got if isinstance(got, int | float) and not isinstance(got, bool) else None
    return None


def date_start(page: NotionPageLike, name: str) -> str | None:
    value = _prop(page, name)
    return ((value.get("date") or {}).get("start")) if value.get("type") == "date" else None


def parse_date(value: str | None, label: str) -> date | None:
    """A Notion date start (``YYYY-MM-DD`` or an ISO datetime, taken in Asia/Seoul) as a date."""
    if value in (None, ""):
        return None
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (dt if dt.tzinfo else dt.replace(tzinfo=SEOUL)).astimezone(SEOUL).date()
    except ValueError:
        raise InvalidPage(f"unparseable date in {label}: {value!r}") from None


def parse_timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def relation_ids(page: NotionPageLike, name: str) -> list[str]:
    value = _prop(page, name)
    return [r["id"] for r in value.get("relation") or []] if value.get("type") == "relation" else []


def file_urls(page: NotionPageLike, name: str) -> list[str]:
    """The files of a property: external links as they are, Notion-hosted files (``type:
    file``, whose URL is signed and expires within an hour) as a stable identity
    ``notion-file:<page id>/<property id>/<position>/<file name>``, never the URL."""
    value = _prop(page, name)
    urls = []
    for n, f in enumerate(value.get("files") or [], start=1):
        if f.get("type") == "file":
            urls.append(notion_file_ref(page.id, str(value.get("id") or name), n, f.get("name")))
            continue
        inner = f.get(f.get("type")) or {}
        if inner.get("url"):
            urls.append(inner["url"])
    return urls


def notion_file_ref(page_id: str, property_id: str, position: int, file_name: Any) -> str:
    """The stable identity of a Notion-hosted file (what ``google_drive_urls`` keeps)."""
    return f"{NOTION_FILE_PREFIX}{page_id}/{property_id}/{position}/{file_name or ''}"


def parse_notion_file_ref(ref: str) -> tuple[str, str, int, str] | None:
    """(page id, property id, 1-based position, file name) of a ``notion-file:`` identity."""
    if not ref.startswith(NOTION_FILE_PREFIX):
        return None
    parts = ref[len(NOTION_FILE_PREFIX) :].split("/", 3)
    if len(parts) != 4 or not parts[2].isdigit():
        return None
    return parts[0], parts[1], int(parts[2]), parts[3]


def hosted_file_url(page: NotionPageLike, property_id: str, position: int) -> tuple[str, str]:
    """(URL, expiry_time) of the hosted file at ``position`` of a page's files property
    (found by property id); empty strings when it is not there any more."""
    for value in page.properties.values():
        if value.get("id") == property_id and value.get("type") == "files":
            files = value.get("files") or []
            if 1 <= position <= len(files) and files[position - 1].get("type") == "file":
                inner = files[position - 1].get("file") or {}
                return str(inner.get("url") or ""), str(inner.get("expiry_time") or "")
    return "", ""


# -- schema: properties by stable id ----------------------------------------------------------
def resolve_properties(
    required: Mapping[str, frozenset[str]],
    optional: Mapping[str, frozenset[str]],
    pinned: Mapping[str, PinnedProperty],
    current: Iterable[tuple[str, str, str]],
) -> tuple[dict[str, PinnedProperty], list[str]]:
    """Map the properties the backup reads onto a data source's current schema.

    A property pinned before is found by its id (a rename is followed); one never pinned is
    found by its canonical name and must have one of the allowed types.

    Args:
        required, optional: canonical name -> allowed types.
        pinned: what earlier runs pinned (canonical name -> property).
        current: (id, name, type) of every property the data source has now.

    Returns:
        The properties to read (canonical name -> pinned, with current names) and the
        changes that must stop the run (removed / retyped / missing required properties).
    """
    by_id = {pid: (pid, name, typ) for pid, name, typ in current}
    by_name = {name: (pid, name, typ) for pid, name, typ in by_id.values()}
    out: dict[str, PinnedProperty] = {}
    changes: list[str] = []
    for canonical, allowed in [*required.items(), *optional.items()]:
        must = canonical in required
        old = pinned.get(canonical)
        if old is not None:
            now = by_id.get(old.property_id)
            if now is None:
                if must:
                    changes.append(
                        f"property {canonical!r} (id {old.property_id!r}, last named"
                        f" {old.name!r}) was removed"
                    )
                continue
            if now[2] != old.type:
                if must:
                    changes.append(
                        f"property {canonical!r} (id {old.property_id!r}, named {now[1]!r})"
                        f" changed type from {old.type} to {now[2]}"
                    )
                continue
            out[canonical] = PinnedProperty(canonical, old.property_id, old.type, now[1])
            continue
        found = by_name.get(canonical)
        if found is None or found[2] not in allowed:
            if must:
                what = "was not found" if found is None else f"has type {found[2]}"
                changes.append(
                    f"property {canonical!r} {what} (expected one of {', '.join(sorted(allowed))})"
                )
            continue
        out[canonical] = PinnedProperty(canonical, found[0], found[2], found[1])
    return out, changes


def canonical_properties(
    properties: Mapping[str, Any], canonical_by_id: Mapping[str, str]
) -> dict[str, Any]:
    """A page's property values keyed by canonical name, found by property id (an empty map
    keeps the names as they are); properties the backup does not read are dropped."""
    if not canonical_by_id:
        return dict(properties)
    out: dict[str, Any] = {}
    for value in properties.values():
        canonical = canonical_by_id.get(str((value or {}).get("id")))
        if canonical is not None:
            out[canonical] = value
    return out


def truncated(value: Mapping[str, Any]) -> bool:
    """Whether a page object's property value may hold only the first 25 references: a
    relation with ``has_more``, 25 people, or rich text with 25 inline mentions."""
    typ = value.get("type")
    if typ == "relation":
        return bool(value.get("has_more"))
    if typ == "people":
        return len(value.get("people") or []) >= PAGE_REFERENCE_CAP
    if typ in ("title", "rich_text"):
        mentions = [i for i in value.get(typ) or [] if i.get("type") == "mention"]
        return len(mentions) >= PAGE_REFERENCE_CAP
    return False


def consultation_count(page: NotionPageLike) -> int | None:
    """상담수 as the page says it, or None when the page cannot be trusted with it: Notion
    computes the formula over at most 25 relations, so 25 or more is recounted (from the
    completed 상담일지 relation when the data source has it)."""
    relation = _prop(page, "상담일지")
    if relation.get("type") == "relation" and not relation.get("has_more"):
        return len(relation.get("relation") or [])
    count = number(page, "상담수")
    if count is None or not math.isfinite(count) or not 0 <= count < 2**31:
        return 0
    return None if count >= PAGE_REFERENCE_CAP else int(count)


def _embedding(page: NotionPageLike, customer_id: str) -> Any:
    """The face embedding (JSON text in 얼굴_임베딩), None when empty."""
    raw = text(page, "얼굴_임베딩")
    if not raw:
        return None
    try:
        # NaN / Infinity are not JSON (Python would accept them; JSONB refuses them)
        return json.loads(raw, parse_constant=_no_json_constant)
    except json.JSONDecodeError as exc:
        raise InvalidPage(
            f"invalid embedding JSON in 얼굴_임베딩: {exc.msg}", customer_id
        ) from None
    except ValueError as exc:
        raise InvalidPage(f"invalid embedding JSON in 얼굴_임베딩: {exc}", customer_id) from None


def _estimated_age(page: NotionPageLike, customer_id: str) -> float | None:
    """추정나이 within 0..150 (an INTEGER column), None when empty."""
    age = number(page, "추정나이")
    if age is not None and not (
        isinstance(age, int | float) and math.isfinite(age) and 0 <= age <= MAX_ESTIMATED_AGE
    ):
        raise InvalidPage(
            f"invalid estimated age (추정나이) {age!r} (expected 0..{MAX_ESTIMATED_AGE})",
            customer_id,
        )
    return age


# -- pages -> rows ------------------------------------------------------------------------
def parse_customer(page: NotionPageLike) -> CustomerRow:
    """A customer page as a row.

    Raises:
        InvalidPage: missing/invalid customer id or name, invalid gender, unparseable birth
            date, face embedding that is not JSON (NaN/Infinity included), estimated age outside
            0..150, or a NUL character in any text.
    """
    customer_id = text(page, "id")
    if not CUSTOMER_ID_RE.match(customer_id):
        raise InvalidPage(
            f"invalid customer id {customer_id!r} (expected 5 digits)", customer_id or None
        )
    name = text(page, "고객명")
    if not name.strip():
        raise InvalidPage("missing name (고객명)", customer_id)
    gender = text(page, "성별") or None
    if gender is not None and gender not in GENDERS:
        raise InvalidPage(f"invalid gender {gender!r} (expected 남 or 여)", customer_id)
    try:
        birth = parse_date(date_start(page, "생년월일"), "생년월일")
    except InvalidPage as exc:
        raise InvalidPage(exc.reason, customer_id) from None
    embedding = _embedding(page, customer_id)
    age = _estimated_age(page, customer_id)
    count = consultation_count(page)
    deleted = bool(_prop(page, "삭제됨").get("checkbox")) or page.in_trash
    row = CustomerRow(
        notion_page_id=page.id,
        customer_id=customer_id,
        name=name,
        phone=text(page, "전화번호") or None,
        gender=gender,
        birth_date=birth,
        estimated_age=int(age) if age is not None else None,
        address=text(page, "주소") or None,
        special_note=text(page, "특이사항") or None,
        face_embedding=embedding,
        google_drive_folder_id=text(page, "customerFolderId") or None,
        # past 25 relations the caller recounts (see ``consultation_count``)
        consultation_count=count if count is not None else PAGE_REFERENCE_CAP,
        is_deleted=deleted,
        notion_updated_at=parse_timestamp(page.last_edited_time),
    )
    _reject_nul(row, customer_id)
    return row


def parse_consultation(page: NotionPageLike) -> RecordRow:
    """A consultation page as a row (its customer is resolved against the backup later).

    Raises:
        InvalidPage: invalid consultation id, missing/unparseable 상담일자, missing symptoms,
            no customer relation, or a NUL character in any text.
    """
    consultation_id = text(page, "id")
    if not CONSULTATION_ID_RE.match(consultation_id):
        raise InvalidPage(
            f"invalid consultation id {consultation_id!r} (expected {{customer_id}}_NNN)",
            consultation_id or None,
        )
    try:
        day = parse_date(date_start(page, "상담일자"), "상담일자")
    except InvalidPage as exc:
        raise InvalidPage(exc.reason, consultation_id) from None
    if day is None:
        raise InvalidPage(
            "missing consultation date (상담일자): the page is in no date window", consultation_id
        )
    symptoms = text(page, "호소증상")
    if not symptoms.strip():
        raise InvalidPage("missing symptoms (호소증상)", consultation_id)
    customers = relation_ids(page, "고객")
    if len(customers) != 1:
        raise InvalidPage(
            f"broken relation: expected one customer (고객), found {len(customers)}",
            consultation_id,
        )
    urls = file_urls(page, "증상이미지")
    created = date_start(page, "생성일시")
    notion_created = parse_timestamp(page.created_time)
    if created:
        with contextlib.suppress(ValueError):
            notion_created = parse_timestamp(created) if len(created) > 10 else notion_created
    row = RecordRow(
        notion_page_id=page.id,
        consultation_id=consultation_id,
        customer_notion_id=customers[0],
        consultation_date=day,
        symptoms=symptoms,
        patient_condition=text(page, "환자상태") or None,
        tongue_analysis=text(page, "설진분석") or None,
        special_note=text(page, "특이사항") or None,
        prescription=text(page, "처방약") or None,
        result=text(page, "결과") or None,
        image_count=len(urls),
        google_drive_urls=urls,
        notion_created_at=notion_created,
        notion_updated_at=parse_timestamp(page.last_edited_time),
    )
    _reject_nul(row, consultation_id)
    return row


def consultation_matches_customer(consultation_id: str, customer_id: str) -> bool:
    m = CONSULTATION_ID_RE.match(consultation_id)
    return m is not None and m.group(1) == customer_id


# -- images -------------------------------------------------------------------------------
def drive_file_id(url: str) -> str | None:
    """The Drive file id in a share link (``/file/d/<id>/view``, ``open?id=<id>``, ``uc?id=``)."""
    for pattern in DRIVE_ID_RES:
        m = pattern.search(url or "")
        if m:
            return m.group(1)
    return None


def sniff_image(data: bytes) -> tuple[str, str] | None:
    """(MIME type, extension) from the bytes themselves, for JPEG, PNG and WebP only."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg", "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png", "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    return None


def storage_path(customer_id: str, consultation_id: str, index: int, ext: str) -> str:
    """``customers/{customer_id}/consultations/{consultation_id}/image_{n}.{ext}``."""
    return f"customers/{customer_id}/consultations/{consultation_id}/image_{index}.{ext}"


def image_unchanged(
    stored: Mapping[str, Any] | None,
    *,
    file_id: str,
    md5: str | None,
    modified_time: str | None,
) -> bool:
    """True when the backed-up copy came from this exact Drive version (md5, else modifiedTime).

    Args:
        stored: the ``consultation_image_objects`` row of the copy, if there is one.
        file_id, md5, modified_time: the Drive file as it is now.
    """
    if not stored or stored.get("drive_file_id") != file_id:
        return False
    if md5 and stored.get("drive_md5"):
        return bool(stored["drive_md5"] == md5)
    return bool(modified_time) and stored.get("drive_modified_time") == parse_timestamp(
        modified_time or ""
    )


# -- comparison, conflicts ------------------------------------------------------------------
def normalize(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        # byte-exact: whitespace is content (only an empty text equals "no value")
        return value if value != "" else None
    if isinstance(value, list | dict):
        return json.loads(json.dumps(value, sort_keys=True, default=str))
    return value


def differing_fields(
    a: Mapping[str, Any], b: Mapping[str, Any], fields: Iterable[str]
) -> list[str]:
    return [f for f in fields if normalize(a.get(f)) != normalize(b.get(f))]


def decide_conflict(
    strategy: str,
    *,
    locally_edited: bool,
    differs: bool,
    notion_updated_at: datetime,
    supabase_updated_at: datetime | None,
) -> ConflictDecision:
    """What to do with an incoming Notion version of a row.

    Returns ``apply`` (write the Notion version), ``keep`` (keep the Supabase version) or
    ``conflict`` (record both for manual resolution). Only rows edited in Supabase since
    their last sync can conflict; everything else follows Notion (the primary).
    """
    if strategy not in ("notion_wins", "latest_wins", "manual"):
        raise ValueError(f"unknown conflict strategy {strategy!r}")
    if not locally_edited or not differs or strategy == "notion_wins":
        return "apply"
    if strategy == "latest_wins":
        # Notion's time is rounded down to the minute: a Supabase edit in the same minute wins.
        if supabase_updated_at is not None and supabase_updated_at >= notion_updated_at:
            return "keep"
        return "apply"
    return "conflict"


def content_hash(page: NotionPageLike) -> str:
    """A short hash of a page's properties and trash state (edits in one minute differ here)."""
    body = json.dumps(
        {"p": dict(page.properties), "t": page.in_trash}, sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha1(body.encode()).hexdigest()[:12]


def watermark_start(watermark: str | None, overlap_minutes: int) -> str | None:
    """The ``on_or_after`` bound for an incremental read: watermark minus the overlap."""
    if not watermark:
        return None
    return (parse_timestamp(watermark) - timedelta(minutes=overlap_minutes)).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z"
    )


def date_window_filter(
    start: date, end_exclusive: date, date_property: str = "상담일자"
) -> dict[str, Any]:
    """Notion filter for consultations with 상담일자 in ``[start, end)`` (``date_property``: its
    name or, to survive renames, its property id)."""
    return {
        "and": [
            {"property": date_property, "date": {"on_or_after": start.isoformat()}},
            {"property": date_property, "date": {"before": end_exclusive.isoformat()}},
        ]
    }
