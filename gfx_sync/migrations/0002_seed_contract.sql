-- Seed 003 used literally (issue 4 QA):
--
-- 1. sync_status rows written with the seed's columns only (§4.1 update_sync_status('wsop',
--    'events', ...), §4.2/§6.1 know source, entity_type, status, counters, sync_interval,
--    next_sync_at): `method` gets a default instead of rejecting such a row. 'batch' is the
--    seed's pattern for anything scheduled by status row (§4).
-- 2. §5.2 change notification on player_overrides: notify_override_change() sends
--    {"table", "operation", "id", "timestamp"} on channel override_changes for every insert,
--    update and delete (trigger trigger_override_notify, as in the seed). The payload also carries
--    "origin" (the row's sync_origin: 'supabase' for a UI edit, 'external' for a row the sync
--    copied in), so a listener can ignore the sync's own writes and never echo them.
--    profile_images and cue_sheets (same "event-driven"/Realtime rows of §2.2) notify on the same
--    channel with their own table name.

ALTER TABLE public.sync_status ALTER COLUMN method SET DEFAULT 'batch';

CREATE OR REPLACE FUNCTION public.notify_override_change()
RETURNS TRIGGER LANGUAGE plpgsql AS $$
DECLARE
    v_row jsonb := to_jsonb(COALESCE(NEW, OLD));
BEGIN
    PERFORM pg_notify(
        'override_changes',
        json_build_object(
            'table', TG_TABLE_NAME,
            'operation', TG_OP,
            'id', v_row->>'id',
            'origin', v_row->>'sync_origin',
            'timestamp', NOW()
        )::TEXT
    );
    RETURN COALESCE(NEW, OLD);
END $$;

DROP TRIGGER IF EXISTS trigger_override_notify ON public.player_overrides;
CREATE TRIGGER trigger_override_notify
    AFTER INSERT OR UPDATE OR DELETE ON public.player_overrides
    FOR EACH ROW EXECUTE FUNCTION public.notify_override_change();

DROP TRIGGER IF EXISTS trigger_profile_images_notify ON public.profile_images;
CREATE TRIGGER trigger_profile_images_notify
    AFTER INSERT OR UPDATE OR DELETE ON public.profile_images
    FOR EACH ROW EXECUTE FUNCTION public.notify_override_change();

DROP TRIGGER IF EXISTS trigger_cue_sheets_notify ON public.cue_sheets;
CREATE TRIGGER trigger_cue_sheets_notify
    AFTER INSERT OR UPDATE OR DELETE ON public.cue_sheets
    FOR EACH ROW EXECUTE FUNCTION public.notify_override_change();
