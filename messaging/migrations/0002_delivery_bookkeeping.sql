-- What exactly-once sending and durable webhooks need beyond seed 001 (added columns only; the
-- seed's columns, checks and indexes are unchanged).

-- A workflow execution is identified by an execution key (schedule tick, event range, webhook
-- event, or the Dagster root run id for a manual launch), so a retried run resumes the same
-- workflow_runs row instead of starting a second one.
ALTER TABLE public.workflow_runs ADD COLUMN IF NOT EXISTS execution_key TEXT;
ALTER TABLE public.workflow_runs ADD COLUMN IF NOT EXISTS dagster_run_id TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS uq_workflow_runs_execution_key ON public.workflow_runs(execution_key);

-- One row per (execution, recipient): the idempotency key travels to SOLAPI in customFields.
-- send_attempted_at is set (and committed) before the request; a pending row with it set is
-- reconciled by status lookup, never blindly re-sent.
ALTER TABLE public.message_logs ADD COLUMN IF NOT EXISTS idempotency_key TEXT;
ALTER TABLE public.message_logs ADD COLUMN IF NOT EXISTS send_attempted_at TIMESTAMP WITH TIME ZONE;
ALTER TABLE public.message_logs ADD COLUMN IF NOT EXISTS provider_group_id VARCHAR(255);
CREATE UNIQUE INDEX IF NOT EXISTS uq_message_logs_idempotency_key ON public.message_logs(idempotency_key);
CREATE INDEX IF NOT EXISTS idx_message_logs_created_at ON public.message_logs(created_at);
CREATE INDEX IF NOT EXISTS idx_message_logs_provider_message_id ON public.message_logs(provider_message_id)
  WHERE provider_message_id IS NOT NULL;

-- Webhook events are stored by the endpoint (which runs without Dagster) and consumed by a sensor.
CREATE TABLE IF NOT EXISTS public.messaging_webhook_events (
  id BIGSERIAL PRIMARY KEY,
  event_id TEXT NOT NULL UNIQUE,
  workflow_id UUID NOT NULL REFERENCES public.workflows(id) ON DELETE CASCADE,
  payload JSONB NOT NULL DEFAULT '{}',
  source_ip INET,
  status VARCHAR(20) NOT NULL DEFAULT 'received'
    CHECK (status IN ('received', 'processed', 'failed')),
  workflow_run_id UUID REFERENCES public.workflow_runs(id) ON DELETE SET NULL,
  error_message TEXT,
  received_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
  processed_at TIMESTAMP WITH TIME ZONE
);
CREATE INDEX IF NOT EXISTS idx_messaging_webhook_events_status ON public.messaging_webhook_events(status);
SELECT platform.enable_standard_rls('public.messaging_webhook_events');
