-- Supabase copies of the external tables (seed 003), the sync bookkeeping (sync_status,
-- sync_log, notifications, activity_log), the v_sync_dashboard view and the health / retry
-- functions (seed 003 §4.2, §6.1-§6.3). Synced tables have the same columns, types and order as
-- gfx_sync/source_migrations/0001 (the drift check compares them); keys come from the source,
-- so there are no identity columns here, and the target is stricter in three places
-- (wsop_players.country, wsop_chip_counts.chip_count, gfx_hand_players.seat_no): rows that
-- violate them are quarantined by the sync, the rest of the batch lands.
--
-- Every process that writes these tables on behalf of the sync (batch, two-way, restore and
-- the CDC applier) runs `SET LOCAL gfx_sync.applying = 'on'` in its transaction. Any other write
-- to GFX raw / WSOP+ data is a local edit: it is recorded in platform.gfx_sync_local_edits and
-- reverted from the source by the next sync, which logs it (seed 003 §5.1: External absolute).

CREATE SCHEMA IF NOT EXISTS platform;

CREATE OR REPLACE FUNCTION public.gfx_touch_two_way()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('gfx_sync.applying', true), '') <> 'on' THEN
    NEW.updated_at = now();
    NEW.sync_origin = TG_ARGV[0];
    IF TG_OP = 'INSERT' THEN
      DELETE FROM platform.gfx_sync_tombstones WHERE table_name = TG_TABLE_NAME AND row_key = NEW.id::text;
    END IF;
  END IF;
  RETURN NEW;
END $$;

CREATE TABLE IF NOT EXISTS platform.gfx_sync_tombstones (
    table_name text NOT NULL,
    row_key    text NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now(),
    origin     text NOT NULL,
    PRIMARY KEY (table_name, row_key)
);
CREATE INDEX IF NOT EXISTS idx_gfx_sync_tombstones_deleted_at ON platform.gfx_sync_tombstones (deleted_at);

CREATE OR REPLACE FUNCTION public.gfx_tombstone_two_way()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('gfx_sync.applying', true), '') <> 'on' THEN
    INSERT INTO platform.gfx_sync_tombstones (table_name, row_key, deleted_at, origin)
    VALUES (TG_TABLE_NAME, OLD.id::text, now(), TG_ARGV[0])
    ON CONFLICT (table_name, row_key) DO UPDATE SET deleted_at = EXCLUDED.deleted_at, origin = EXCLUDED.origin;
  END IF;
  RETURN OLD;
END $$;

-- Local edits of source-owned data (anything not written by the sync).
CREATE TABLE IF NOT EXISTS platform.gfx_sync_local_edits (
    id          bigserial PRIMARY KEY,
    table_name  text NOT NULL,
    row_key     text NOT NULL,
    operation   text NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    changed_by  text NOT NULL DEFAULT current_user
);
CREATE INDEX IF NOT EXISTS idx_gfx_sync_local_edits_table ON platform.gfx_sync_local_edits (table_name, id);

CREATE OR REPLACE FUNCTION public.gfx_record_local_edit()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO platform.gfx_sync_local_edits (table_name, row_key, operation)
  VALUES (TG_TABLE_NAME, CASE WHEN TG_OP = 'DELETE' THEN OLD.id::text ELSE NEW.id::text END, TG_OP);
  IF TG_OP = 'UPDATE' AND OLD.id IS DISTINCT FROM NEW.id THEN
    INSERT INTO platform.gfx_sync_local_edits (table_name, row_key, operation) VALUES (TG_TABLE_NAME, OLD.id::text, 'UPDATE');
  END IF;
  RETURN NULL;
END $$;

