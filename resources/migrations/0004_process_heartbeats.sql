-- Long-running processes outside Dagster runs (CDC worker, listeners, webhook receivers,
-- Celery workers) each have one heartbeat row, written every few seconds by whoever supervises
-- them (`platform up` locally, the process itself where it runs alone). A sensor turns a stale
-- or stopped heartbeat into a notification.
CREATE TABLE IF NOT EXISTS platform.process_heartbeats (
    name           text PRIMARY KEY,
    host           text NOT NULL,
    pid            integer,
    status         text NOT NULL CHECK (status IN ('running', 'restarting', 'stopped')),
    started_at     timestamptz NOT NULL,
    beat_at        timestamptz NOT NULL DEFAULT now(),
    restarts       integer NOT NULL DEFAULT 0,
    last_exit_code integer,
    details        jsonb NOT NULL DEFAULT '{}'::jsonb
);
