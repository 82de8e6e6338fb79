-- Issue 13 (1,000,000 recipients in linear time): where the claim's last sweep starts. Batches
-- are claimed upward from a position (0015); rows handed back below it (an abandoned group, a
-- request cut to fit 15 MB, a lookup that found nothing) are picked up by a sweep once the rows
-- above run out. That sweep read the run's pending-rows index from the start: every entry of
-- every row already sent (the index keeps them until VACUUM), 1.5-2.3 s at the end of a
-- 1,000,000-row run. Each hand-back (and each quiet-hours deferral) now records the lowest load
-- position it touched, in the statement that changes the rows, and the sweep starts there; with
-- nothing handed back there is no sweep. A new attempt starts from the beginning of its run and
-- clears the mark.
ALTER TABLE public.workflow_runs ADD COLUMN IF NOT EXISTS handed_back_from BIGINT;
COMMENT ON COLUMN public.workflow_runs.handed_back_from IS
  'lowest message_logs.run_seq handed back to the queue since the last sweep (NULL: none)';
