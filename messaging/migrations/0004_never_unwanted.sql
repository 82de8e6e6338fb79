-- Never unwanted: suppression list, quiet-hour deferral, explicit Alimtalk -> SMS fallback,
-- cancelling a running send. Added columns and tables only.

-- An advertising message due in quiet hours (21:00-08:00 Asia/Seoul) waits: not sent before.
ALTER TABLE public.message_logs ADD COLUMN IF NOT EXISTS not_before TIMESTAMP WITH TIME ZONE;
-- The rendered, length-checked SMS/LMS text SOLAPI substitutes when an Alimtalk is not delivered.
ALTER TABLE public.message_logs ADD COLUMN IF NOT EXISTS fallback_content TEXT;
CREATE INDEX IF NOT EXISTS idx_message_logs_not_before
  ON public.message_logs(not_before) WHERE status = 'pending' AND not_before IS NOT NULL;
-- frequency caps count a recipient's advertising messages per day
CREATE INDEX IF NOT EXISTS idx_message_logs_recipient_sent
  ON public.message_logs(recipient_phone, sent_at) WHERE sent_at IS NOT NULL;

-- A running send stops before its next batch once this is set (CLI `messaging cancel`).
ALTER TABLE public.workflow_runs ADD COLUMN IF NOT EXISTS cancel_requested_at TIMESTAMP WITH TIME ZONE;
ALTER TABLE public.workflow_runs ADD COLUMN IF NOT EXISTS cancel_requested_by TEXT;

-- Numbers that opted out of advertising (080 line, reply, by hand). Checked at send time.
CREATE TABLE IF NOT EXISTS public.messaging_suppressions (
  phone VARCHAR(20) PRIMARY KEY,
  source VARCHAR(20) NOT NULL CHECK (source IN ('080', 'reply', 'manual')),
  reason TEXT,
  added_by TEXT NOT NULL,
  added_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);
-- Every add and remove, with who and when (a removed number leaves its history here).
CREATE TABLE IF NOT EXISTS public.messaging_suppression_log (
  id BIGSERIAL PRIMARY KEY,
  phone VARCHAR(20) NOT NULL,
  action VARCHAR(10) NOT NULL CHECK (action IN ('add', 'remove')),
  source VARCHAR(20),
  reason TEXT,
  actor TEXT NOT NULL,
  at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_messaging_suppression_log_phone
  ON public.messaging_suppression_log(phone, at);

-- Phone numbers: service_role only.
ALTER TABLE public.messaging_suppressions ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS service_role_all ON public.messaging_suppressions;
CREATE POLICY service_role_all ON public.messaging_suppressions
  FOR ALL TO service_role USING (true) WITH CHECK (true);
GRANT ALL ON public.messaging_suppressions TO service_role;
ALTER TABLE public.messaging_suppression_log ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS service_role_all ON public.messaging_suppression_log;
CREATE POLICY service_role_all ON public.messaging_suppression_log
  FOR ALL TO service_role USING (true) WITH CHECK (true);
GRANT ALL ON public.messaging_suppression_log TO service_role;
GRANT USAGE, SELECT ON SEQUENCE public.messaging_suppression_log_id_seq TO service_role;
