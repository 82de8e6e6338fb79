"""Names of this domain: group, asset keys, tables, bucket, Notion property names."""

import dagster as dg

DOMAIN = "consultation_backup"
GROUP = "consultation_backup"
OWNERS = ["team:pharmacy-data"]
TIMEZONE = "Asia/Seoul"
PARTITIONS_START = "2025-01-01"

CUSTOMERS_TABLE = "consultation_customers"
RECORDS_TABLE = "consultation_records"
SYNC_LOGS_TABLE = "consultation_sync_logs"
CONFLICTS_TABLE = "consultation_sync_conflicts"
IMAGE_OBJECTS_TABLE = "consultation_image_objects"

BUCKET = "consultation-images"
BUCKET_FILE_SIZE_LIMIT = 10 * 1024 * 1024
BUCKET_MIME_TYPES = ["image/jpeg", "image/png", "image/webp"]

NOTION_CUSTOMERS_KEY = dg.AssetKey(["notion", "customers"])
NOTION_CONSULTATIONS_KEY = dg.AssetKey(["notion", "consultations"])
DRIVE_IMAGES_KEY = dg.AssetKey(["googledrive", "consultation_images"])
CUSTOMERS_KEY = dg.AssetKey(["supabase", "public", CUSTOMERS_TABLE])
RECORDS_KEY = dg.AssetKey(["supabase", "public", RECORDS_TABLE])
IMAGES_KEY = dg.AssetKey(["supabase", "storage", BUCKET])

NOTION_POOL = "notion"

# Quarantine sources (public.data_quarantine.source)
SOURCE_CUSTOMERS = "notion/customers"
SOURCE_CONSULTATIONS = "notion/consultations"
SOURCE_IMAGES = "googledrive/consultation_images"

# Watermark of the incremental customer sync, in platform.sync_cursors beside the data.
CUSTOMERS_CURSOR = "customers_last_edited_time"
# Minute rounding of last_edited_time: re-read this much before the watermark.
OVERLAP_MINUTES = 2

# Notion properties the backup reads, by the seed's (canonical) name, with the types each may
# have when it is first pinned; afterwards they are followed by their stable property id.
TEXT_TYPES = frozenset({"title", "rich_text", "phone_number", "select", "formula"})
CUSTOMER_PROPERTIES: dict[str, frozenset[str]] = {
    "id": frozenset({"title", "rich_text"}),
    "고객명": TEXT_TYPES,
    "전화번호": TEXT_TYPES,
    "성별": TEXT_TYPES,
    "생년월일": frozenset({"date"}),
    "추정나이": frozenset({"number", "formula"}),
    "주소": TEXT_TYPES,
    "특이사항": TEXT_TYPES,
    "얼굴_임베딩": TEXT_TYPES,
    "customerFolderId": TEXT_TYPES,
    "상담수": frozenset({"formula", "number", "rollup"}),
    "삭제됨": frozenset({"checkbox"}),
}
# read when present: the synced side of the consultations' 고객 relation (an exact count)
CUSTOMER_OPTIONAL_PROPERTIES: dict[str, frozenset[str]] = {"상담일지": frozenset({"relation"})}
CONSULTATION_PROPERTIES: dict[str, frozenset[str]] = {
    "id": frozenset({"title", "rich_text"}),
    "상담일자": frozenset({"date"}),
    "고객": frozenset({"relation"}),
    "호소증상": TEXT_TYPES,
    "환자상태": TEXT_TYPES,
    "설진분석": TEXT_TYPES,
    "특이사항": TEXT_TYPES,
    "증상이미지": frozenset({"files"}),
    "처방약": TEXT_TYPES,
    "결과": TEXT_TYPES,
    "생성일시": frozenset({"date", "created_time"}),
}
CONSULTATION_OPTIONAL_PROPERTIES: dict[str, frozenset[str]] = {}
NOTIFY_SCHEMA_CHANGED = "notion_schema_changed"
