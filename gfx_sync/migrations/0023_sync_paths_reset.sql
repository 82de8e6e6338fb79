-- Per-path sync_status (0020), refined: only an explicit reset (a write without a path that
-- leaves the row pending with no failures, e.g. an operator's or a test's) clears the per-path
-- rows. A write without a path that keeps the row synced (the CDC stream's idle heartbeat, which
-- only refreshes last_synced_at) no longer wipes the paths' history.
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
        IF TG_OP = 'UPDATE' AND NEW.consecutive_failures = 0 AND NEW.status = 'pending' THEN
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
