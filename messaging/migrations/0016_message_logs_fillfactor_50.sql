-- Issue 13: batches are claimed in load order (0015), so one claim updates every row of a page
-- in one transaction. The claim's write (send_attempted_at, provider_group_id: no index) is a HOT
-- update only when the new version fits on the same page: with fillfactor 80 a page had room for
-- about a fifth of its rows' copies and most claims inserted into every index. 50 leaves room for
-- a copy of each row; the settle (pending -> sent, indexed columns, never HOT) then finds the
-- claim's dead versions pruned and puts its versions on the same page too. Measured with a
-- scratch claim+settle loop (100,000 then 1,000,000 rows, 10,000 per batch): claims 0.7-0.9 s ->
-- 0.2-0.3 s per batch, 1,100,000 of 2,200,000 updates HOT (was 222,000). Applies to pages
-- written from now on (each run's COPY).
ALTER TABLE public.message_logs SET (fillfactor = 50);
