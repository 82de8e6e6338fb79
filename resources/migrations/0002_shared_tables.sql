-- Bad input is kept, not dropped: every domain quarantines an item it cannot load here,
-- with the item's id and the reason, and the rest of the batch goes on.
CREATE TABLE IF NOT EXISTS public.data_quarantine (
    id            bigserial PRIMARY KEY,
    domain        text NOT NULL,
    source        text NOT NULL,               -- e.g. notion/consultations, external_pg/gfx_hands
    item_id       text NOT NULL,
    reason        text NOT NULL,
    payload       jsonb,
    run_id        text,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    occurrences   integer NOT NULL DEFAULT 1,
    resolved_at   timestamptz,
    CONSTRAINT data_quarantine_unique_open UNIQUE (domain, source, item_id, reason)
);
CREATE INDEX IF NOT EXISTS idx_data_quarantine_open ON public.data_quarantine (domain, source) WHERE resolved_at IS NULL;
SELECT platform.enable_standard_rls('public.data_quarantine');

-- Cursors and watermarks live beside the data they describe, written in the same
-- transaction as the load they follow.
CREATE TABLE IF NOT EXISTS platform.sync_cursors (
    domain     text NOT NULL,
    name       text NOT NULL,
    value      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain, name)
);
