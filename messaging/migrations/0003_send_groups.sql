-- SOLAPI's group flow (create a group, add the batch's messages, send the group once). The
-- group id is stored (committed) before anything is added or sent; a group whose send was
-- requested ('sending') is settled by reading that group's status and messages, never sent again.
CREATE TABLE IF NOT EXISTS public.messaging_send_groups (
  provider_group_id TEXT PRIMARY KEY,
  workflow_run_id UUID NOT NULL REFERENCES public.workflow_runs(id) ON DELETE CASCADE,
  state VARCHAR(20) NOT NULL DEFAULT 'created'
    CHECK (state IN ('created', 'sending', 'sent', 'abandoned')),
  message_count INTEGER NOT NULL DEFAULT 0,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
  send_requested_at TIMESTAMP WITH TIME ZONE,
  settled_at TIMESTAMP WITH TIME ZONE,
  note TEXT
);
CREATE INDEX IF NOT EXISTS idx_messaging_send_groups_open
  ON public.messaging_send_groups(workflow_run_id) WHERE state IN ('created', 'sending');
CREATE INDEX IF NOT EXISTS idx_message_logs_pending_group
  ON public.message_logs(provider_group_id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS idx_message_logs_run_pending
  ON public.message_logs(workflow_run_id, idempotency_key) WHERE status = 'pending';

-- service_role only (operational bookkeeping; no personal data, but nothing for the app either)
ALTER TABLE public.messaging_send_groups ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS service_role_all ON public.messaging_send_groups;
CREATE POLICY service_role_all ON public.messaging_send_groups
  FOR ALL TO service_role USING (true) WITH CHECK (true);
GRANT ALL ON public.messaging_send_groups TO service_role;
