-- Issue 13 (1,000,000 recipients in linear time): batches are claimed in the order the run's rows
-- were loaded, not in idempotency-key order. Keys are hashes, so a key-ordered batch of 10,000
-- rows sat on ~10,000 random heap pages of the whole table; the bulk load (one COPY per run)
-- writes a run's rows in order, so a batch claimed by load position reads and writes a few
-- hundred contiguous pages, and the settle's new row versions land next to them.
--
-- run_seq: the row's position in its run's bulk load (1, 2, ... written by the COPY). Rows loaded
-- before this migration, and rows inserted outside the bulk load, are 0: they are still claimed
-- (equal positions are picked up by the claim's sweep from the start of the run), only not in
-- load order. Pending rows are numbered here in their physical order, so an execution that is
-- resumed after the upgrade is claimed in order too.
ALTER TABLE public.message_logs ADD COLUMN IF NOT EXISTS run_seq BIGINT NOT NULL DEFAULT 0;

UPDATE public.message_logs m SET run_seq = s.n
FROM (SELECT id, row_number() OVER (PARTITION BY workflow_run_id ORDER BY ctid) AS n
      FROM public.message_logs WHERE status = 'pending' AND run_seq = 0) s
WHERE m.id = s.id;

-- The claim's index: a run's pending rows by load position. It replaces the pending rows by
-- idempotency key (0003), whose entries the COPY inserted at random places (a hash per row).
-- status stays in the predicate: the settle (pending -> sent/failed) adds no entry here.
CREATE INDEX IF NOT EXISTS idx_message_logs_run_seq_pending
  ON public.message_logs(workflow_run_id, run_seq) WHERE status = 'pending';
DROP INDEX IF EXISTS public.idx_message_logs_run_pending;
