-- gfx_sync CDC (issue 11 §3): positions that can be trusted.
-- confirmed_lsn: the position up to which the target holds every published change, including
-- idle advances past WAL that carried none of ours. It is written BEFORE the slot is advanced, so
-- a slot whose confirmed_flush_lsn is past greatest(last_commit_lsn, confirmed_lsn) means the
-- target lost changes (a restored Supabase, a lost state row): the stream refuses to start.
ALTER TABLE platform.gfx_cdc_state ADD COLUMN IF NOT EXISTS confirmed_lsn pg_lsn;

-- Per-table resnapshot fence: the table was re-copied from a snapshot that sees every source
-- transaction ending at or before snapshot_lsn, so the stream skips that table's changes up to it.
CREATE TABLE IF NOT EXISTS platform.gfx_cdc_table_fence (
    slot_name     text NOT NULL,
    table_name    text NOT NULL,                    -- schema.table
    snapshot_lsn  pg_lsn NOT NULL,
    rows_copied   bigint NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (slot_name, table_name)
);
