-- gfx_sync schema (Supabase side) as its migrations build it: `gfx-sync schema dump`
-- writes this file, `gfx-sync schema check` compares migrations, this file and the live
-- database. Generated; do not edit by hand.

-- CONSTRAINT platform.gfx_cdc_alerts gfx_cdc_alerts_pkey
ALTER TABLE ONLY platform.gfx_cdc_alerts
    ADD CONSTRAINT gfx_cdc_alerts_pkey PRIMARY KEY (slot_name, alert, raised_at);

-- CONSTRAINT platform.gfx_cdc_state gfx_cdc_state_pkey
ALTER TABLE ONLY platform.gfx_cdc_state
    ADD CONSTRAINT gfx_cdc_state_pkey PRIMARY KEY (slot_name);

-- CONSTRAINT platform.gfx_cdc_table_fence gfx_cdc_table_fence_pkey
ALTER TABLE ONLY platform.gfx_cdc_table_fence
    ADD CONSTRAINT gfx_cdc_table_fence_pkey PRIMARY KEY (slot_name, table_name);

-- CONSTRAINT platform.gfx_sync_local_edits gfx_sync_local_edits_pkey
ALTER TABLE ONLY platform.gfx_sync_local_edits
    ADD CONSTRAINT gfx_sync_local_edits_pkey PRIMARY KEY (id);

-- CONSTRAINT platform.gfx_sync_parked_changes gfx_sync_parked_changes_pkey
ALTER TABLE ONLY platform.gfx_sync_parked_changes
    ADD CONSTRAINT gfx_sync_parked_changes_pkey PRIMARY KEY (seq);

-- CONSTRAINT platform.gfx_sync_path_status gfx_sync_path_status_pkey
ALTER TABLE ONLY platform.gfx_sync_path_status
    ADD CONSTRAINT gfx_sync_path_status_pkey PRIMARY KEY (source, entity_type, path);

-- CONSTRAINT platform.gfx_sync_tombstones gfx_sync_tombstones_pkey
ALTER TABLE ONLY platform.gfx_sync_tombstones
    ADD CONSTRAINT gfx_sync_tombstones_pkey PRIMARY KEY (table_name, row_key);

-- CONSTRAINT public.activity_log activity_log_pkey
ALTER TABLE ONLY public.activity_log
    ADD CONSTRAINT activity_log_pkey PRIMARY KEY (id);

-- CONSTRAINT public.cue_sheets cue_sheets_pkey
ALTER TABLE ONLY public.cue_sheets
    ADD CONSTRAINT cue_sheets_pkey PRIMARY KEY (id);

-- CONSTRAINT public.gfx_hand_players gfx_hand_players_pkey
ALTER TABLE ONLY public.gfx_hand_players
    ADD CONSTRAINT gfx_hand_players_pkey PRIMARY KEY (id);

-- CONSTRAINT public.gfx_hands gfx_hands_pkey
ALTER TABLE ONLY public.gfx_hands
    ADD CONSTRAINT gfx_hands_pkey PRIMARY KEY (id);

-- CONSTRAINT public.gfx_players gfx_players_pkey
ALTER TABLE ONLY public.gfx_players
    ADD CONSTRAINT gfx_players_pkey PRIMARY KEY (id);

-- CONSTRAINT public.gfx_sessions gfx_sessions_pkey
ALTER TABLE ONLY public.gfx_sessions
    ADD CONSTRAINT gfx_sessions_pkey PRIMARY KEY (id);

-- CONSTRAINT public.player_overrides player_overrides_pkey
ALTER TABLE ONLY public.player_overrides
    ADD CONSTRAINT player_overrides_pkey PRIMARY KEY (id);

-- CONSTRAINT public.profile_images profile_images_pkey
ALTER TABLE ONLY public.profile_images
    ADD CONSTRAINT profile_images_pkey PRIMARY KEY (id);

-- CONSTRAINT public.render_queue render_queue_pkey
ALTER TABLE ONLY public.render_queue
    ADD CONSTRAINT render_queue_pkey PRIMARY KEY (id);

-- CONSTRAINT public.sync_log sync_log_pkey
ALTER TABLE ONLY public.sync_log
    ADD CONSTRAINT sync_log_pkey PRIMARY KEY (id);

-- CONSTRAINT public.sync_status sync_status_pkey
ALTER TABLE ONLY public.sync_status
    ADD CONSTRAINT sync_status_pkey PRIMARY KEY (id);

-- CONSTRAINT public.sync_status sync_status_source_entity
ALTER TABLE ONLY public.sync_status
    ADD CONSTRAINT sync_status_source_entity UNIQUE (source, entity_type);

-- CONSTRAINT public.wsop_chip_counts wsop_chip_counts_pkey
ALTER TABLE ONLY public.wsop_chip_counts
    ADD CONSTRAINT wsop_chip_counts_pkey PRIMARY KEY (id);

-- CONSTRAINT public.wsop_events wsop_events_pkey
ALTER TABLE ONLY public.wsop_events
    ADD CONSTRAINT wsop_events_pkey PRIMARY KEY (id);

