-- The Notion properties the backup reads, pinned by their stable property id (issue 10 §2):
-- a renamed property keeps syncing (found by id); a removed or retyped one, or a second data
-- source in the database, stops the run before any write. One row per database and the
-- seed's (canonical) property name; current_name is what the property is called in Notion now.
CREATE TABLE IF NOT EXISTS public.consultation_notion_properties (
  database_id TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('customers', 'consultations')),
  canonical_name TEXT NOT NULL,
  data_source_id TEXT NOT NULL,
  property_id TEXT NOT NULL,
  property_type TEXT NOT NULL,
  current_name TEXT NOT NULL,
  pinned_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
  seen_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
  PRIMARY KEY (database_id, canonical_name)
);
CREATE INDEX IF NOT EXISTS idx_consultation_notion_properties_kind
    ON public.consultation_notion_properties(kind);
SELECT platform.enable_standard_rls('public.consultation_notion_properties');
