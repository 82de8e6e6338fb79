-- Seed 003 §3.2 step 2, on the external database: the publication the CDC stream (pgoutput,
-- gfx_sync/cdc) and a Debezium connector (publication.name) read. Creating it costs nothing
-- until a slot uses it; the slot itself (which retains WAL) is created by
-- `python -m gfx_sync.cdc init`, not by a migration. gfx_sync.cdc.slot.ensure_publication adds
-- any table the publication lacks, so this and the CDC code agree.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'gfx_publication') THEN
    CREATE PUBLICATION gfx_publication FOR TABLE
        public.gfx_sessions,
        public.gfx_hands,
        public.gfx_hand_players,
        public.gfx_players;
  END IF;
END $$;
