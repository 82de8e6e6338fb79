"""The deterministic demo workspace (customers, consultations) shared with the Drive stand-in.

The same seed and scale give the same page ids, properties and Drive file ids, so the Notion
and Google Drive stand-ins agree on which images exist. A few items are deliberately broken
(one of each kind the backup must quarantine).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from resources.environment import NOTION_CONSULTATIONS_DB_LOCAL, NOTION_CUSTOMERS_DB_LOCAL
from standins.notion.shapes import prop_id, rich_text
from standins.notion.state import (
    CONSULTATION_SCHEMA,
    CONSULTATIONS_DS_LOCAL,
    CUSTOMER_DUAL_RELATIONS,
    CUSTOMER_SCHEMA,
    CUSTOMERS_DS_LOCAL,
    NotionWorkspace,
)
from tooling.demo_data import SEOUL, DemoData, scale_factor

# customer number -> the flaw it carries (with bad_items)
BAD_CUSTOMERS = {3: "missing_name", 13: "invalid_gender", 23: "bad_embedding", 33: "bad_birth_date"}
# consultation number (over the whole dataset) -> the flaw it carries (with bad_items)
BAD_CONSULTATIONS = {
    5: "missing_symptoms",
    15: "broken_relation",
    25: "missing_image",
    35: "not_image",
    45: "too_large",
}
IMAGE_EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}


@dataclass(frozen=True)
class DriveFileSpec:
    id: str
    name: str
    parent: str
    kind: str  # jpeg | png | webp | not_image | too_large
    modified: datetime
    seed: int


@dataclass(frozen=True)
class SeedPage:
    """A page to insert: its id, properties in read shape and creation time."""

    id: str
    properties: dict[str, Any]
    created: datetime


@dataclass(frozen=True)
class Dataset:
    customers: list[SeedPage]
    consultations: list[SeedPage]
    folders: dict[str, str]  # folder id -> name (customer id)
    files: list[DriveFileSpec]
    missing_file_ids: list[str]


def drive_view_url(file_id: str) -> str:
    return f"https://drive.google.com/file/d/{file_id}/view?usp=sharing"


def _prop(name: str, typ: str, value: Any) -> dict[str, Any]:
    return {"id": prop_id(name), "type": typ, typ: value}


def _date_value(start: str) -> dict[str, Any]:
    return {"start": start, "end": None, "time_zone": None}


@dataclass
class _Builder:
    """Draws the dataset from one random stream; the order of draws is part of the contract."""

    data: DemoData
    today: date
    now: datetime
    bad_items: bool
    customers: list[SeedPage] = field(default_factory=list)
    consultations: list[SeedPage] = field(default_factory=list)
    folders: dict[str, str] = field(default_factory=dict)
    files: list[DriveFileSpec] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    consult_no: int = 0

    @property
    def rng(self) -> Any:
        return self.data.rng

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def customer(self, i: int) -> None:
        rng, data = self.rng, self.data
        cid = f"{i:05d}"
        page_id = self.uid()
        folder_id = f"fld_{cid}_{rng.getrandbits(32):08x}"
        self.folders[folder_id] = cid
        birth = data.birth_date()
        created = datetime.combine(
            self.today - timedelta(days=rng.randint(31, 400)), datetime.min.time(), SEOUL
        ) + timedelta(minutes=rng.randint(0, 1439))
        embedding = json.dumps([round(rng.uniform(-1, 1), 4) for _ in range(8)])
        name = data.korean_name()
        gender = data.gender()
        flaw = BAD_CUSTOMERS.get(i) if self.bad_items else None
        props = self._customer_properties(cid, name, gender, birth, embedding, folder_id, flaw)
        self.customers.append(SeedPage(page_id, props, created.astimezone(UTC)))
        for k in range(1, rng.randint(0, 9) + 1):
            self.consultation(f"{cid}_{k:03d}", page_id, folder_id)

    def _customer_properties(
        self,
        cid: str,
        name: str,
        gender: str,
        birth: date,
        embedding: str,
        folder_id: str,
        flaw: str | None,
    ) -> dict[str, Any]:
        rng, data = self.rng, self.data
        shown_gender = "기타" if flaw == "invalid_gender" else gender
        birth_text = "1990-13-45" if flaw == "bad_birth_date" else birth.isoformat()
        age = (self.today - birth).days // 365
        # dict entries draw from the random stream in order: keep the order of the keys
        return {
            "id": _prop("id", "title", rich_text(cid)),
            "고객명": _prop(
                "고객명", "rich_text", rich_text("" if flaw == "missing_name" else name)
            ),
            "전화번호": _prop("전화번호", "phone_number", data.mobile_phone()),
            "성별": _prop("성별", "select", {"id": "g", "name": shown_gender, "color": "default"}),
            "생년월일": _prop("생년월일", "date", _date_value(birth_text)),
            "추정나이": _prop("추정나이", "number", age + rng.choice([-2, -1, 0, 1, 2])),
            "주소": _prop("주소", "rich_text", rich_text(data.address())),
            "특이사항": _prop(
                "특이사항",
                "rich_text",
                rich_text(rng.choice(["", "", "고혈압약 복용", "알레르기 있음", "임신 중"])),
            ),
            "얼굴_임베딩": _prop(
                "얼굴_임베딩",
                "rich_text",
                rich_text("{not json" if flaw == "bad_embedding" else embedding),
            ),
            "customerFolderId": _prop("customerFolderId", "rich_text", rich_text(folder_id)),
            "삭제됨": _prop("삭제됨", "checkbox", False),
        }

    def consultation(self, consult_id: str, customer_page_id: str, folder_id: str) -> None:
        rng = self.rng
        self.consult_no += 1
        day = self.today - timedelta(days=rng.randint(0, 29))
        at = datetime.combine(day, datetime.min.time(), SEOUL) + timedelta(
            minutes=rng.randint(9 * 60, 19 * 60)
        )
        # a page cannot have been created in the future (today's consultations so far)
        at = min(at, self.now - timedelta(minutes=30 + rng.randint(0, 120)))
        flaw = BAD_CONSULTATIONS.get(self.consult_no) if self.bad_items else None
        images = self._images(consult_id, folder_id, at, flaw)
        relation = [{"id": self.uid() if flaw == "broken_relation" else customer_page_id}]
        props = self._consultation_properties(consult_id, day, at, relation, images, flaw)
        self.consultations.append(SeedPage(self.uid(), props, at.astimezone(UTC)))

    def _images(
        self, consult_id: str, folder_id: str, at: datetime, flaw: str | None
    ) -> list[dict[str, Any]]:
        rng = self.rng
        images = []
        n_images = 0 if rng.random() < 0.65 else rng.choice([1, 1, 1, 2])
        if flaw in ("missing_image", "not_image", "too_large"):
            n_images = max(1, n_images)
        for m in range(1, n_images + 1):
            fid = f"drv_{rng.getrandbits(64):016x}"
            kind = rng.choice(["jpeg", "jpeg", "png", "webp"])
            if m == 1 and flaw in ("not_image", "too_large"):
                kind = flaw
            if m == 1 and flaw == "missing_image":
                self.missing.append(fid)
            else:
                ext = IMAGE_EXTENSIONS.get(kind, "jpg")
                modified = at.astimezone(UTC) + timedelta(minutes=5)
                name = f"{consult_id}_{m}.{ext}"
                self.files.append(
                    DriveFileSpec(fid, name, folder_id, kind, modified, rng.getrandbits(31))
                )
            images.append(
                {
                    "name": f"{consult_id}_{m}.jpg",
                    "type": "external",
                    "external": {"url": drive_view_url(fid)},
                }
            )
        return images

    def _consultation_properties(
        self,
        consult_id: str,
        day: date,
        at: datetime,
        relation: list[dict[str, str]],
        images: list[dict[str, Any]],
        flaw: str | None,
    ) -> dict[str, Any]:
        rng, data = self.rng, self.data
        symptoms = "" if flaw == "missing_symptoms" else ", ".join(data.symptoms())
        return {
            "id": _prop("id", "title", rich_text(consult_id)),
            "상담일자": _prop("상담일자", "date", _date_value(day.isoformat())),
            "고객": {
                "id": prop_id("고객"),
                "type": "relation",
                "relation": relation,
                "has_more": False,
            },
            "호소증상": _prop("호소증상", "rich_text", rich_text(symptoms)),
            "환자상태": _prop(
                "환자상태",
                "rich_text",
                rich_text(rng.choice(["양호", "피로 누적", "수면 부족", "스트레스"])),
            ),
            "설진분석": _prop(
                "설진분석",
                "rich_text",
                rich_text(rng.choice(["설태 백색", "설질 담홍", "치흔 있음", ""])),
            ),
            "특이사항": _prop("특이사항", "rich_text", rich_text("")),
            "증상이미지": _prop("증상이미지", "files", images),
            "처방약": _prop(
                "처방약",
                "rich_text",
                rich_text(rng.choice(["쌍화탕", "갈근탕", "소화제", "비타민B", "보중익기탕"])),
            ),
            "결과": _prop(
                "결과",
                "rich_text",
                rich_text(rng.choice(["호전", "경과 관찰", "재방문 예정", ""])),
            ),
            "생성일시": _prop("생성일시", "date", _date_value(at.isoformat())),
        }


def consultation_dataset(
    seed: int, scale: str | int, today: date | None = None, bad_items: bool = True
) -> Dataset:
    """Customers (scale rows), about five consultations each spread over the last 30 days
    (Asia/Seoul), about 0.4 images per consultation. With ``bad_items`` a handful of pages and
    files are deliberately broken (one of each kind the backup must quarantine)."""
    data = DemoData(seed, scale).child("consultation_backup")
    now = datetime.now(SEOUL)
    builder = _Builder(data, today or now.date(), now, bad_items)
    for i in range(1, scale_factor(scale) + 1):
        builder.customer(i)
    return Dataset(
        builder.customers,
        builder.consultations,
        builder.folders,
        builder.files,
        builder.missing,
    )


def seed_workspace(
    ws: NotionWorkspace, seed: int, scale: str | int, bad_items: bool = True
) -> Dataset:
    """Create the customers and consultations databases in ``ws`` and fill them."""
    customers_ds = ws.add_database(
        NOTION_CUSTOMERS_DB_LOCAL,
        CUSTOMERS_DS_LOCAL,
        "고객",
        CUSTOMER_SCHEMA,
        dual_relations=CUSTOMER_DUAL_RELATIONS,
    )
    consult_ds = ws.add_database(
        NOTION_CONSULTATIONS_DB_LOCAL, CONSULTATIONS_DS_LOCAL, "상담일지", CONSULTATION_SCHEMA
    )
    dataset = consultation_dataset(seed, scale, bad_items=bad_items)
    for page in dataset.customers:
        ws.insert_page(customers_ds, page.properties, page.created, page.id)
    for page in dataset.consultations:
        ws.insert_page(consult_ds, page.properties, page.created, page.id)
    return dataset
