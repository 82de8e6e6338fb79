-- Every version the backup observed (issue 10 §1), beside the seed's tables, which stay as the
-- seed defines them. One history table per entity: valid_from / valid_to (the backup's
-- observation time, the transaction's now()), the full row as JSON, Notion's last_edited_time
-- and the run that wrote it. A trigger writes them in the transaction of the write itself:
-- an UPDATE that changes nothing but bookkeeping (synced_at, updated_at) writes no version, a
-- changed row exactly one (several writes of a row in one transaction fold into one version);
-- a DELETE (only image objects dropped from their record; purges delete history first) closes
-- the current version.

CREATE TABLE IF NOT EXISTS public.consultation_customers_history (
  history_id BIGSERIAL PRIMARY KEY,
  entity_key TEXT NOT NULL,                         -- consultation_customers.id
  valid_from TIMESTAMP WITH TIME ZONE NOT NULL,
  valid_to TIMESTAMP WITH TIME ZONE,                -- NULL: the current version
  row_data JSONB NOT NULL,                          -- the full row
  run_id TEXT,                                      -- Dagster run id (or the writing program)
  txid BIGINT NOT NULL DEFAULT txid_current(),
  notion_page_id TEXT GENERATED ALWAYS AS (row_data->>'notion_page_id') STORED,
  business_id TEXT GENERATED ALWAYS AS (row_data->>'customer_id') STORED,
  parent_key TEXT GENERATED ALWAYS AS (NULL::text) STORED,
  notion_last_edited_time TIMESTAMP WITH TIME ZONE,   -- Notion's last_edited_time
  CHECK (valid_to IS NULL OR valid_to >= valid_from)
);

CREATE TABLE IF NOT EXISTS public.consultation_records_history (
  history_id BIGSERIAL PRIMARY KEY,
  entity_key TEXT NOT NULL,                         -- consultation_records.id
  valid_from TIMESTAMP WITH TIME ZONE NOT NULL,
  valid_to TIMESTAMP WITH TIME ZONE,
  row_data JSONB NOT NULL,
  run_id TEXT,
  txid BIGINT NOT NULL DEFAULT txid_current(),
  notion_page_id TEXT GENERATED ALWAYS AS (row_data->>'notion_page_id') STORED,
  business_id TEXT GENERATED ALWAYS AS (row_data->>'consultation_id') STORED,
  parent_key TEXT GENERATED ALWAYS AS (row_data->>'customer_id') STORED,  -- customer row id
  notion_last_edited_time TIMESTAMP WITH TIME ZONE,   -- Notion's last_edited_time
  CHECK (valid_to IS NULL OR valid_to >= valid_from)
);

-- Images: the stored object of a version lives at its storage_path while it is current and
-- under versions/ once a newer one replaced it (version_path, set when it was moved there).
CREATE TABLE IF NOT EXISTS public.consultation_image_objects_history (
  history_id BIGSERIAL PRIMARY KEY,
  entity_key TEXT NOT NULL,                         -- '<consultation_id>#<image_index>'
  valid_from TIMESTAMP WITH TIME ZONE NOT NULL,
  valid_to TIMESTAMP WITH TIME ZONE,
  row_data JSONB NOT NULL,
  run_id TEXT,
  txid BIGINT NOT NULL DEFAULT txid_current(),
  version_path TEXT,
  notion_page_id TEXT GENERATED ALWAYS AS (NULL::text) STORED,
  business_id TEXT GENERATED ALWAYS AS (row_data->>'consultation_id') STORED,
  parent_key TEXT GENERATED ALWAYS AS (row_data->>'consultation_id') STORED,
  notion_last_edited_time TIMESTAMP WITH TIME ZONE,   -- Drive's modifiedTime here
  CHECK (valid_to IS NULL OR valid_to >= valid_from)
);

CREATE UNIQUE INDEX IF NOT EXISTS uq_consultation_customers_history_current
    ON public.consultation_customers_history(entity_key) WHERE valid_to IS NULL;
CREATE INDEX IF NOT EXISTS idx_consultation_customers_history_key
    ON public.consultation_customers_history(entity_key, valid_from);
CREATE INDEX IF NOT EXISTS idx_consultation_customers_history_business
    ON public.consultation_customers_history(business_id);
CREATE INDEX IF NOT EXISTS idx_consultation_customers_history_page
    ON public.consultation_customers_history(notion_page_id);
CREATE INDEX IF NOT EXISTS idx_consultation_customers_history_valid_to
    ON public.consultation_customers_history(valid_to) WHERE valid_to IS NOT NULL;

CREATE UNIQUE INDEX IF NOT EXISTS uq_consultation_records_history_current
    ON public.consultation_records_history(entity_key) WHERE valid_to IS NULL;
CREATE INDEX IF NOT EXISTS idx_consultation_records_history_key
    ON public.consultation_records_history(entity_key, valid_from);
CREATE INDEX IF NOT EXISTS idx_consultation_records_history_business
    ON public.consultation_records_history(business_id);
CREATE INDEX IF NOT EXISTS idx_consultation_records_history_parent
    ON public.consultation_records_history(parent_key);
CREATE INDEX IF NOT EXISTS idx_consultation_records_history_page
    ON public.consultation_records_history(notion_page_id);
CREATE INDEX IF NOT EXISTS idx_consultation_records_history_valid_to
    ON public.consultation_records_history(valid_to) WHERE valid_to IS NOT NULL;

CREATE UNIQUE INDEX IF NOT EXISTS uq_consultation_image_objects_history_current
    ON public.consultation_image_objects_history(entity_key) WHERE valid_to IS NULL;
CREATE INDEX IF NOT EXISTS idx_consultation_image_objects_history_key
    ON public.consultation_image_objects_history(entity_key, valid_from);
CREATE INDEX IF NOT EXISTS idx_consultation_image_objects_history_business
    ON public.consultation_image_objects_history(business_id);
CREATE INDEX IF NOT EXISTS idx_consultation_image_objects_history_valid_to
    ON public.consultation_image_objects_history(valid_to) WHERE valid_to IS NOT NULL;

-- The trigger: TG_ARGV[0] is the history table, the other arguments the key columns.
-- The run is read from the transaction-local setting consultation_backup.run_id (set by the
-- sync before it writes); without it, the writing program's application_name is recorded.
CREATE OR REPLACE FUNCTION public.consultation_keep_version()
RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  hist text := TG_ARGV[0];
  ignored text[] := ARRAY['synced_at', 'updated_at'];
  new_data jsonb := CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE to_jsonb(NEW) END;
  key text;
  run text := coalesce(nullif(current_setting('consultation_backup.run_id', true), ''),
                       'app:' || current_setting('application_name', true));
  previous_from timestamptz;
  edited timestamptz;
  folded integer;
  i integer;
BEGIN
  IF TG_OP = 'DELETE' THEN
    new_data := to_jsonb(OLD);
  ELSIF TG_OP = 'UPDATE' AND (to_jsonb(OLD) - ignored) = (new_data - ignored) THEN
    RETURN NULL;
  END IF;
  key := new_data->>TG_ARGV[1];
  FOR i IN 2 .. TG_NARGS - 1 LOOP
    key := key || '#' || (new_data->>TG_ARGV[i]);
  END LOOP;
  IF TG_OP = 'DELETE' THEN
    -- the row is gone (an image dropped from its record): its last version ends now
    EXECUTE format('UPDATE public.%I SET valid_to = greatest(now(), valid_from)'
                   ' WHERE entity_key = $1 AND valid_to IS NULL', hist) USING key;
    RETURN NULL;
  END IF;
  -- a second write of the row in this transaction replaces this transaction's version
  edited := coalesce(new_data->>'notion_updated_at', new_data->>'drive_modified_time')::timestamptz;
  EXECUTE format('UPDATE public.%I SET row_data = $1, run_id = $2, notion_last_edited_time = $4'
                 ' WHERE entity_key = $3 AND valid_to IS NULL AND txid = txid_current()', hist)
    USING new_data, run, key, edited;
  GET DIAGNOSTICS folded = ROW_COUNT;
  IF folded > 0 THEN
    RETURN NULL;
  END IF;
  EXECUTE format('UPDATE public.%I SET valid_to = greatest(now(), valid_from)'
                 ' WHERE entity_key = $1 AND valid_to IS NULL RETURNING valid_from', hist)
    INTO previous_from USING key;
  EXECUTE format('INSERT INTO public.%I'
                 ' (entity_key, valid_from, row_data, run_id, notion_last_edited_time)'
                 ' VALUES ($1, greatest(now(), $2), $3, $4, $5)', hist)
    USING key, coalesce(previous_from, now()), new_data, run, edited;
  RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS keep_version ON public.consultation_customers;
CREATE TRIGGER keep_version AFTER INSERT OR UPDATE OR DELETE ON public.consultation_customers
    FOR EACH ROW EXECUTE FUNCTION public.consultation_keep_version('consultation_customers_history', 'id');
DROP TRIGGER IF EXISTS keep_version ON public.consultation_records;
CREATE TRIGGER keep_version AFTER INSERT OR UPDATE OR DELETE ON public.consultation_records
    FOR EACH ROW EXECUTE FUNCTION public.consultation_keep_version('consultation_records_history', 'id');
DROP TRIGGER IF EXISTS keep_version ON public.consultation_image_objects;
CREATE TRIGGER keep_version AFTER INSERT OR UPDATE OR DELETE ON public.consultation_image_objects
    FOR EACH ROW EXECUTE FUNCTION public.consultation_keep_version(
      'consultation_image_objects_history', 'consultation_id', 'image_index');

-- Existing rows get their first version (observed when they were last synced).
INSERT INTO public.consultation_customers_history
  (entity_key, valid_from, row_data, run_id, notion_last_edited_time)
SELECT c.id::text, coalesce(c.synced_at, c.created_at, now()), to_jsonb(c), 'migration:0003',
       c.notion_updated_at
  FROM public.consultation_customers c
 WHERE NOT EXISTS (SELECT 1 FROM public.consultation_customers_history h
                    WHERE h.entity_key = c.id::text);
INSERT INTO public.consultation_records_history
  (entity_key, valid_from, row_data, run_id, notion_last_edited_time)
SELECT r.id::text, coalesce(r.synced_at, r.created_at, now()), to_jsonb(r), 'migration:0003',
       r.notion_updated_at
  FROM public.consultation_records r
 WHERE NOT EXISTS (SELECT 1 FROM public.consultation_records_history h
                    WHERE h.entity_key = r.id::text);
INSERT INTO public.consultation_image_objects_history
  (entity_key, valid_from, row_data, run_id, notion_last_edited_time)
SELECT i.consultation_id || '#' || i.image_index, coalesce(i.uploaded_at, now()), to_jsonb(i),
       'migration:0003', i.drive_modified_time
  FROM public.consultation_image_objects i
 WHERE NOT EXISTS (SELECT 1 FROM public.consultation_image_objects_history h
                    WHERE h.entity_key = i.consultation_id || '#' || i.image_index);

-- Explicit purges (retention, erasure) are logged here, never with the personal data itself.
CREATE TABLE IF NOT EXISTS public.consultation_purge_log (
  id BIGSERIAL PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('retention', 'erasure')),
  subject TEXT,                       -- retention: the cutoff; erasure: the backup row id
  requested_by TEXT,
  reason TEXT,
  history_rows_removed INTEGER NOT NULL DEFAULT 0,
  rows_removed INTEGER NOT NULL DEFAULT 0,
  objects_removed INTEGER NOT NULL DEFAULT 0,
  details JSONB,
  purged_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

-- Personal data (names, phones, face embeddings, both sides of conflicts, bad pages): only
-- service_role, as seed 000 reserves the sync logs. authenticated and anon see nothing.
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['consultation_sync_logs', 'consultation_sync_conflicts',
                           'consultation_customers_history', 'consultation_records_history',
                           'consultation_image_objects_history', 'consultation_purge_log']
  LOOP
    EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('DROP POLICY IF EXISTS authenticated_read ON public.%I', t);
    EXECUTE format('DROP POLICY IF EXISTS service_role_all ON public.%I', t);
    EXECUTE format('CREATE POLICY service_role_all ON public.%I FOR ALL TO service_role'
                   ' USING (true) WITH CHECK (true)', t);
    EXECUTE format('REVOKE ALL ON public.%I FROM anon, authenticated', t);
    EXECUTE format('GRANT ALL ON public.%I TO service_role', t);
  END LOOP;
  FOREACH t IN ARRAY ARRAY['consultation_customers_history', 'consultation_records_history',
                           'consultation_image_objects_history', 'consultation_purge_log']
  LOOP
    EXECUTE format('GRANT USAGE ON SEQUENCE public.%I TO service_role', t || '_' ||
                   CASE WHEN t = 'consultation_purge_log' THEN 'id' ELSE 'history_id' END || '_seq');
  END LOOP;
END $$;

-- The platform-wide quarantine keeps its standard policies for other domains; this domain's
-- entries (whole Notion pages with phones and embeddings) are hidden from authenticated.
DROP POLICY IF EXISTS authenticated_read ON public.data_quarantine;
CREATE POLICY authenticated_read ON public.data_quarantine FOR SELECT TO authenticated
    USING (domain <> 'consultation_backup');