-- CONSTRAINT public.wsop_players wsop_players_pkey
ALTER TABLE ONLY public.wsop_players
    ADD CONSTRAINT wsop_players_pkey PRIMARY KEY (id);

-- DEFAULT platform.gfx_sync_local_edits id
ALTER TABLE ONLY platform.gfx_sync_local_edits ALTER COLUMN id SET DEFAULT nextval('platform.gfx_sync_local_edits_id_seq'::regclass);

-- DEFAULT platform.gfx_sync_parked_changes seq
ALTER TABLE ONLY platform.gfx_sync_parked_changes ALTER COLUMN seq SET DEFAULT nextval('platform.gfx_sync_parked_changes_seq_seq'::regclass);

-- DEFAULT public.activity_log id
ALTER TABLE ONLY public.activity_log ALTER COLUMN id SET DEFAULT nextval('public.activity_log_id_seq'::regclass);

-- DEFAULT public.sync_log id
ALTER TABLE ONLY public.sync_log ALTER COLUMN id SET DEFAULT nextval('public.sync_log_id_seq'::regclass);

-- DEFAULT public.sync_status id
ALTER TABLE ONLY public.sync_status ALTER COLUMN id SET DEFAULT nextval('public.sync_status_id_seq'::regclass);

-- FUNCTION platform.gfx_sync_status_paths()
CREATE FUNCTION platform.gfx_sync_status_paths() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

-- FUNCTION platform.prune_gfx_safety_copies(interval)
CREATE FUNCTION platform.prune_gfx_safety_copies(p_keep interval DEFAULT '14 days'::interval) RETURNS text[]
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
END $_$;

-- FUNCTION public.check_sync_health_and_notify()
CREATE FUNCTION public.check_sync_health_and_notify() RETURNS void
    LANGUAGE plpgsql
    AS $$
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

-- FUNCTION public.gfx_record_local_edit()
CREATE FUNCTION public.gfx_record_local_edit() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  INSERT INTO platform.gfx_sync_local_edits (table_name, row_key, operation)
  VALUES (TG_TABLE_NAME, CASE WHEN TG_OP = 'DELETE' THEN OLD.id::text ELSE NEW.id::text END, TG_OP);
  IF TG_OP = 'UPDATE' AND OLD.id IS DISTINCT FROM NEW.id THEN
    INSERT INTO platform.gfx_sync_local_edits (table_name, row_key, operation) VALUES (TG_TABLE_NAME, OLD.id::text, 'UPDATE');
  END IF;
  RETURN NULL;
END $$;

-- FUNCTION public.gfx_tombstone_two_way()
CREATE FUNCTION public.gfx_tombstone_two_way() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF coalesce(current_setting('gfx_sync.applying', true), '') <> 'on' THEN
    INSERT INTO platform.gfx_sync_tombstones (table_name, row_key, deleted_at, origin)
    VALUES (TG_TABLE_NAME, OLD.id::text, now(), TG_ARGV[0])
    ON CONFLICT (table_name, row_key) DO UPDATE SET deleted_at = EXCLUDED.deleted_at, origin = EXCLUDED.origin;
  END IF;
  RETURN OLD;
END $$;

-- FUNCTION public.gfx_touch_two_way()
CREATE FUNCTION public.gfx_touch_two_way() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

-- FUNCTION public.notify_override_change()
CREATE FUNCTION public.notify_override_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

-- FUNCTION public.notify_render_queue_change()
CREATE FUNCTION public.notify_render_queue_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

-- FUNCTION public.restore_gfx_from_external(text[])
CREATE FUNCTION public.restore_gfx_from_external(p_tables text[] DEFAULT ARRAY['gfx_sessions'::text, 'gfx_hands'::text, 'gfx_hand_players'::text, 'gfx_players'::text]) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

-- FUNCTION public.retry_failed_syncs()
CREATE FUNCTION public.retry_failed_syncs() RETURNS integer
    LANGUAGE plpgsql
    AS $$
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

-- INDEX platform.idx_gfx_cdc_alerts_open
CREATE INDEX idx_gfx_cdc_alerts_open ON platform.gfx_cdc_alerts USING btree (slot_name, alert) WHERE (cleared_at IS NULL);

-- INDEX platform.idx_gfx_sync_local_edits_table
CREATE INDEX idx_gfx_sync_local_edits_table ON platform.gfx_sync_local_edits USING btree (table_name, id);

-- INDEX platform.idx_gfx_sync_parked_table
CREATE INDEX idx_gfx_sync_parked_table ON platform.gfx_sync_parked_changes USING btree (table_name, seq);

-- INDEX platform.idx_gfx_sync_tombstones_deleted_at
CREATE INDEX idx_gfx_sync_tombstones_deleted_at ON platform.gfx_sync_tombstones USING btree (deleted_at);

-- INDEX public.idx_activity_log_action
CREATE INDEX idx_activity_log_action ON public.activity_log USING btree (action, created_at DESC);

-- INDEX public.idx_cue_sheets_session
CREATE INDEX idx_cue_sheets_session ON public.cue_sheets USING btree (session_id, segment_no);

-- INDEX public.idx_cue_sheets_updated_at
CREATE INDEX idx_cue_sheets_updated_at ON public.cue_sheets USING btree (updated_at);

