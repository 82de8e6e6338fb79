-- One notifications table for the whole platform (seed 003 §6.2 defined it for gfx_sync; every
-- domain writes it now). A delivery sensor sends undelivered rows to the configured channel
-- (Slack bot token or incoming webhook) and marks them delivered; without a channel the table
-- is the channel. The seed's columns stay as the seed defines them.
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
ALTER TABLE public.notifications
    ADD COLUMN IF NOT EXISTS domain text NOT NULL DEFAULT 'gfx_sync',
    ADD COLUMN IF NOT EXISTS dedupe_key text,
    ADD COLUMN IF NOT EXISTS delivered_at timestamptz,
    ADD COLUMN IF NOT EXISTS delivery_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS last_delivery_error text,
    ADD COLUMN IF NOT EXISTS next_delivery_at timestamptz;
-- A caller that passes a dedupe key writes one row per key (e.g. one per alert and day).
CREATE UNIQUE INDEX IF NOT EXISTS notifications_dedupe
    ON public.notifications (domain, dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_notifications_undelivered
    ON public.notifications (id) WHERE delivered_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_notifications_unread
    ON public.notifications (type, created_at DESC) WHERE NOT is_read;
-- The seed's dashboard shows notifications to signed-in staff; writers keep personal data
-- (phones, message text, names) out of title, message and metadata.
SELECT platform.enable_standard_rls('public.notifications');
