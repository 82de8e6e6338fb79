-- Issue 13 (a 1,000,000-recipient run in linear time): a group's registration (SOLAPI's message id
-- per idempotency key, in request order) is stored on the group row in the transaction that marks
-- the group 'sending', instead of rewriting every message_logs row of the batch. Every write of a
-- message_logs row inserts into all of its indexes (none of its updates can be HOT), so this
-- removes one of the three writes per row; the settle writes status and message id in one update
-- and clears these columns. NULL on groups registered before this migration (their rows carry
-- provider_message_id already).
ALTER TABLE public.messaging_send_groups ADD COLUMN IF NOT EXISTS registered_keys TEXT[];
ALTER TABLE public.messaging_send_groups ADD COLUMN IF NOT EXISTS registered_ids TEXT[];

-- The keys a claim assigned to the group, stored on the group row in the claim's transaction:
-- a group's rows are found by them (the unique index on idempotency_key, a batch's size), so
-- provider_group_id needs no index and the claim's write of a row (send_attempted_at,
-- provider_group_id) can be a HOT update: no index entries at all, when the page has room
-- (fillfactor 80 on message_logs leaves it on the pages COPY writes from now on; the space of a
-- claimed row's previous version is pruned on the page without VACUUM).
ALTER TABLE public.messaging_send_groups ADD COLUMN IF NOT EXISTS claimed_keys TEXT[];
DROP INDEX IF EXISTS public.idx_message_logs_pending_group;
ALTER TABLE public.message_logs SET (fillfactor = 80);
