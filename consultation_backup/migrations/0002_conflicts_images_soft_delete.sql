-- What the seed implies but does not spell out.
--
-- 1. Conflicts for manual resolution (seed 000 §2.2 'manual' strategy): both versions are kept
--    here until someone resolves them with `python -m consultation_backup.cli conflicts`.
CREATE TABLE IF NOT EXISTS public.consultation_sync_conflicts (
  id BIGSERIAL PRIMARY KEY,
  entity TEXT NOT NULL CHECK (entity IN ('customer', 'consultation')),
  notion_page_id TEXT NOT NULL,
  business_id TEXT,
  strategy TEXT NOT NULL CHECK (strategy IN ('notion_wins', 'latest_wins', 'manual')),
  notion_version JSONB NOT NULL,
  supabase_version JSONB NOT NULL,
  differing_fields TEXT[] NOT NULL DEFAULT '{}',
  notion_updated_at TIMESTAMP WITH TIME ZONE,
  supabase_updated_at TIMESTAMP WITH TIME ZONE,
  status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
  resolution TEXT CHECK (resolution IN ('notion', 'supabase')),
  resolved_by TEXT,
  resolved_at TIMESTAMP WITH TIME ZONE,
  run_id TEXT,
  detected_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);
-- at most one open conflict per page: a newer detection replaces the Notion side of it
CREATE UNIQUE INDEX IF NOT EXISTS uq_consultation_sync_conflicts_open
    ON public.consultation_sync_conflicts(entity, notion_page_id) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS idx_consultation_sync_conflicts_status ON public.consultation_sync_conflicts(status);
SELECT platform.enable_standard_rls('public.consultation_sync_conflicts');

-- 2. One row per backed-up image: the Drive version it was copied from (md5Checksum,
--    modifiedTime), so an unchanged image is never downloaded again.
CREATE TABLE IF NOT EXISTS public.consultation_image_objects (
  consultation_id TEXT NOT NULL,
  image_index INTEGER NOT NULL CHECK (image_index >= 1),
  drive_file_id TEXT NOT NULL,
  drive_md5 TEXT,
  drive_modified_time TIMESTAMP WITH TIME ZONE,
  storage_path TEXT NOT NULL,
  content_type TEXT NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png', 'image/webp')),
  size_bytes BIGINT NOT NULL CHECK (size_bytes >= 0),
  uploaded_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  PRIMARY KEY (consultation_id, image_index)
);
CREATE INDEX IF NOT EXISTS idx_consultation_image_objects_drive_file_id ON public.consultation_image_objects(drive_file_id);
DROP TRIGGER IF EXISTS update_consultation_image_objects_updated_at ON public.consultation_image_objects;
CREATE TRIGGER update_consultation_image_objects_updated_at
    BEFORE UPDATE ON public.consultation_image_objects
    FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();
SELECT platform.enable_standard_rls('public.consultation_image_objects');

-- 3. Consultations trashed or deleted in Notion are soft-deleted like customers (the issue:
--    "never a hard delete"); the seed gives only customers an is_deleted column.
ALTER TABLE public.consultation_records ADD COLUMN IF NOT EXISTS is_deleted BOOLEAN DEFAULT FALSE;

-- Partition windows read records by date and skip deleted ones.
CREATE INDEX IF NOT EXISTS idx_consultation_records_date_live
    ON public.consultation_records(consultation_date) WHERE NOT is_deleted;
