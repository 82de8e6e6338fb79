-- Event-driven render queue (seed 003 §2.2: render_queue is Realtime): every insert, update and
-- delete of a render job in Supabase notifies channel render_queue_changes with the same payload
-- as override_changes ({table, operation, id, origin, timestamp}; origin = the row's
-- sync_origin, so the listener ignores the sync's own writes). `gfx-sync listen` applies each
-- change to the external database within seconds through the existing two-way code.
CREATE OR REPLACE FUNCTION public.notify_render_queue_change()
RETURNS TRIGGER LANGUAGE plpgsql AS $$
DECLARE
    v_row jsonb := to_jsonb(COALESCE(NEW, OLD));
BEGIN
    PERFORM pg_notify(
        'render_queue_changes',
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

DROP TRIGGER IF EXISTS trigger_render_queue_notify ON public.render_queue;
CREATE TRIGGER trigger_render_queue_notify
    AFTER INSERT OR UPDATE OR DELETE ON public.render_queue
    FOR EACH ROW EXECUTE FUNCTION public.notify_render_queue_change();
