-- Seed 003 §7.2: restore_gfx_from_external() — External -> Supabase restore of GFX data in SQL,
-- reading the source through postgres_fdw (the seed's `external_db.<table>`).
--
-- The foreign server needs the source's address and credentials, which only the environment
-- knows (GFX_SOURCE_DB_URL), so it is configured once by `python -m gfx_sync.cli fdw-setup`
-- (server external_db, user mapping, foreign tables in schema external_db); `make demo` does it.
-- Until then the function stops with a message saying exactly that.
--
-- Differences from the seed's sketch, each for safety:
--   * the safety copy is a NEW table every time (platform._backup_<table>_<UTC timestamp>):
--     the seed's `CREATE TABLE IF NOT EXISTS _backup_…` would keep the first backup forever and
--     silently skip every later one;
--   * DELETE instead of TRUNCATE … CASCADE: readers keep seeing the old rows until commit, and
--     nothing else is cascaded away; the whole call is one transaction, so a failure (a source
--     row breaking a target constraint, the source unreachable) leaves the tables as they were;
--   * the same per-table advisory lock as the Python sync, and `gfx_sync.applying = 'on'` so
--     the restore is not logged as a local edit;
--   * logged in activity_log (as in the seed) and sync_log (operation 'restore');
--   * it returns what it did as jsonb (per table: rows before, rows restored, safety copy).
-- Only External-authoritative tables can be restored this way; the Python restore
-- (`python -m gfx_sync.cli restore`) also covers the other direction, dry runs and quarantine.

CREATE OR REPLACE FUNCTION public.restore_gfx_from_external(
    p_tables text[] DEFAULT ARRAY['gfx_sessions', 'gfx_hands', 'gfx_hand_players', 'gfx_players'])
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    t        text;
    v_cols   text;
    v_backup text;
    v_before bigint;
    v_after  bigint;
    v_method text;
    v_stamp  text := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS');
    v_out    jsonb := '{}'::jsonb;
BEGIN
    FOREACH t IN ARRAY p_tables LOOP
        IF t NOT IN ('gfx_sessions', 'gfx_hands', 'gfx_hand_players', 'gfx_players',
                     'wsop_events', 'wsop_players', 'wsop_chip_counts') THEN
            RAISE EXCEPTION 'restore_gfx_from_external: % is not External-authoritative data (use python -m gfx_sync.cli restore)', t
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF to_regclass(format('external_db.%I', t)) IS NULL THEN
            RAISE EXCEPTION 'restore_gfx_from_external: foreign table external_db.% is not configured', t
                USING ERRCODE = 'undefined_table',
                      HINT = 'run "python -m gfx_sync.cli fdw-setup" once (postgres_fdw server external_db from GFX_SOURCE_DB_URL)';
        END IF;
    END LOOP;
    PERFORM set_config('gfx_sync.applying', 'on', true);
    FOREACH t IN ARRAY p_tables LOOP
        PERFORM pg_advisory_xact_lock(hashtext('gfx_sync:' || t));
        SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO v_cols
        FROM pg_attribute WHERE attrelid = format('public.%I', t)::regclass AND attnum > 0 AND NOT attisdropped;
        v_backup := format('_backup_%s_%s', t, v_stamp);
        -- 1. safety copy
        EXECUTE format('CREATE TABLE platform.%I AS SELECT * FROM public.%I', v_backup, t);
        GET DIAGNOSTICS v_before = ROW_COUNT;
        -- 2. remove, 3. copy from the external database
        EXECUTE format('DELETE FROM public.%I', t);
        EXECUTE format('INSERT INTO public.%I (%s) SELECT %s FROM external_db.%I', t, v_cols, v_cols, t);
        GET DIAGNOSTICS v_after = ROW_COUNT;
        -- 4. log
        INSERT INTO public.activity_log (action, entity_type, details)
        VALUES ('restore', t, jsonb_build_object('source', 'external', 'timestamp', now(),
                'safety_copy', 'platform.' || v_backup, 'rows_before', v_before, 'rows_restored', v_after));
        SELECT coalesce((SELECT method FROM public.sync_status WHERE source = 'external_pg' AND entity_type = t),
                        'batch') INTO v_method;
        INSERT INTO public.sync_log (source, entity_type, method, operation, direction, status, records_read,
                                     records_inserted, records_deleted, details, finished_at)
        VALUES ('external_pg', t, v_method, 'restore', 'external_to_supabase', 'success', v_after, v_after, v_before,
                jsonb_build_object('via', 'restore_gfx_from_external', 'safety_copy', 'platform.' || v_backup),
                clock_timestamp());
        v_out := v_out || jsonb_build_object(t, jsonb_build_object(
            'rows_before', v_before, 'rows_restored', v_after, 'safety_copy', 'platform.' || v_backup));
    END LOOP;
    RETURN v_out;
END $$;

REVOKE ALL ON FUNCTION public.restore_gfx_from_external(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.restore_gfx_from_external(text[]) TO service_role;