-- INDEX public.idx_gfx_hand_players_hand
CREATE INDEX idx_gfx_hand_players_hand ON public.gfx_hand_players USING btree (hand_id);

-- INDEX public.idx_gfx_hand_players_player
CREATE INDEX idx_gfx_hand_players_player ON public.gfx_hand_players USING btree (player_id);

-- INDEX public.idx_gfx_hand_players_updated_at
CREATE INDEX idx_gfx_hand_players_updated_at ON public.gfx_hand_players USING btree (updated_at);

-- INDEX public.idx_gfx_hands_session
CREATE INDEX idx_gfx_hands_session ON public.gfx_hands USING btree (session_id, hand_number);

-- INDEX public.idx_gfx_hands_updated_at
CREATE INDEX idx_gfx_hands_updated_at ON public.gfx_hands USING btree (updated_at);

-- INDEX public.idx_gfx_players_updated_at
CREATE INDEX idx_gfx_players_updated_at ON public.gfx_players USING btree (updated_at);

-- INDEX public.idx_gfx_sessions_updated_at
CREATE INDEX idx_gfx_sessions_updated_at ON public.gfx_sessions USING btree (updated_at);

-- INDEX public.idx_player_overrides_player
CREATE INDEX idx_player_overrides_player ON public.player_overrides USING btree (player_id, field_name);

-- INDEX public.idx_player_overrides_updated_at
CREATE INDEX idx_player_overrides_updated_at ON public.player_overrides USING btree (updated_at);

-- INDEX public.idx_profile_images_player
CREATE INDEX idx_profile_images_player ON public.profile_images USING btree (player_id);

-- INDEX public.idx_profile_images_updated_at
CREATE INDEX idx_profile_images_updated_at ON public.profile_images USING btree (updated_at);

-- INDEX public.idx_render_queue_status
CREATE INDEX idx_render_queue_status ON public.render_queue USING btree (status, priority);

-- INDEX public.idx_render_queue_updated_at
CREATE INDEX idx_render_queue_updated_at ON public.render_queue USING btree (updated_at);

-- INDEX public.idx_sync_log_entity
CREATE INDEX idx_sync_log_entity ON public.sync_log USING btree (source, entity_type, started_at DESC);

-- INDEX public.idx_sync_log_failed
CREATE INDEX idx_sync_log_failed ON public.sync_log USING btree (started_at DESC) WHERE (status = ANY (ARRAY['failed'::text, 'partial'::text]));

-- INDEX public.idx_wsop_chip_counts_event
CREATE INDEX idx_wsop_chip_counts_event ON public.wsop_chip_counts USING btree (event_id, recorded_at);

-- INDEX public.idx_wsop_chip_counts_updated_at
CREATE INDEX idx_wsop_chip_counts_updated_at ON public.wsop_chip_counts USING btree (updated_at);

-- INDEX public.idx_wsop_events_updated_at
CREATE INDEX idx_wsop_events_updated_at ON public.wsop_events USING btree (updated_at);

-- INDEX public.idx_wsop_players_updated_at
CREATE INDEX idx_wsop_players_updated_at ON public.wsop_players USING btree (updated_at);

-- INDEX public.uq_gfx_players_code
CREATE UNIQUE INDEX uq_gfx_players_code ON public.gfx_players USING btree (player_code);

-- INDEX public.uq_gfx_sessions_code
CREATE UNIQUE INDEX uq_gfx_sessions_code ON public.gfx_sessions USING btree (session_code);

-- INDEX public.uq_wsop_events_code
CREATE UNIQUE INDEX uq_wsop_events_code ON public.wsop_events USING btree (event_code);

-- INDEX public.uq_wsop_players_ext
CREATE UNIQUE INDEX uq_wsop_players_ext ON public.wsop_players USING btree (wsop_player_id);

-- POLICY public.activity_log authenticated_read
CREATE POLICY authenticated_read ON public.activity_log FOR SELECT TO authenticated USING (true);

-- POLICY public.activity_log service_role_all
CREATE POLICY service_role_all ON public.activity_log TO service_role USING (true) WITH CHECK (true);

-- POLICY public.cue_sheets authenticated_read
CREATE POLICY authenticated_read ON public.cue_sheets FOR SELECT TO authenticated USING (true);

-- POLICY public.cue_sheets service_role_all
CREATE POLICY service_role_all ON public.cue_sheets TO service_role USING (true) WITH CHECK (true);

-- POLICY public.gfx_hand_players authenticated_read
CREATE POLICY authenticated_read ON public.gfx_hand_players FOR SELECT TO authenticated USING (true);

-- POLICY public.gfx_hand_players service_role_all
CREATE POLICY service_role_all ON public.gfx_hand_players TO service_role USING (true) WITH CHECK (true);

-- POLICY public.gfx_hands authenticated_read
CREATE POLICY authenticated_read ON public.gfx_hands FOR SELECT TO authenticated USING (true);

-- POLICY public.gfx_hands service_role_all
CREATE POLICY service_role_all ON public.gfx_hands TO service_role USING (true) WITH CHECK (true);

