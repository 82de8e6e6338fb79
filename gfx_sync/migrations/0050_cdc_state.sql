-- gfx_sync CDC (issue 5): the applied position of each replication slot, written in the SAME
-- target transaction as the rows it covers, so a crash can neither lose nor repeat a source
-- transaction. Numbered 0050 to stay clear of the batch sync's migrations.
CREATE SCHEMA IF NOT EXISTS platform;

CREATE TABLE IF NOT EXISTS platform.gfx_cdc_state (
    slot_name             text PRIMARY KEY,
    source_database       text NOT NULL,
    publication           text NOT NULL,
    last_commit_lsn       pg_lsn NOT NULL,          -- end LSN of the last applied source transaction
    last_commit_ts        timestamptz,              -- its commit time on the source
    last_applied_at       timestamptz,              -- when it committed here
    snapshot_lsn          pg_lsn,                   -- consistent point of the initial copy
    snapshot_completed_at timestamptz,
    snapshot_rows         bigint NOT NULL DEFAULT 0,
    transactions_applied  bigint NOT NULL DEFAULT 0,
    changes_applied       bigint NOT NULL DEFAULT 0,
    last_apply_lag_ms     double precision,         -- commit on source -> commit here, last batch
    stopped_reason        text,                     -- set when the stream stopped on a policy (schema drift)
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- One row per (slot, check) while a slot is unhealthy: the notification is raised once, not
-- on every tick, and cleared when the slot recovers.
CREATE TABLE IF NOT EXISTS platform.gfx_cdc_alerts (
    slot_name   text NOT NULL,
    alert       text NOT NULL,                      -- inactive_slot_wal, lag_bytes, slot_lost, schema_drift
    message     text NOT NULL,
    details     jsonb,
    raised_at   timestamptz NOT NULL DEFAULT now(),
    cleared_at  timestamptz,
    PRIMARY KEY (slot_name, alert, raised_at)
);
CREATE INDEX IF NOT EXISTS idx_gfx_cdc_alerts_open ON platform.gfx_cdc_alerts (slot_name, alert) WHERE cleared_at IS NULL;
