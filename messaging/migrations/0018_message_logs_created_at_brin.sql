-- Issue 13 (1,000,000 recipients in linear time): created_at is summarized per block range (BRIN)
-- instead of indexed per row (B-tree, 0002). Only the daily statistics read it, by day windows,
-- and rows are appended in created_at order (a run's bulk load stamps one time): a BRIN index
-- answers those windows, while the B-tree took an entry for every row the COPY wrote and another
-- for every new row version the send's update writes (one of the 18 B-tree insertions a sent row
-- cost; `pg_waldump --stats` of a 1,000,000-row run: 17.9 B-tree records per row, 1.5 GB).
DROP INDEX IF EXISTS public.idx_message_logs_created_at;
CREATE INDEX IF NOT EXISTS idx_message_logs_created_at_brin
  ON public.message_logs USING brin (created_at) WITH (pages_per_range = 32);