-- POLICY public.gfx_players authenticated_read
CREATE POLICY authenticated_read ON public.gfx_players FOR SELECT TO authenticated USING (true);

-- POLICY public.gfx_players service_role_all
CREATE POLICY service_role_all ON public.gfx_players TO service_role USING (true) WITH CHECK (true);

-- POLICY public.gfx_sessions authenticated_read
CREATE POLICY authenticated_read ON public.gfx_sessions FOR SELECT TO authenticated USING (true);

-- POLICY public.gfx_sessions service_role_all
CREATE POLICY service_role_all ON public.gfx_sessions TO service_role USING (true) WITH CHECK (true);

-- POLICY public.player_overrides authenticated_read
CREATE POLICY authenticated_read ON public.player_overrides FOR SELECT TO authenticated USING (true);

-- POLICY public.player_overrides service_role_all
CREATE POLICY service_role_all ON public.player_overrides TO service_role USING (true) WITH CHECK (true);

-- POLICY public.profile_images authenticated_read
CREATE POLICY authenticated_read ON public.profile_images FOR SELECT TO authenticated USING (true);

-- POLICY public.profile_images service_role_all
CREATE POLICY service_role_all ON public.profile_images TO service_role USING (true) WITH CHECK (true);

-- POLICY public.render_queue authenticated_read
CREATE POLICY authenticated_read ON public.render_queue FOR SELECT TO authenticated USING (true);

-- POLICY public.render_queue service_role_all
CREATE POLICY service_role_all ON public.render_queue TO service_role USING (true) WITH CHECK (true);

-- POLICY public.sync_log authenticated_read
CREATE POLICY authenticated_read ON public.sync_log FOR SELECT TO authenticated USING (true);

-- POLICY public.sync_log service_role_all
CREATE POLICY service_role_all ON public.sync_log TO service_role USING (true) WITH CHECK (true);

-- POLICY public.sync_status authenticated_read
CREATE POLICY authenticated_read ON public.sync_status FOR SELECT TO authenticated USING (true);

-- POLICY public.sync_status service_role_all
CREATE POLICY service_role_all ON public.sync_status TO service_role USING (true) WITH CHECK (true);

-- POLICY public.wsop_chip_counts authenticated_read
CREATE POLICY authenticated_read ON public.wsop_chip_counts FOR SELECT TO authenticated USING (true);

-- POLICY public.wsop_chip_counts service_role_all
CREATE POLICY service_role_all ON public.wsop_chip_counts TO service_role USING (true) WITH CHECK (true);

-- POLICY public.wsop_events authenticated_read
CREATE POLICY authenticated_read ON public.wsop_events FOR SELECT TO authenticated USING (true);

-- POLICY public.wsop_events service_role_all
CREATE POLICY service_role_all ON public.wsop_events TO service_role USING (true) WITH CHECK (true);

-- POLICY public.wsop_players authenticated_read
CREATE POLICY authenticated_read ON public.wsop_players FOR SELECT TO authenticated USING (true);

-- POLICY public.wsop_players service_role_all
CREATE POLICY service_role_all ON public.wsop_players TO service_role USING (true) WITH CHECK (true);

-- ROW SECURITY public.activity_log
ALTER TABLE public.activity_log ENABLE ROW LEVEL SECURITY;

-- ROW SECURITY public.cue_sheets
ALTER TABLE public.cue_sheets ENABLE ROW LEVEL SECURITY;

-- ROW SECURITY public.gfx_hand_players
ALTER TABLE public.gfx_hand_players ENABLE ROW LEVEL SECURITY;

-- ROW SECURITY public.gfx_hands
ALTER TABLE public.gfx_hands ENABLE ROW LEVEL SECURITY;

-- ROW SECURITY public.gfx_players
ALTER TABLE public.gfx_players ENABLE ROW LEVEL SECURITY;

-- ROW SECURITY public.gfx_sessions
ALTER TABLE public.gfx_sessions ENABLE ROW LEVEL SECURITY;

-- ROW SECURITY public.player_overrides
ALTER TABLE public.player_overrides ENABLE ROW LEVEL SECURITY;

-- ROW SECURITY public.profile_images
ALTER TABLE public.profile_images ENABLE ROW LEVEL SECURITY;

-- ROW SECURITY public.render_queue
ALTER TABLE public.render_queue ENABLE ROW LEVEL SECURITY;

-- ROW SECURITY public.sync_log
ALTER TABLE public.sync_log ENABLE ROW LEVEL SECURITY;

-- ROW SECURITY public.sync_status
ALTER TABLE public.sync_status ENABLE ROW LEVEL SECURITY;

-- ROW SECURITY public.wsop_chip_counts
ALTER TABLE public.wsop_chip_counts ENABLE ROW LEVEL SECURITY;

-- ROW SECURITY public.wsop_events
ALTER TABLE public.wsop_events ENABLE ROW LEVEL SECURITY;

-- ROW SECURITY public.wsop_players
ALTER TABLE public.wsop_players ENABLE ROW LEVEL SECURITY;

-- SEQUENCE platform.gfx_sync_local_edits_id_seq
CREATE SEQUENCE platform.gfx_sync_local_edits_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

