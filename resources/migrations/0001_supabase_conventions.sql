-- Supabase conventions on a plain PostgreSQL: API roles get table privileges by default and
-- Row Level Security decides what each may see. The seeds' development policy that opens
-- everything to anon is deliberately not copied.
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO anon, authenticated, service_role;

-- One call gives a table the platform's standard policies: authenticated users read,
-- service_role writes (it also has BYPASSRLS, as on Supabase), anon sees nothing.
CREATE OR REPLACE FUNCTION platform.enable_standard_rls(target regclass)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
  EXECUTE format('DROP POLICY IF EXISTS authenticated_read ON %s', target);
  EXECUTE format('CREATE POLICY authenticated_read ON %s FOR SELECT TO authenticated USING (true)', target);
  EXECUTE format('DROP POLICY IF EXISTS service_role_all ON %s', target);
  EXECUTE format('CREATE POLICY service_role_all ON %s FOR ALL TO service_role USING (true) WITH CHECK (true)', target);
  EXECUTE format('GRANT SELECT ON %s TO authenticated', target);
  EXECUTE format('GRANT ALL ON %s TO service_role', target);
END $$;

-- Shared updated_at trigger function (seed 000 §1.4, seed 001 §5.1).
CREATE OR REPLACE FUNCTION public.update_updated_at_column()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at = now();
  RETURN NEW;
END $$;
