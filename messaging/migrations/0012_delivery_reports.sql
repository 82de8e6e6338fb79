-- SOLAPI delivery reports (issue 13): stored durably by the report receiver (messaging.webhook,
-- POST /solapi/reports), applied to message_logs idempotently; polling stays as the fallback and
-- gives up with a final 'unknown' after 72 hours.

-- 'unknown': no final delivery status from SOLAPI within 72 hours of the send (final for polling;
-- a report that still arrives is applied). The seed's five statuses are unchanged.
ALTER TABLE public.message_logs DROP CONSTRAINT IF EXISTS message_logs_status_check;
ALTER TABLE public.message_logs ADD CONSTRAINT message_logs_status_check
  CHECK (status IN ('pending', 'sent', 'delivered', 'failed', 'cancelled', 'unknown'));
CREATE INDEX IF NOT EXISTS idx_message_logs_awaiting_delivery
  ON public.message_logs(id) WHERE status = 'sent';

-- One row per SOLAPI report event (eventDataId); only ids and codes are kept (no recipient
-- number or text). applied_at is set once the report changed (or could not change) its row;
-- a report whose message is not recorded yet waits with applied_at NULL.
CREATE TABLE IF NOT EXISTS public.messaging_delivery_reports (
  id BIGSERIAL PRIMARY KEY,
  event_data_id TEXT NOT NULL UNIQUE,
  message_id TEXT NOT NULL,
  group_id TEXT,
  status_code TEXT NOT NULL,
  status_message TEXT,
  date_reported TEXT,
  retry_count INTEGER NOT NULL DEFAULT 0,
  received_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
  applied_at TIMESTAMP WITH TIME ZONE,
  applied_status TEXT
);
CREATE INDEX IF NOT EXISTS idx_messaging_delivery_reports_unapplied
  ON public.messaging_delivery_reports(message_id) WHERE applied_at IS NULL;

-- Webhook payloads are service_role only (see 0011).
ALTER TABLE public.messaging_delivery_reports ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.messaging_delivery_reports FROM anon, authenticated;
DROP POLICY IF EXISTS service_role_all ON public.messaging_delivery_reports;
CREATE POLICY service_role_all ON public.messaging_delivery_reports FOR ALL TO service_role
  USING (true) WITH CHECK (true);
GRANT ALL ON public.messaging_delivery_reports TO service_role;
GRANT USAGE, SELECT ON SEQUENCE public.messaging_delivery_reports_id_seq TO service_role;