-- SEQUENCE platform.gfx_sync_parked_changes_seq_seq
CREATE SEQUENCE platform.gfx_sync_parked_changes_seq_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

-- SEQUENCE public.activity_log_id_seq
CREATE SEQUENCE public.activity_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

-- SEQUENCE public.sync_log_id_seq
CREATE SEQUENCE public.sync_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

-- SEQUENCE public.sync_status_id_seq
CREATE SEQUENCE public.sync_status_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

-- SEQUENCE OWNED BY platform.gfx_sync_local_edits_id_seq
ALTER SEQUENCE platform.gfx_sync_local_edits_id_seq OWNED BY platform.gfx_sync_local_edits.id;

-- SEQUENCE OWNED BY platform.gfx_sync_parked_changes_seq_seq
ALTER SEQUENCE platform.gfx_sync_parked_changes_seq_seq OWNED BY platform.gfx_sync_parked_changes.seq;

-- SEQUENCE OWNED BY public.activity_log_id_seq
ALTER SEQUENCE public.activity_log_id_seq OWNED BY public.activity_log.id;

-- SEQUENCE OWNED BY public.sync_log_id_seq
ALTER SEQUENCE public.sync_log_id_seq OWNED BY public.sync_log.id;

-- SEQUENCE OWNED BY public.sync_status_id_seq
ALTER SEQUENCE public.sync_status_id_seq OWNED BY public.sync_status.id;

-- TABLE platform.gfx_cdc_alerts
CREATE TABLE platform.gfx_cdc_alerts (
    slot_name text NOT NULL,
    alert text NOT NULL,
    message text NOT NULL,
    details jsonb,
    raised_at timestamp with time zone DEFAULT now() NOT NULL,
    cleared_at timestamp with time zone
);

-- TABLE platform.gfx_cdc_state
CREATE TABLE platform.gfx_cdc_state (
    slot_name text NOT NULL,
    source_database text NOT NULL,
    publication text NOT NULL,
    last_commit_lsn pg_lsn NOT NULL,
    last_commit_ts timestamp with time zone,
    last_applied_at timestamp with time zone,
    snapshot_lsn pg_lsn,
    snapshot_completed_at timestamp with time zone,
    snapshot_rows bigint DEFAULT 0 NOT NULL,
    transactions_applied bigint DEFAULT 0 NOT NULL,
    changes_applied bigint DEFAULT 0 NOT NULL,
    last_apply_lag_ms double precision,
    stopped_reason text,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    confirmed_lsn pg_lsn
);

-- TABLE platform.gfx_cdc_table_fence
CREATE TABLE platform.gfx_cdc_table_fence (
    slot_name text NOT NULL,
    table_name text NOT NULL,
    snapshot_lsn pg_lsn NOT NULL,
    rows_copied bigint DEFAULT 0 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

-- TABLE platform.gfx_sync_local_edits
CREATE TABLE platform.gfx_sync_local_edits (
    id bigint NOT NULL,
    table_name text NOT NULL,
    row_key text NOT NULL,
    operation text NOT NULL,
    changed_at timestamp with time zone DEFAULT now() NOT NULL,
    changed_by text DEFAULT CURRENT_USER NOT NULL
);

-- TABLE platform.gfx_sync_parked_changes
CREATE TABLE platform.gfx_sync_parked_changes (
    seq bigint NOT NULL,
    table_name text NOT NULL,
    kind text NOT NULL,
    new_row jsonb,
    old_key jsonb,
    commit_lsn pg_lsn,
    commit_time timestamp with time zone,
    parked_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT gfx_sync_parked_changes_kind_check CHECK ((kind = ANY (ARRAY['insert'::text, 'update'::text, 'delete'::text])))
);

-- TABLE platform.gfx_sync_path_status
CREATE TABLE platform.gfx_sync_path_status (
    source text NOT NULL,
    entity_type text NOT NULL,
    path text NOT NULL,
    status text NOT NULL,
    last_synced_at timestamp with time zone,
    last_attempt_at timestamp with time zone,
    consecutive_failures integer DEFAULT 0 NOT NULL,
    last_error text,
    last_run_id text,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT gfx_sync_path_status_path_check CHECK ((path = ANY (ARRAY['batch'::text, 'reconcile'::text, 'cdc'::text, 'two_way'::text]))),
    CONSTRAINT gfx_sync_path_status_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'running'::text, 'synced'::text, 'failed'::text])))
);

-- TABLE platform.gfx_sync_tombstones
CREATE TABLE platform.gfx_sync_tombstones (
    table_name text NOT NULL,
    row_key text NOT NULL,
    deleted_at timestamp with time zone DEFAULT now() NOT NULL,
    origin text NOT NULL
);

