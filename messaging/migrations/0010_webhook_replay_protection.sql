-- Webhook replay protection (issue 13): what the endpoint needs to acknowledge a repeated call
-- without storing (and so running) it twice.
--   signature_sha256: hash of the signature header; the same signed bytes seen again within the
--     5-minute window are a replay (the old signature covers neither the path nor the event id).
--   body_sha256: hash of the body; a sender retry without X-Webhook-Id (a new timestamp and
--     signature, the same body) to the same workflow within the window is the same event.
--   signature_scheme: 'v2' (method, path, timestamp, event id, body) or 'legacy'.
ALTER TABLE public.messaging_webhook_events ADD COLUMN IF NOT EXISTS signature_sha256 TEXT;
ALTER TABLE public.messaging_webhook_events ADD COLUMN IF NOT EXISTS body_sha256 TEXT;
ALTER TABLE public.messaging_webhook_events ADD COLUMN IF NOT EXISTS signature_scheme TEXT;
CREATE INDEX IF NOT EXISTS idx_messaging_webhook_events_signature
  ON public.messaging_webhook_events (signature_sha256, received_at) WHERE signature_sha256 IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_messaging_webhook_events_body
  ON public.messaging_webhook_events (workflow_id, body_sha256, received_at) WHERE body_sha256 IS NOT NULL;
