-- Personal data is service_role only (issue 13): message_logs, data_quarantine,
-- user_activity_logs, webhook payloads (messaging_webhook_events) and system_settings.
-- authenticated reads views that carry no phone numbers, names, message text, payloads, IPs or
-- setting values (numbers masked where the app needs one); anon reads nothing.
--
-- data_quarantine is a platform table (resources/migrations/0002, standard RLS); its policy is
-- tightened here because messaging is what puts phone numbers into it. The views are owned by
-- the migration role (security definer, the PostgreSQL default), so they read the rows that RLS
-- hides from authenticated, and expose only the columns below.

CREATE OR REPLACE FUNCTION public.mask_phone(phone text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN phone IS NULL THEN NULL
    WHEN length(regexp_replace(phone, '\D', '', 'g')) < 8 THEN '****'
    ELSE left(regexp_replace(phone, '\D', '', 'g'), 3) || '-****-'
         || right(regexp_replace(phone, '\D', '', 'g'), 4)
  END
$$;

-- Any phone-like number inside free text (quarantine reasons, error messages) -> masked.
CREATE OR REPLACE FUNCTION public.mask_phones_in_text(body text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT regexp_replace(body, '(\+?\d{2,3})[- .]?\d{3,4}[- .]?(\d{4})', '\1-****-\2', 'g')
$$;

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['message_logs', 'data_quarantine', 'user_activity_logs',
                           'messaging_webhook_events', 'system_settings'] LOOP
    EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('DROP POLICY IF EXISTS authenticated_read ON public.%I', t);
    EXECUTE format('REVOKE ALL ON public.%I FROM authenticated, anon', t);
    EXECUTE format('DROP POLICY IF EXISTS service_role_all ON public.%I', t);
    EXECUTE format('CREATE POLICY service_role_all ON public.%I FOR ALL TO service_role'
                   ' USING (true) WITH CHECK (true)', t);
    EXECUTE format('GRANT ALL ON public.%I TO service_role', t);
  END LOOP;
END $$;

CREATE OR REPLACE VIEW public.message_logs_safe AS
SELECT id, workflow_run_id, template_id, public.mask_phone(recipient_phone) AS recipient_phone_masked,
       message_type, status, provider, provider_message_id, provider_group_id, cost, sent_at,
       delivered_at, failed_at, error_code, public.mask_phones_in_text(error_message) AS error_message,
       created_at
FROM public.message_logs;

CREATE OR REPLACE VIEW public.data_quarantine_safe AS
SELECT id, domain, source, item_id, public.mask_phones_in_text(reason) AS reason, run_id,
       first_seen_at, last_seen_at, occurrences, resolved_at
FROM public.data_quarantine;

CREATE OR REPLACE VIEW public.user_activity_logs_safe AS
SELECT id, user_id, action, resource_type, resource_id, created_at
FROM public.user_activity_logs;

CREATE OR REPLACE VIEW public.messaging_webhook_events_safe AS
SELECT id, event_id, workflow_id, status, workflow_run_id,
       public.mask_phones_in_text(error_message) AS error_message, received_at, processed_at
FROM public.messaging_webhook_events;

CREATE OR REPLACE VIEW public.system_settings_safe AS
SELECT id, setting_key, description, category, is_encrypted, updated_by, updated_at
FROM public.system_settings;

REVOKE ALL ON public.message_logs_safe, public.data_quarantine_safe, public.user_activity_logs_safe,
  public.messaging_webhook_events_safe, public.system_settings_safe FROM anon, authenticated;
GRANT SELECT ON public.message_logs_safe, public.data_quarantine_safe,
  public.user_activity_logs_safe, public.messaging_webhook_events_safe, public.system_settings_safe
  TO authenticated, service_role;
