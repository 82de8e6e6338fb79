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
