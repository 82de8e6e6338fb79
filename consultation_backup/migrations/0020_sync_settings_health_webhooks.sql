-- Issue 10 §3/§4: settings that must hold across every run, the health of the sources, and
-- Notion webhook events received.
--
-- 1. Conflict strategy per table (seed 000 §2.2), read by every run (sensor, nightly, backfill),
--    so `manual` set once holds until changed. No row = notion_wins (the seed's default).
CREATE TABLE IF NOT EXISTS public.consultation_sync_settings (
  table_name TEXT PRIMARY KEY
    CHECK (table_name IN ('consultation_customers', 'consultation_records')),
  conflict_strategy TEXT NOT NULL DEFAULT 'notion_wins'
    CHECK (conflict_strategy IN ('notion_wins', 'latest_wins', 'manual')),
  updated_by TEXT,
  updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);
SELECT platform.enable_standard_rls('public.consultation_sync_settings');

-- 2. Health of the sources (seed 004: health check every minute), written by the health sensor:
--    the latest probe per service, and how long it has been failing.
CREATE TABLE IF NOT EXISTS public.consultation_service_health (
  service TEXT PRIMARY KEY CHECK (service IN ('notion', 'google_drive', 'supabase_storage')),
  healthy BOOLEAN NOT NULL,
  latency_ms INTEGER,
  error TEXT,
  consecutive_failures INTEGER NOT NULL DEFAULT 0,
  unhealthy_since TIMESTAMP WITH TIME ZONE,
  last_healthy_at TIMESTAMP WITH TIME ZONE,
  checked_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);
SELECT platform.enable_standard_rls('public.consultation_service_health');

-- 3. Notion webhooks (optional): the subscription's verification token (sent once by Notion, the
--    HMAC key of every later event) and every verified event, kept until the sensor handled it.
--    Events hold ids and types only (Notion sends no property values); service_role only.
CREATE TABLE IF NOT EXISTS public.consultation_webhook_subscriptions (
  id BIGSERIAL PRIMARY KEY,
  verification_token TEXT NOT NULL UNIQUE,
  received_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);
CREATE TABLE IF NOT EXISTS public.consultation_webhook_events (
  event_id TEXT PRIMARY KEY,
  event_type TEXT NOT NULL,
  entity_id TEXT,
  entity_type TEXT,
  data_source_id TEXT,
  event_timestamp TIMESTAMP WITH TIME ZONE,
  payload JSONB NOT NULL,
  received_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
  handled_at TIMESTAMP WITH TIME ZONE
);
CREATE INDEX IF NOT EXISTS idx_consultation_webhook_events_pending
    ON public.consultation_webhook_events(received_at) WHERE handled_at IS NULL;
ALTER TABLE public.consultation_webhook_subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.consultation_webhook_events ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS service_role_all ON public.consultation_webhook_subscriptions;
CREATE POLICY service_role_all ON public.consultation_webhook_subscriptions
    FOR ALL TO service_role USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS service_role_all ON public.consultation_webhook_events;
CREATE POLICY service_role_all ON public.consultation_webhook_events
    FOR ALL TO service_role USING (true) WITH CHECK (true);
REVOKE ALL ON public.consultation_webhook_subscriptions, public.consultation_webhook_events
    FROM anon, authenticated;
GRANT ALL ON public.consultation_webhook_subscriptions, public.consultation_webhook_events
    TO service_role;
