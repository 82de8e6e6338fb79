-- Seed 000 §1.1-1.4 and §3, as written: consultation_customers, consultation_records,
-- consultation_sync_logs, their checks, indexes, updated_at triggers and RLS (through the
-- platform's standard policies: authenticated reads, service_role writes, anon nothing).

CREATE TABLE IF NOT EXISTS public.consultation_customers (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  notion_page_id TEXT UNIQUE NOT NULL,
  customer_id TEXT UNIQUE NOT NULL,
  name TEXT NOT NULL,
  phone TEXT,
  gender TEXT CHECK (gender IN ('남', '여')),
  birth_date DATE,
  estimated_age INTEGER,
  address TEXT,
  special_note TEXT,
  face_embedding JSONB,
  google_drive_folder_id TEXT,
  consultation_count INTEGER DEFAULT 0,
  is_deleted BOOLEAN DEFAULT FALSE,
  synced_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  sync_status TEXT DEFAULT 'synced' CHECK (sync_status IN ('synced', 'pending', 'failed')),
  notion_updated_at TIMESTAMP WITH TIME ZONE,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

CREATE INDEX IF NOT EXISTS idx_consultation_customers_customer_id ON public.consultation_customers(customer_id);
CREATE INDEX IF NOT EXISTS idx_consultation_customers_notion_page_id ON public.consultation_customers(notion_page_id);
CREATE INDEX IF NOT EXISTS idx_consultation_customers_name ON public.consultation_customers(name);
CREATE INDEX IF NOT EXISTS idx_consultation_customers_phone ON public.consultation_customers(phone);
CREATE INDEX IF NOT EXISTS idx_consultation_customers_sync_status ON public.consultation_customers(sync_status);

CREATE TABLE IF NOT EXISTS public.consultation_records (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  notion_page_id TEXT UNIQUE NOT NULL,
  consultation_id TEXT UNIQUE NOT NULL,
  customer_id UUID NOT NULL REFERENCES public.consultation_customers(id),
  customer_notion_id TEXT NOT NULL,
  consultation_date DATE NOT NULL,
  symptoms TEXT NOT NULL,
  patient_condition TEXT,
  tongue_analysis TEXT,
  special_note TEXT,
  prescription TEXT,
  result TEXT,
  image_count INTEGER DEFAULT 0,
  google_drive_urls JSONB,
  supabase_image_urls JSONB,
  synced_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  sync_status TEXT DEFAULT 'synced' CHECK (sync_status IN ('synced', 'pending', 'failed')),
  notion_created_at TIMESTAMP WITH TIME ZONE,
  notion_updated_at TIMESTAMP WITH TIME ZONE,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

CREATE INDEX IF NOT EXISTS idx_consultation_records_consultation_id ON public.consultation_records(consultation_id);
CREATE INDEX IF NOT EXISTS idx_consultation_records_notion_page_id ON public.consultation_records(notion_page_id);
CREATE INDEX IF NOT EXISTS idx_consultation_records_customer_id ON public.consultation_records(customer_id);
CREATE INDEX IF NOT EXISTS idx_consultation_records_consultation_date ON public.consultation_records(consultation_date);
CREATE INDEX IF NOT EXISTS idx_consultation_records_sync_status ON public.consultation_records(sync_status);

CREATE TABLE IF NOT EXISTS public.consultation_sync_logs (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  sync_type TEXT NOT NULL CHECK (sync_type IN ('customers', 'consultations', 'images', 'full')),
  status TEXT NOT NULL CHECK (status IN ('started', 'completed', 'failed', 'partial')),
  total_records INTEGER DEFAULT 0,
  synced_records INTEGER DEFAULT 0,
  failed_records INTEGER DEFAULT 0,
  error_message TEXT,
  details JSONB,
  started_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  completed_at TIMESTAMP WITH TIME ZONE,
  duration_seconds INTEGER,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

CREATE INDEX IF NOT EXISTS idx_consultation_sync_logs_sync_type ON public.consultation_sync_logs(sync_type);
CREATE INDEX IF NOT EXISTS idx_consultation_sync_logs_status ON public.consultation_sync_logs(status);
CREATE INDEX IF NOT EXISTS idx_consultation_sync_logs_started_at ON public.consultation_sync_logs(started_at);

-- public.update_updated_at_column() is created once by the platform set (identical body).
DROP TRIGGER IF EXISTS update_consultation_customers_updated_at ON public.consultation_customers;
CREATE TRIGGER update_consultation_customers_updated_at
    BEFORE UPDATE ON public.consultation_customers
    FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

DROP TRIGGER IF EXISTS update_consultation_records_updated_at ON public.consultation_records;
CREATE TRIGGER update_consultation_records_updated_at
    BEFORE UPDATE ON public.consultation_records
    FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

SELECT platform.enable_standard_rls('public.consultation_customers');
SELECT platform.enable_standard_rls('public.consultation_records');
SELECT platform.enable_standard_rls('public.consultation_sync_logs');
