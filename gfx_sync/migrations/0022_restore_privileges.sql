-- restore_gfx_from_external() for service_role, as the README says (issue 12):
--
-- * SECURITY DEFINER: it runs with its owner's rights (the migration role), so service_role
--   needs EXECUTE only (granted in 0003, to nobody else) and no rights of its own on the
--   foreign tables, on platform (where the safety copies go) or on the gfx tables; the FDW
--   user mapping used is the owner's (`gfx-sync fdw-setup` creates it for the owner too).
-- * search_path pinned to pg_catalog then pg_temp: every object the function touches is
--   schema-qualified, so a caller's search_path (or a temporary object) cannot redirect it.
-- * Safety copies (platform._backup_<table>_<UTC timestamp>, from both restores) older than
--   the retention (default 14 days) are dropped by platform.prune_gfx_safety_copies(), which
--   the health job runs.
ALTER FUNCTION public.restore_gfx_from_external(text[]) SECURITY DEFINER;
ALTER FUNCTION public.restore_gfx_from_external(text[]) SET search_path = pg_catalog, pg_temp;
-- Supabase's default privileges grant EXECUTE on new functions in public to anon and
-- authenticated explicitly (the local roles mirror it), so 0003's REVOKE … FROM PUBLIC left
-- them able to call it: revoke by name.
REVOKE ALL ON FUNCTION public.restore_gfx_from_external(text[]) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.restore_gfx_from_external(text[]) TO service_role;

CREATE OR REPLACE FUNCTION platform.prune_gfx_safety_copies(p_keep interval DEFAULT interval '14 days')
RETURNS text[] LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r       record;
    v_stamp timestamptz;
    v_out   text[] := '{}';
BEGIN
    FOR r IN
        SELECT c.relname,
               substring(c.relname FROM '_([0-9]{20})$') AS stamp
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'platform' AND c.relkind = 'r' AND c.relname LIKE '\_backup\_%'
    LOOP
        CONTINUE WHEN r.stamp IS NULL;
        -- the stamp is UTC wall time: to_timestamp reads it as session time, ::timestamp gives
        -- the wall time back, AT TIME ZONE 'UTC' places it
        v_stamp := (to_timestamp(r.stamp, 'YYYYMMDDHH24MISSUS')::timestamp) AT TIME ZONE 'UTC';
        IF v_stamp < now() - p_keep THEN
            EXECUTE format('DROP TABLE platform.%I', r.relname);
            v_out := v_out || ('platform.' || r.relname);
        END IF;
    END LOOP;
    IF array_length(v_out, 1) > 0 THEN
        INSERT INTO public.activity_log (action, entity_type, details)
        VALUES ('safety_copies_pruned', 'platform',
                jsonb_build_object('dropped', to_jsonb(v_out), 'keep', p_keep::text));
    END IF;
    RETURN v_out;
END $$;
REVOKE ALL ON FUNCTION platform.prune_gfx_safety_copies(interval) FROM PUBLIC, anon, authenticated;
