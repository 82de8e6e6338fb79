-- gfx_sync operations (issue 11 §3, issue 12): per-path sync state, pause/resume, parked CDC
-- changes, and the dashboard showing both.
--
-- 1. Per-path state. A table can be written by several paths (batch, reconcile, cdc, two_way);
--    each keeps its own row in platform.gfx_sync_path_status, so a CDC success never clears a
--    batch failure. A writer names its path with `SET LOCAL gfx_sync.path = '<path>'` before it
--    writes sync_status (a sync transaction without one, such as the CDC applier's, counts as
--    its table's method); the trigger below records that path's outcome and sets the sync_status
--    row (what the seed's view, functions and readers use) to the WORST path: failed > running >
--    pending > synced, consecutive_failures the highest, last_error the failing path's (prefixed
--    with the path). A write without a path (an operator, the seed's functions, a test reset) is
--    taken as it is; a reset to no failures clears the path rows.
-- 2. Pause (seed §7.1 step 1): status 'paused' (already allowed by 0001) with who/why/when. A
--    path write never un-pauses; only `gfx-sync resume` does.
-- 3. Parked CDC changes: while a table is paused the CDC stream keeps reading the slot (WAL is
--    not held back) and parks that table's changes here, in order; resume applies them.

CREATE TABLE IF NOT EXISTS platform.gfx_sync_path_status (
    source               text NOT NULL,
    entity_type          text NOT NULL,
    path                 text NOT NULL CHECK (path IN ('batch', 'reconcile', 'cdc', 'two_way')),
    status               text NOT NULL CHECK (status IN ('pending', 'running', 'synced', 'failed')),
    last_synced_at       timestamptz,
    last_attempt_at      timestamptz,
    consecutive_failures integer NOT NULL DEFAULT 0,
    last_error           text,
    last_run_id          text,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, entity_type, path)
);

ALTER TABLE public.sync_status
    ADD COLUMN IF NOT EXISTS paused_at     timestamptz,
    ADD COLUMN IF NOT EXISTS paused_by     text,
    ADD COLUMN IF NOT EXISTS paused_reason text;

CREATE OR REPLACE FUNCTION platform.gfx_sync_status_paths()
RETURNS TRIGGER LANGUAGE plpgsql AS $$
DECLARE
    v_path   text := nullif(current_setting('gfx_sync.path', true), '');
    v_first  boolean;
    v_status text;
    v_cf     integer;
    v_error  text;
BEGIN
    IF v_path IS NULL AND current_setting('gfx_sync.applying', true) = 'on' THEN
        -- a sync transaction that did not name its path (the CDC applier): the table's method
        v_path := CASE NEW.method WHEN 'cdc' THEN 'cdc' WHEN 'batch' THEN 'batch' ELSE 'two_way' END;
    END IF;
    IF v_path IS NULL THEN
        IF TG_OP = 'UPDATE' AND NEW.consecutive_failures = 0
           AND NEW.status IN ('pending', 'synced') THEN
            DELETE FROM platform.gfx_sync_path_status
             WHERE source = NEW.source AND entity_type = NEW.entity_type;
        END IF;
        RETURN NEW;
    END IF;
    -- the first path row of a table inherits the failures counted before paths existed
    SELECT NOT EXISTS (SELECT 1 FROM platform.gfx_sync_path_status
                        WHERE source = NEW.source AND entity_type = NEW.entity_type)
      INTO v_first;
    INSERT INTO platform.gfx_sync_path_status AS p
        (source, entity_type, path, status, last_synced_at, last_attempt_at,
         consecutive_failures, last_error, last_run_id)
    VALUES (NEW.source, NEW.entity_type, v_path,
            CASE WHEN NEW.status IN ('pending', 'running', 'synced', 'failed') THEN NEW.status
                 ELSE 'pending' END,
            CASE WHEN NEW.status = 'synced' THEN NEW.last_synced_at END,
            NEW.last_attempt_at,
            CASE WHEN NEW.status <> 'failed' THEN 0
                 WHEN v_first AND TG_OP = 'UPDATE' THEN OLD.consecutive_failures + 1
                 ELSE 1 END,
            CASE WHEN NEW.status = 'failed' THEN NEW.last_error END,
            NEW.last_run_id)
    ON CONFLICT (source, entity_type, path) DO UPDATE SET
        status = EXCLUDED.status,
        last_synced_at = coalesce(EXCLUDED.last_synced_at, p.last_synced_at),
        last_attempt_at = coalesce(EXCLUDED.last_attempt_at, p.last_attempt_at),
        consecutive_failures = CASE EXCLUDED.status
            WHEN 'failed' THEN p.consecutive_failures + 1
            WHEN 'synced' THEN 0
            ELSE p.consecutive_failures END,
        last_error = CASE EXCLUDED.status
            WHEN 'failed' THEN EXCLUDED.last_error
            WHEN 'synced' THEN NULL
            ELSE p.last_error END,
        last_run_id = coalesce(EXCLUDED.last_run_id, p.last_run_id),
        updated_at = now();
    SELECT CASE WHEN bool_or(status = 'failed') THEN 'failed'
                WHEN bool_or(status = 'running') THEN 'running'
                WHEN bool_or(status = 'pending') THEN 'pending'
                ELSE 'synced' END,
           max(consecutive_failures),
           (array_agg(path || ': ' || coalesce(last_error, '')
                      ORDER BY consecutive_failures DESC, path)
                FILTER (WHERE status = 'failed'))[1]
      INTO v_status, v_cf, v_error
      FROM platform.gfx_sync_path_status
     WHERE source = NEW.source AND entity_type = NEW.entity_type;
    NEW.status := CASE WHEN TG_OP = 'UPDATE' AND OLD.status = 'paused' THEN 'paused'
                       ELSE v_status END;
    NEW.consecutive_failures := v_cf;
    NEW.last_error := v_error;
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS trg_sync_status_paths ON public.sync_status;
CREATE TRIGGER trg_sync_status_paths BEFORE INSERT OR UPDATE ON public.sync_status
    FOR EACH ROW EXECUTE FUNCTION platform.gfx_sync_status_paths();

CREATE TABLE IF NOT EXISTS platform.gfx_sync_parked_changes (
    seq         bigserial PRIMARY KEY,
    table_name  text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('insert', 'update', 'delete')),
    new_row     jsonb,              -- column -> text value (unchanged TOAST columns left out)
    old_key     jsonb,              -- key columns before the change (deletes, key updates)
    commit_lsn  pg_lsn,
    commit_time timestamptz,
    parked_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_gfx_sync_parked_table ON platform.gfx_sync_parked_changes (table_name, seq);

-- The seed's dashboard with paused tables shown as PAUSED (never alerted on), and, appended
-- (CREATE OR REPLACE VIEW keeps the existing columns), the pause details and each path's state.
CREATE OR REPLACE VIEW public.v_sync_dashboard AS
SELECT
    s.source,
    s.entity_type,
    s.method,
    s.status,
    s.last_synced_at,
    s.records_synced,
    s.records_failed,
    s.consecutive_failures,
    s.sync_interval,
    s.next_sync_at,
    s.last_error,
    CASE
        WHEN s.status = 'paused' THEN 'PAUSED'
        WHEN s.consecutive_failures > 5 THEN 'CRITICAL'
        WHEN s.consecutive_failures > 2 THEN 'WARNING'
        WHEN s.last_synced_at < NOW() - s.sync_interval * 2 THEN 'STALE'
        WHEN s.status = 'failed' THEN 'ERROR'
        ELSE 'HEALTHY'
    END AS health_status,
    EXTRACT(EPOCH FROM (NOW() - s.last_synced_at)) AS lag_seconds,
    s.paused_at,
    s.paused_by,
    s.paused_reason,
    (SELECT jsonb_object_agg(p.path, jsonb_build_object(
                'status', p.status, 'consecutive_failures', p.consecutive_failures,
                'last_synced_at', p.last_synced_at, 'last_error', p.last_error))
       FROM platform.gfx_sync_path_status p
      WHERE p.source = s.source AND p.entity_type = s.entity_type) AS paths
FROM public.sync_status s
ORDER BY
    CASE
        WHEN s.consecutive_failures > 5 THEN 1
        WHEN s.consecutive_failures > 2 THEN 2
        WHEN s.status = 'failed' THEN 3
        WHEN s.status = 'paused' THEN 4
        ELSE 5
    END,
    s.last_synced_at;
GRANT SELECT ON public.v_sync_dashboard TO authenticated, service_role;

-- The path table is internal bookkeeping read through the view (which runs as its owner).
REVOKE ALL ON platform.gfx_sync_path_status, platform.gfx_sync_parked_changes FROM PUBLIC;