-- TABLE public.activity_log
CREATE TABLE public.activity_log (
    id bigint NOT NULL,
    action text NOT NULL,
    entity_type text,
    entity_id text,
    actor text DEFAULT CURRENT_USER NOT NULL,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

-- TABLE public.cue_sheets
CREATE TABLE public.cue_sheets (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    session_id bigint,
    sheet_name text NOT NULL,
    segment_no integer DEFAULT 1 NOT NULL,
    cue_type text NOT NULL,
    cue_at timestamp with time zone,
    content jsonb DEFAULT '{}'::jsonb NOT NULL,
    operator text,
    status text DEFAULT 'draft'::text NOT NULL,
    version integer DEFAULT 1 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    sync_origin text DEFAULT 'supabase'::text NOT NULL
);

-- TABLE public.gfx_hand_players
CREATE TABLE public.gfx_hand_players (
    id bigint NOT NULL,
    hand_id bigint NOT NULL,
    player_id bigint NOT NULL,
    seat_no smallint NOT NULL,
    hole_cards text[],
    start_stack numeric(16,2),
    end_stack numeric(16,2),
    net_result numeric(16,2),
    is_winner boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT gfx_hand_players_seat_no_check CHECK (((seat_no >= 1) AND (seat_no <= 10)))
);

-- TABLE public.gfx_hands
CREATE TABLE public.gfx_hands (
    id bigint NOT NULL,
    session_id bigint NOT NULL,
    hand_number integer NOT NULL,
    started_at timestamp with time zone NOT NULL,
    ended_at timestamp with time zone,
    button_seat smallint,
    small_blind numeric(14,2),
    big_blind numeric(14,2),
    pot_size numeric(14,2) DEFAULT 0 NOT NULL,
    board_cards text[],
    payload jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

-- TABLE public.gfx_players
CREATE TABLE public.gfx_players (
    id bigint NOT NULL,
    player_code text NOT NULL,
    display_name text NOT NULL,
    name_ko text,
    nationality text,
    photo_url text,
    total_hands integer DEFAULT 0 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

-- TABLE public.gfx_sessions
CREATE TABLE public.gfx_sessions (
    id bigint NOT NULL,
    session_code text NOT NULL,
    event_name text NOT NULL,
    table_name text NOT NULL,
    venue text,
    status text DEFAULT 'scheduled'::text NOT NULL,
    gfx_version text,
    started_at timestamp with time zone,
    ended_at timestamp with time zone,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

-- TABLE public.player_overrides
CREATE TABLE public.player_overrides (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    player_id bigint NOT NULL,
    field_name text NOT NULL,
    override_value text,
    reason text,
    is_active boolean DEFAULT true NOT NULL,
    created_by text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    sync_origin text DEFAULT 'supabase'::text NOT NULL
);

-- TABLE public.profile_images
CREATE TABLE public.profile_images (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    player_id bigint NOT NULL,
    storage_path text NOT NULL,
    mime_type text NOT NULL,
    width integer,
    height integer,
    byte_size integer,
    sha256 text,
    thumbnail bytea,
    is_primary boolean DEFAULT false NOT NULL,
    uploaded_by text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    sync_origin text DEFAULT 'supabase'::text NOT NULL
);

-- TABLE public.render_queue
CREATE TABLE public.render_queue (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    job_type text NOT NULL,
    session_id bigint,
    hand_id bigint,
    player_id bigint,
    template_name text NOT NULL,
    params jsonb DEFAULT '{}'::jsonb NOT NULL,
    priority smallint DEFAULT 5 NOT NULL,
    requested_by text,
    status text DEFAULT 'queued'::text NOT NULL,
    progress smallint DEFAULT 0 NOT NULL,
    output_url text,
    error_message text,
    rendered_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    sync_origin text DEFAULT 'supabase'::text NOT NULL
);

-- TABLE public.sync_log
CREATE TABLE public.sync_log (
    id bigint NOT NULL,
    run_id text,
    source text NOT NULL,
    entity_type text NOT NULL,
    method text NOT NULL,
    operation text NOT NULL,
    direction text,
    status text NOT NULL,
    records_read bigint DEFAULT 0 NOT NULL,
    records_inserted bigint DEFAULT 0 NOT NULL,
    records_updated bigint DEFAULT 0 NOT NULL,
    records_deleted bigint DEFAULT 0 NOT NULL,
    records_failed bigint DEFAULT 0 NOT NULL,
    conflicts integer DEFAULT 0 NOT NULL,
    watermark_from timestamp with time zone,
    watermark_to timestamp with time zone,
    partition_key text,
    error_message text,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    duration_ms integer,
    CONSTRAINT sync_log_status_check CHECK ((status = ANY (ARRAY['success'::text, 'partial'::text, 'failed'::text, 'dry_run'::text])))
);

-- TABLE public.sync_status
CREATE TABLE public.sync_status (
    id bigint NOT NULL,
    source text NOT NULL,
    entity_type text NOT NULL,
    method text DEFAULT 'batch'::text NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    last_synced_at timestamp with time zone,
    last_attempt_at timestamp with time zone,
    records_synced bigint DEFAULT 0 NOT NULL,
    records_failed bigint DEFAULT 0 NOT NULL,
    consecutive_failures integer DEFAULT 0 NOT NULL,
    sync_interval interval DEFAULT '00:15:00'::interval NOT NULL,
    next_sync_at timestamp with time zone,
    watermark timestamp with time zone,
    last_error text,
    last_run_id text,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    paused_at timestamp with time zone,
    paused_by text,
    paused_reason text,
    CONSTRAINT sync_status_method_check CHECK ((method = ANY (ARRAY['cdc'::text, 'batch'::text, 'two_way'::text, 'reverse'::text]))),
    CONSTRAINT sync_status_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'running'::text, 'synced'::text, 'failed'::text, 'paused'::text])))
);

