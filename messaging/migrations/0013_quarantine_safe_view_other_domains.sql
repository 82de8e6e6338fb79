-- data_quarantine_safe showed every domain's reasons to authenticated; other domains' reasons may
-- quote the refused values (a birth date, a chip count, a name). Authenticated sees the item and
-- when, and the reason only for messaging's own entries (phones masked); service_role reads the
-- table itself.
CREATE OR REPLACE VIEW public.data_quarantine_safe AS
SELECT id, domain, source, item_id,
       CASE WHEN domain = 'messaging' THEN public.mask_phones_in_text(reason) END AS reason,
       run_id, first_seen_at, last_seen_at, occurrences, resolved_at
FROM public.data_quarantine;
