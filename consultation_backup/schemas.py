"""Column schemas of the backup tables, as the asset metadata shows them."""

import dagster as dg


def _schema(*cols: tuple[str, str]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(n, t) for n, t in cols])


CUSTOMER_SCHEMA = _schema(
    ("id", "uuid"),
    ("notion_page_id", "text"),
    ("customer_id", "text"),
    ("name", "text"),
    ("phone", "text"),
    ("gender", "text"),
    ("birth_date", "date"),
    ("estimated_age", "integer"),
    ("address", "text"),
    ("special_note", "text"),
    ("face_embedding", "jsonb"),
    ("google_drive_folder_id", "text"),
    ("consultation_count", "integer"),
    ("is_deleted", "boolean"),
    ("synced_at", "timestamptz"),
    ("sync_status", "text"),
    ("notion_updated_at", "timestamptz"),
)
RECORD_SCHEMA = _schema(
    ("id", "uuid"),
    ("notion_page_id", "text"),
    ("consultation_id", "text"),
    ("customer_id", "uuid"),
    ("customer_notion_id", "text"),
    ("consultation_date", "date"),
    ("symptoms", "text"),
    ("patient_condition", "text"),
    ("tongue_analysis", "text"),
    ("special_note", "text"),
    ("prescription", "text"),
    ("result", "text"),
    ("image_count", "integer"),
    ("google_drive_urls", "jsonb"),
    ("supabase_image_urls", "jsonb"),
    ("is_deleted", "boolean"),
    ("notion_updated_at", "timestamptz"),
)