-- TABLE public.wsop_chip_counts
CREATE TABLE public.wsop_chip_counts (
    id bigint NOT NULL,
    event_id bigint NOT NULL,
    player_id bigint NOT NULL,
    day_label text NOT NULL,
    level integer,
    chip_count bigint NOT NULL,
    table_no integer,
    seat_no smallint,
    recorded_at timestamp with time zone NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT wsop_chip_counts_chip_count_check CHECK ((chip_count >= 0))
);

-- TABLE public.wsop_events
CREATE TABLE public.wsop_events (
    id bigint NOT NULL,
    event_code text NOT NULL,
    name text NOT NULL,
    buy_in numeric(12,2),
    game_type text,
    venue text,
    starts_at timestamp with time zone,
    ends_at timestamp with time zone,
    status text DEFAULT 'scheduled'::text NOT NULL,
    entrants integer,
    prize_pool numeric(16,2),
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

-- TABLE public.wsop_players
CREATE TABLE public.wsop_players (
    id bigint NOT NULL,
    wsop_player_id text NOT NULL,
    first_name text NOT NULL,
    last_name text NOT NULL,
    name_ko text,
    country text,
    city text,
    bracelets integer DEFAULT 0 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT wsop_players_country_check CHECK (((country IS NULL) OR (country ~ '^[A-Z]{2}$'::text)))
);

-- TRIGGER public.cue_sheets trg_cue_sheets_tombstone
CREATE TRIGGER trg_cue_sheets_tombstone AFTER DELETE ON public.cue_sheets FOR EACH ROW WHEN ((COALESCE(current_setting('gfx_sync.applying'::text, true), ''::text) <> 'on'::text)) EXECUTE FUNCTION public.gfx_tombstone_two_way('supabase');

-- TRIGGER public.cue_sheets trg_cue_sheets_touch
CREATE TRIGGER trg_cue_sheets_touch BEFORE INSERT OR UPDATE ON public.cue_sheets FOR EACH ROW EXECUTE FUNCTION public.gfx_touch_two_way('supabase');

-- TRIGGER public.cue_sheets trigger_cue_sheets_notify
CREATE TRIGGER trigger_cue_sheets_notify AFTER INSERT OR DELETE OR UPDATE ON public.cue_sheets FOR EACH ROW EXECUTE FUNCTION public.notify_override_change();

-- TRIGGER public.gfx_hand_players trg_gfx_hand_players_local_edit
CREATE TRIGGER trg_gfx_hand_players_local_edit AFTER INSERT OR DELETE OR UPDATE ON public.gfx_hand_players FOR EACH ROW WHEN ((COALESCE(current_setting('gfx_sync.applying'::text, true), ''::text) <> 'on'::text)) EXECUTE FUNCTION public.gfx_record_local_edit();

-- TRIGGER public.gfx_hands trg_gfx_hands_local_edit
CREATE TRIGGER trg_gfx_hands_local_edit AFTER INSERT OR DELETE OR UPDATE ON public.gfx_hands FOR EACH ROW WHEN ((COALESCE(current_setting('gfx_sync.applying'::text, true), ''::text) <> 'on'::text)) EXECUTE FUNCTION public.gfx_record_local_edit();

-- TRIGGER public.gfx_players trg_gfx_players_local_edit
CREATE TRIGGER trg_gfx_players_local_edit AFTER INSERT OR DELETE OR UPDATE ON public.gfx_players FOR EACH ROW WHEN ((COALESCE(current_setting('gfx_sync.applying'::text, true), ''::text) <> 'on'::text)) EXECUTE FUNCTION public.gfx_record_local_edit();

-- TRIGGER public.gfx_sessions trg_gfx_sessions_local_edit
CREATE TRIGGER trg_gfx_sessions_local_edit AFTER INSERT OR DELETE OR UPDATE ON public.gfx_sessions FOR EACH ROW WHEN ((COALESCE(current_setting('gfx_sync.applying'::text, true), ''::text) <> 'on'::text)) EXECUTE FUNCTION public.gfx_record_local_edit();

-- TRIGGER public.player_overrides trg_player_overrides_tombstone
CREATE TRIGGER trg_player_overrides_tombstone AFTER DELETE ON public.player_overrides FOR EACH ROW WHEN ((COALESCE(current_setting('gfx_sync.applying'::text, true), ''::text) <> 'on'::text)) EXECUTE FUNCTION public.gfx_tombstone_two_way('supabase');

-- TRIGGER public.player_overrides trg_player_overrides_touch
CREATE TRIGGER trg_player_overrides_touch BEFORE INSERT OR UPDATE ON public.player_overrides FOR EACH ROW EXECUTE FUNCTION public.gfx_touch_two_way('supabase');

-- TRIGGER public.player_overrides trigger_override_notify
CREATE TRIGGER trigger_override_notify AFTER INSERT OR DELETE OR UPDATE ON public.player_overrides FOR EACH ROW EXECUTE FUNCTION public.notify_override_change();

-- TRIGGER public.profile_images trg_profile_images_tombstone
CREATE TRIGGER trg_profile_images_tombstone AFTER DELETE ON public.profile_images FOR EACH ROW WHEN ((COALESCE(current_setting('gfx_sync.applying'::text, true), ''::text) <> 'on'::text)) EXECUTE FUNCTION public.gfx_tombstone_two_way('supabase');

-- TRIGGER public.profile_images trg_profile_images_touch
CREATE TRIGGER trg_profile_images_touch BEFORE INSERT OR UPDATE ON public.profile_images FOR EACH ROW EXECUTE FUNCTION public.gfx_touch_two_way('supabase');

-- TRIGGER public.profile_images trigger_profile_images_notify
CREATE TRIGGER trigger_profile_images_notify AFTER INSERT OR DELETE OR UPDATE ON public.profile_images FOR EACH ROW EXECUTE FUNCTION public.notify_override_change();

-- TRIGGER public.render_queue trg_render_queue_tombstone
CREATE TRIGGER trg_render_queue_tombstone AFTER DELETE ON public.render_queue FOR EACH ROW WHEN ((COALESCE(current_setting('gfx_sync.applying'::text, true), ''::text) <> 'on'::text)) EXECUTE FUNCTION public.gfx_tombstone_two_way('supabase');

-- TRIGGER public.render_queue trg_render_queue_touch
CREATE TRIGGER trg_render_queue_touch BEFORE INSERT OR UPDATE ON public.render_queue FOR EACH ROW EXECUTE FUNCTION public.gfx_touch_two_way('supabase');

-- TRIGGER public.render_queue trigger_render_queue_notify
CREATE TRIGGER trigger_render_queue_notify AFTER INSERT OR DELETE OR UPDATE ON public.render_queue FOR EACH ROW EXECUTE FUNCTION public.notify_render_queue_change();

-- TRIGGER public.sync_status trg_sync_status_paths
CREATE TRIGGER trg_sync_status_paths BEFORE INSERT OR UPDATE ON public.sync_status FOR EACH ROW EXECUTE FUNCTION platform.gfx_sync_status_paths();

-- TRIGGER public.sync_status trg_sync_status_updated_at
CREATE TRIGGER trg_sync_status_updated_at BEFORE UPDATE ON public.sync_status FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

-- TRIGGER public.wsop_chip_counts trg_wsop_chip_counts_local_edit
CREATE TRIGGER trg_wsop_chip_counts_local_edit AFTER INSERT OR DELETE OR UPDATE ON public.wsop_chip_counts FOR EACH ROW WHEN ((COALESCE(current_setting('gfx_sync.applying'::text, true), ''::text) <> 'on'::text)) EXECUTE FUNCTION public.gfx_record_local_edit();

-- TRIGGER public.wsop_events trg_wsop_events_local_edit
CREATE TRIGGER trg_wsop_events_local_edit AFTER INSERT OR DELETE OR UPDATE ON public.wsop_events FOR EACH ROW WHEN ((COALESCE(current_setting('gfx_sync.applying'::text, true), ''::text) <> 'on'::text)) EXECUTE FUNCTION public.gfx_record_local_edit();

-- TRIGGER public.wsop_players trg_wsop_players_local_edit
CREATE TRIGGER trg_wsop_players_local_edit AFTER INSERT OR DELETE OR UPDATE ON public.wsop_players FOR EACH ROW WHEN ((COALESCE(current_setting('gfx_sync.applying'::text, true), ''::text) <> 'on'::text)) EXECUTE FUNCTION public.gfx_record_local_edit();

-- VIEW public.v_sync_dashboard
CREATE VIEW public.v_sync_dashboard AS
 SELECT s.source,
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
            WHEN (s.status = 'paused'::text) THEN 'PAUSED'::text
            WHEN (s.consecutive_failures > 5) THEN 'CRITICAL'::text
            WHEN (s.consecutive_failures > 2) THEN 'WARNING'::text
            WHEN (s.last_synced_at < (now() - (s.sync_interval * (2)::double precision))) THEN 'STALE'::text
            WHEN (s.status = 'failed'::text) THEN 'ERROR'::text
            ELSE 'HEALTHY'::text
        END AS health_status,
    EXTRACT(epoch FROM (now() - s.last_synced_at)) AS lag_seconds,
    s.paused_at,
    s.paused_by,
    s.paused_reason,
    ( SELECT jsonb_object_agg(p.path, jsonb_build_object('status', p.status, 'consecutive_failures', p.consecutive_failures, 'last_synced_at', p.last_synced_at, 'last_error', p.last_error)) AS jsonb_object_agg
           FROM platform.gfx_sync_path_status p
          WHERE ((p.source = s.source) AND (p.entity_type = s.entity_type))) AS paths
   FROM public.sync_status s
  ORDER BY
        CASE
            WHEN (s.consecutive_failures > 5) THEN 1
            WHEN (s.consecutive_failures > 2) THEN 2
            WHEN (s.status = 'failed'::text) THEN 3
            WHEN (s.status = 'paused'::text) THEN 4
            ELSE 5
        END, s.last_synced_at;