-- ---------------------------------------------------------------- GFX raw data (CDC tables)
CREATE TABLE IF NOT EXISTS public.gfx_sessions (
    id           bigint PRIMARY KEY,
    session_code text NOT NULL,
    event_name   text NOT NULL,
    table_name   text NOT NULL,
    venue        text,
    status       text NOT NULL DEFAULT 'scheduled',
    gfx_version  text,
    started_at   timestamptz,
    ended_at     timestamptz,
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS uq_gfx_sessions_code ON public.gfx_sessions (session_code);

CREATE TABLE IF NOT EXISTS public.gfx_players (
    id           bigint PRIMARY KEY,
    player_code  text NOT NULL,
    display_name text NOT NULL,
    name_ko      text,
    nationality  text,
    photo_url    text,
    total_hands  integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS uq_gfx_players_code ON public.gfx_players (player_code);

CREATE TABLE IF NOT EXISTS public.gfx_hands (
    id           bigint PRIMARY KEY,
    session_id   bigint NOT NULL,
    hand_number  integer NOT NULL,
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    button_seat  smallint,
    small_blind  numeric(14,2),
    big_blind    numeric(14,2),
    pot_size     numeric(14,2) NOT NULL DEFAULT 0,
    board_cards  text[],
    payload      jsonb NOT NULL,            -- the full GFX hand document (actions, graphics cues), often TOASTed
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_gfx_hands_session ON public.gfx_hands (session_id, hand_number);

CREATE TABLE IF NOT EXISTS public.gfx_hand_players (
    id           bigint PRIMARY KEY,
    hand_id      bigint NOT NULL,
    player_id    bigint NOT NULL,
    seat_no      smallint NOT NULL CHECK (seat_no BETWEEN 1 AND 10),   -- stricter than the source
    hole_cards   text[],
    start_stack  numeric(16,2),
    end_stack    numeric(16,2),
    net_result   numeric(16,2),
    is_winner    boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_gfx_hand_players_hand ON public.gfx_hand_players (hand_id);
CREATE INDEX IF NOT EXISTS idx_gfx_hand_players_player ON public.gfx_hand_players (player_id);

-- ---------------------------------------------------------------- WSOP+ (15-minute batch)
CREATE TABLE IF NOT EXISTS public.wsop_events (
    id           bigint PRIMARY KEY,
    event_code   text NOT NULL,
    name         text NOT NULL,
    buy_in       numeric(12,2),
    game_type    text,
    venue        text,
    starts_at    timestamptz,
    ends_at      timestamptz,
    status       text NOT NULL DEFAULT 'scheduled',
    entrants     integer,
    prize_pool   numeric(16,2),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS uq_wsop_events_code ON public.wsop_events (event_code);

CREATE TABLE IF NOT EXISTS public.wsop_players (
    id             bigint PRIMARY KEY,
    wsop_player_id text NOT NULL,
    first_name     text NOT NULL,
    last_name      text NOT NULL,
    name_ko        text,
    country        text CHECK (country IS NULL OR country ~ '^[A-Z]{2}$'),  -- stricter than the source
    city           text,
    bracelets      integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS uq_wsop_players_ext ON public.wsop_players (wsop_player_id);

CREATE TABLE IF NOT EXISTS public.wsop_chip_counts (
    id           bigint PRIMARY KEY,
    event_id     bigint NOT NULL,
    player_id    bigint NOT NULL,
    day_label    text NOT NULL,
    level        integer,
    chip_count   bigint NOT NULL CHECK (chip_count >= 0),                 -- stricter than the source
    table_no     integer,
    seat_no      smallint,
    recorded_at  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_wsop_chip_counts_event ON public.wsop_chip_counts (event_id, recorded_at);

-- ---------------------------------------------------------------- written on both sides
CREATE TABLE IF NOT EXISTS public.render_queue (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    job_type      text NOT NULL,
    session_id    bigint,
    hand_id       bigint,
    player_id     bigint,
    template_name text NOT NULL,
    params        jsonb NOT NULL DEFAULT '{}'::jsonb,
    priority      smallint NOT NULL DEFAULT 5,
    requested_by  text,
    status        text NOT NULL DEFAULT 'queued',
    progress      smallint NOT NULL DEFAULT 0,
    output_url    text,
    error_message text,
    rendered_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    sync_origin   text NOT NULL DEFAULT 'supabase'
);
CREATE INDEX IF NOT EXISTS idx_render_queue_status ON public.render_queue (status, priority);

CREATE TABLE IF NOT EXISTS public.player_overrides (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    player_id      bigint NOT NULL,
    field_name     text NOT NULL,
    override_value text,
    reason         text,
    is_active      boolean NOT NULL DEFAULT true,
    created_by     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    sync_origin    text NOT NULL DEFAULT 'supabase'
);
CREATE INDEX IF NOT EXISTS idx_player_overrides_player ON public.player_overrides (player_id, field_name);

CREATE TABLE IF NOT EXISTS public.profile_images (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    player_id    bigint NOT NULL,
    storage_path text NOT NULL,
    mime_type    text NOT NULL,
    width        integer,
    height       integer,
    byte_size    integer,
    sha256       text,
    thumbnail    bytea,
    is_primary   boolean NOT NULL DEFAULT false,
    uploaded_by  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    sync_origin  text NOT NULL DEFAULT 'supabase'
);
CREATE INDEX IF NOT EXISTS idx_profile_images_player ON public.profile_images (player_id);

CREATE TABLE IF NOT EXISTS public.cue_sheets (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id   bigint,
    sheet_name   text NOT NULL,
    segment_no   integer NOT NULL DEFAULT 1,
    cue_type     text NOT NULL,
    cue_at       timestamptz,
    content      jsonb NOT NULL DEFAULT '{}'::jsonb,
    operator     text,
    status       text NOT NULL DEFAULT 'draft',
    version      integer NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    sync_origin  text NOT NULL DEFAULT 'supabase'
);
CREATE INDEX IF NOT EXISTS idx_cue_sheets_session ON public.cue_sheets (session_id, segment_no);


DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['gfx_sessions','gfx_players','gfx_hands','gfx_hand_players',
                           'wsop_events','wsop_players','wsop_chip_counts']
  LOOP
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON public.%I (updated_at)', 'idx_' || t || '_updated_at', t);
    -- The WHEN clause is evaluated before an event is queued, so sync writes cost nothing here.
    EXECUTE format('DROP TRIGGER IF EXISTS trg_%s_local_edit ON public.%I', t, t);
    EXECUTE format('CREATE TRIGGER trg_%s_local_edit AFTER INSERT OR UPDATE OR DELETE ON public.%I FOR EACH ROW '
                   'WHEN (coalesce(current_setting(''gfx_sync.applying'', true), '''') <> ''on'') '
                   'EXECUTE FUNCTION public.gfx_record_local_edit()', t, t);
    PERFORM platform.enable_standard_rls(format('public.%I', t)::regclass);
  END LOOP;
  FOREACH t IN ARRAY ARRAY['render_queue','player_overrides','profile_images','cue_sheets']
  LOOP
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON public.%I (updated_at)', 'idx_' || t || '_updated_at', t);
    EXECUTE format('DROP TRIGGER IF EXISTS trg_%s_touch ON public.%I', t, t);
    EXECUTE format('CREATE TRIGGER trg_%s_touch BEFORE INSERT OR UPDATE ON public.%I '
                   'FOR EACH ROW EXECUTE FUNCTION public.gfx_touch_two_way(%L)', t, t, 'supabase');
    EXECUTE format('DROP TRIGGER IF EXISTS trg_%s_tombstone ON public.%I', t, t);
    EXECUTE format('CREATE TRIGGER trg_%s_tombstone AFTER DELETE ON public.%I FOR EACH ROW '
                   'WHEN (coalesce(current_setting(''gfx_sync.applying'', true), '''') <> ''on'') '
                   'EXECUTE FUNCTION public.gfx_tombstone_two_way(%L)', t, t, 'supabase');
    PERFORM platform.enable_standard_rls(format('public.%I', t)::regclass);
  END LOOP;
END $$;

-- ---------------------------------------------------------------- sync bookkeeping
-- One row per synced table (source = the system it comes from, entity_type = the table).
CREATE TABLE IF NOT EXISTS public.sync_status (
    id                   bigserial PRIMARY KEY,
    source               text NOT NULL,
    entity_type          text NOT NULL,
    method               text NOT NULL CHECK (method IN ('cdc', 'batch', 'two_way', 'reverse')),
    status               text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'running', 'synced', 'failed', 'paused')),
    last_synced_at       timestamptz,
    last_attempt_at      timestamptz,
    records_synced       bigint NOT NULL DEFAULT 0,
    records_failed       bigint NOT NULL DEFAULT 0,
    consecutive_failures integer NOT NULL DEFAULT 0,
    sync_interval        interval NOT NULL DEFAULT interval '15 minutes',
    next_sync_at         timestamptz,
    watermark            timestamptz,
    last_error           text,
    last_run_id          text,
    metadata             jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sync_status_source_entity UNIQUE (source, entity_type)
);
DROP TRIGGER IF EXISTS trg_sync_status_updated_at ON public.sync_status;
CREATE TRIGGER trg_sync_status_updated_at BEFORE UPDATE ON public.sync_status
    FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

-- Append-only audit of every sync operation (seed 003 §1.3 "Audit Trail").
CREATE TABLE IF NOT EXISTS public.sync_log (
    id               bigserial PRIMARY KEY,
    run_id           text,
    source           text NOT NULL,
    entity_type      text NOT NULL,
    method           text NOT NULL,
    operation        text NOT NULL,          -- batch, backfill, reconcile, two_way, restore, cdc, quarantine, local_edit_reverted, conflict
    direction        text,                   -- external_to_supabase, supabase_to_external, both
    status           text NOT NULL CHECK (status IN ('success', 'partial', 'failed', 'dry_run')),
    records_read     bigint NOT NULL DEFAULT 0,
    records_inserted bigint NOT NULL DEFAULT 0,
    records_updated  bigint NOT NULL DEFAULT 0,
    records_deleted  bigint NOT NULL DEFAULT 0,
    records_failed   bigint NOT NULL DEFAULT 0,
    conflicts        integer NOT NULL DEFAULT 0,
    watermark_from   timestamptz,
    watermark_to     timestamptz,
    partition_key    text,
    error_message    text,
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    duration_ms      integer
);
CREATE INDEX IF NOT EXISTS idx_sync_log_entity ON public.sync_log (source, entity_type, started_at DESC);
CREATE INDEX IF NOT EXISTS idx_sync_log_failed ON public.sync_log (started_at DESC) WHERE status IN ('failed', 'partial');

CREATE TABLE IF NOT EXISTS public.notifications (
    id          bigserial PRIMARY KEY,
    type        text NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    title       text NOT NULL,
    message     text,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    target_user text,
    is_read     boolean NOT NULL DEFAULT false,
    read_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_notifications_unread ON public.notifications (type, created_at DESC) WHERE NOT is_read;

CREATE TABLE IF NOT EXISTS public.activity_log (
    id          bigserial PRIMARY KEY,
    action      text NOT NULL,
    entity_type text,
    entity_id   text,
    actor       text NOT NULL DEFAULT current_user,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_activity_log_action ON public.activity_log (action, created_at DESC);

SELECT platform.enable_standard_rls('public.sync_status');
SELECT platform.enable_standard_rls('public.sync_log');
SELECT platform.enable_standard_rls('public.notifications');
SELECT platform.enable_standard_rls('public.activity_log');

-- One sync_status row per synced table (gfx_sync/specs.py is the same list; a test keeps them equal).
INSERT INTO public.sync_status (source, entity_type, method, sync_interval, status) VALUES
    ('external_pg', 'gfx_sessions',     'cdc',     interval '5 minutes',  'pending'),
    ('external_pg', 'gfx_hands',        'cdc',     interval '5 minutes',  'pending'),
    ('external_pg', 'gfx_hand_players', 'cdc',     interval '5 minutes',  'pending'),
    ('external_pg', 'gfx_players',      'cdc',     interval '5 minutes',  'pending'),
    ('external_pg', 'wsop_events',      'batch',   interval '15 minutes', 'pending'),
    ('external_pg', 'wsop_players',     'batch',   interval '15 minutes', 'pending'),
    ('external_pg', 'wsop_chip_counts', 'batch',   interval '15 minutes', 'pending'),
    ('external_pg', 'render_queue',     'reverse', interval '15 minutes', 'pending'),
    ('external_pg', 'player_overrides', 'two_way', interval '15 minutes', 'pending'),
    ('external_pg', 'profile_images',   'two_way', interval '15 minutes', 'pending'),
    ('external_pg', 'cue_sheets',       'two_way', interval '15 minutes', 'pending')
ON CONFLICT (source, entity_type) DO NOTHING;

-- Seed 003 §6.1, verbatim rules: CRITICAL > 5 consecutive failures, WARNING > 2, STALE when the
-- last success is older than two intervals, ERROR when the last attempt failed.
CREATE OR REPLACE VIEW public.v_sync_dashboard AS
SELECT
    source,
    entity_type,
    method,
    status,
    last_synced_at,
    records_synced,
    records_failed,
    consecutive_failures,
    sync_interval,
    next_sync_at,
    last_error,
    CASE
        WHEN consecutive_failures > 5 THEN 'CRITICAL'
        WHEN consecutive_failures > 2 THEN 'WARNING'
        WHEN last_synced_at < NOW() - sync_interval * 2 THEN 'STALE'
        WHEN status = 'failed' THEN 'ERROR'
        ELSE 'HEALTHY'
    END AS health_status,
    EXTRACT(EPOCH FROM (NOW() - last_synced_at)) AS lag_seconds
FROM public.sync_status
ORDER BY
    CASE
        WHEN consecutive_failures > 5 THEN 1
        WHEN consecutive_failures > 2 THEN 2
        WHEN status = 'failed' THEN 3
        ELSE 4
    END,
    last_synced_at;
GRANT SELECT ON public.v_sync_dashboard TO authenticated, service_role;

-- Seed 003 §6.2. One addition: an unread notification for the same table and severity from the
-- last hour is not repeated, so a scheduler calling this every 5 minutes does not flood admins.
CREATE OR REPLACE FUNCTION public.check_sync_health_and_notify()
RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    v_unhealthy RECORD;
    v_severity  text;
BEGIN
    FOR v_unhealthy IN
        SELECT * FROM public.v_sync_dashboard
        WHERE health_status IN ('CRITICAL', 'ERROR')
    LOOP
        v_severity := CASE v_unhealthy.health_status WHEN 'CRITICAL' THEN 'critical' ELSE 'error' END;
        IF EXISTS (
            SELECT 1 FROM public.notifications n
            WHERE n.type = 'sync_failure' AND NOT n.is_read AND n.severity = v_severity
              AND n.metadata->>'source' = v_unhealthy.source
              AND n.metadata->>'entity_type' = v_unhealthy.entity_type
              AND n.created_at > NOW() - interval '1 hour'
        ) THEN
            CONTINUE;
        END IF;
        INSERT INTO public.notifications (type, severity, title, message, metadata, target_user)
        VALUES (
            'sync_failure',
            v_severity,
            '동기화 실패: ' || v_unhealthy.source || '.' || v_unhealthy.entity_type,
            '연속 실패 ' || v_unhealthy.consecutive_failures || '회. 마지막 동기화: ' ||
                coalesce(v_unhealthy.last_synced_at::text, '없음'),
            jsonb_build_object(
                'source', v_unhealthy.source,
                'entity_type', v_unhealthy.entity_type,
                'health_status', v_unhealthy.health_status,
                'lag_seconds', v_unhealthy.lag_seconds,
                'last_error', v_unhealthy.last_error
            ),
            'admin'
        );
    END LOOP;
END $$;

-- Seed 003 §6.3, verbatim: failed syncs with fewer than 5 consecutive failures whose last
-- success is older than 5 minutes go back to pending, due now; the retry is logged.
CREATE OR REPLACE FUNCTION public.retry_failed_syncs()
RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    v_retry_count INTEGER := 0;
BEGIN
    UPDATE public.sync_status
    SET status = 'pending',
        next_sync_at = NOW()
    WHERE status = 'failed'
      AND consecutive_failures < 5
      AND (last_synced_at IS NULL OR last_synced_at < NOW() - INTERVAL '5 minutes');

    GET DIAGNOSTICS v_retry_count = ROW_COUNT;

    IF v_retry_count > 0 THEN
        INSERT INTO public.activity_log (action, entity_type, details)
        VALUES ('sync_retry', 'sync_status', jsonb_build_object('retry_count', v_retry_count));
    END IF;

    RETURN v_retry_count;
END $$;
