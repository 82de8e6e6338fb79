-- Message-automation platform schema (seed 001 §2, §4, §5, §7), on Supabase's public schema.
-- RLS: authenticated users read, service_role writes (platform.enable_standard_rls); the seed's
-- development policy that opens everything to anon is deliberately not copied.

-- 2.1.1 workflows
CREATE TABLE IF NOT EXISTS public.workflows (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  name VARCHAR(255) NOT NULL,
  description TEXT,
  status VARCHAR(50) DEFAULT 'draft'
    CHECK (status IN ('draft', 'active', 'paused', 'archived')),
  trigger_type VARCHAR(100) NOT NULL
    CHECK (trigger_type IN ('manual', 'schedule', 'event', 'webhook')),
  trigger_config JSONB DEFAULT '{}',
  target_config JSONB DEFAULT '{}',
  message_config JSONB DEFAULT '{}',
  variables JSONB DEFAULT '{}',
  schedule_config JSONB DEFAULT '{}',
  statistics JSONB DEFAULT '{}',
  last_run_at TIMESTAMP WITH TIME ZONE,
  next_run_at TIMESTAMP WITH TIME ZONE,
  created_by VARCHAR(255),
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

-- 2.1.2 workflow_runs
CREATE TABLE IF NOT EXISTS public.workflow_runs (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  workflow_id UUID REFERENCES public.workflows(id) ON DELETE CASCADE,
  status VARCHAR(50) NOT NULL
    CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
  trigger_type VARCHAR(100),
  target_count INTEGER DEFAULT 0,
  success_count INTEGER DEFAULT 0,
  failed_count INTEGER DEFAULT 0,
  total_cost DECIMAL(10,2) DEFAULT 0,
  error_message TEXT,
  execution_time_ms INTEGER,
  started_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  completed_at TIMESTAMP WITH TIME ZONE,
  logs JSONB DEFAULT '[]'
);

-- 2.2.1 message_templates
CREATE TABLE IF NOT EXISTS public.message_templates (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  name VARCHAR(255) NOT NULL,
  description TEXT,
  category VARCHAR(100)
    CHECK (category IN ('welcome', 'reminder', 'promotion',
                       'notification', 'alert', 'survey', 'thanks', 'others')),
  message_type VARCHAR(50) NOT NULL
    CHECK (message_type IN ('sms', 'lms', 'kakao')),
  template_code VARCHAR(100),
  content TEXT NOT NULL,
  variables JSONB DEFAULT '[]',
  buttons JSONB DEFAULT '[]',
  status VARCHAR(50) DEFAULT 'active'
    CHECK (status IN ('draft', 'active', 'archived')),
  usage_count INTEGER DEFAULT 0,
  last_used_at TIMESTAMP WITH TIME ZONE,
  created_by VARCHAR(255),
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

-- 2.2.2 template_usage_logs
CREATE TABLE IF NOT EXISTS public.template_usage_logs (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  template_id UUID REFERENCES public.message_templates(id) ON DELETE CASCADE,
  workflow_id UUID REFERENCES public.workflows(id) ON DELETE CASCADE,
  used_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  variables_used JSONB DEFAULT '{}',
  success BOOLEAN DEFAULT true,
  error_message TEXT
);

-- 2.3.1 individual_variable_mappings
CREATE TABLE IF NOT EXISTS public.individual_variable_mappings (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  variable_name VARCHAR(255) NOT NULL,
  display_name VARCHAR(255),
  source_type VARCHAR(50) NOT NULL
    CHECK (source_type IN ('static', 'query', 'function')),
  source_field TEXT,
  selected_column VARCHAR(255),
  default_value TEXT,
  usage_count INTEGER DEFAULT 0,
  last_used_at TIMESTAMP WITH TIME ZONE,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

-- 2.3.2 variable_query_templates
CREATE TABLE IF NOT EXISTS public.variable_query_templates (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  template_name VARCHAR(255) NOT NULL UNIQUE,
  description TEXT,
  query_sql TEXT NOT NULL,
  variables JSONB DEFAULT '[]',
  usage_count INTEGER DEFAULT 0,
  last_used_at TIMESTAMP WITH TIME ZONE,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

-- 2.4.1 message_logs
CREATE TABLE IF NOT EXISTS public.message_logs (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  workflow_run_id UUID REFERENCES public.workflow_runs(id) ON DELETE CASCADE,
  template_id UUID REFERENCES public.message_templates(id) ON DELETE SET NULL,
  recipient_phone VARCHAR(20),
  recipient_name VARCHAR(255),
  message_type VARCHAR(50) NOT NULL
    CHECK (message_type IN ('sms', 'lms', 'kakao')),
  message_content TEXT,
  variables_used JSONB DEFAULT '{}',
  status VARCHAR(50) NOT NULL
    CHECK (status IN ('pending', 'sent', 'delivered', 'failed', 'cancelled')),
  provider VARCHAR(50),
  provider_message_id VARCHAR(255),
  cost DECIMAL(8,2) DEFAULT 0,
  sent_at TIMESTAMP WITH TIME ZONE,
  delivered_at TIMESTAMP WITH TIME ZONE,
  failed_at TIMESTAMP WITH TIME ZONE,
  error_code VARCHAR(50),
  error_message TEXT,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

-- 2.5.1 system_settings
CREATE TABLE IF NOT EXISTS public.system_settings (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  setting_key VARCHAR(255) NOT NULL UNIQUE,
  setting_value JSONB NOT NULL,
  description TEXT,
  category VARCHAR(100) DEFAULT 'general',
  is_encrypted BOOLEAN DEFAULT false,
  updated_by VARCHAR(255),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

-- 2.5.2 user_activity_logs
CREATE TABLE IF NOT EXISTS public.user_activity_logs (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  user_id VARCHAR(255),
  action VARCHAR(100) NOT NULL,
  resource_type VARCHAR(100),
  resource_id VARCHAR(255),
  details JSONB DEFAULT '{}',
  ip_address INET,
  user_agent TEXT,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

-- 2.6.1 daily_statistics
CREATE TABLE IF NOT EXISTS public.daily_statistics (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  stat_date DATE NOT NULL UNIQUE,
  workflows_created INTEGER DEFAULT 0,
  workflows_executed INTEGER DEFAULT 0,
  messages_sent INTEGER DEFAULT 0,
  messages_failed INTEGER DEFAULT 0,
  total_cost DECIMAL(10,2) DEFAULT 0,
  templates_used INTEGER DEFAULT 0,
  unique_users INTEGER DEFAULT 0,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

-- §4.1 indexes
CREATE INDEX IF NOT EXISTS idx_workflows_status ON public.workflows(status);
CREATE INDEX IF NOT EXISTS idx_workflows_created_at ON public.workflows(created_at);
CREATE INDEX IF NOT EXISTS idx_workflows_next_run ON public.workflows(next_run_at) WHERE next_run_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_workflow_runs_workflow_id ON public.workflow_runs(workflow_id);
CREATE INDEX IF NOT EXISTS idx_workflow_runs_status ON public.workflow_runs(status);
CREATE INDEX IF NOT EXISTS idx_workflow_runs_started_at ON public.workflow_runs(started_at);
CREATE INDEX IF NOT EXISTS idx_message_templates_status ON public.message_templates(status);
CREATE INDEX IF NOT EXISTS idx_message_templates_message_type ON public.message_templates(message_type);
CREATE INDEX IF NOT EXISTS idx_message_templates_category ON public.message_templates(category);
CREATE INDEX IF NOT EXISTS idx_message_logs_workflow_run_id ON public.message_logs(workflow_run_id);
CREATE INDEX IF NOT EXISTS idx_message_logs_status ON public.message_logs(status);
CREATE INDEX IF NOT EXISTS idx_message_logs_sent_at ON public.message_logs(sent_at);
CREATE INDEX IF NOT EXISTS idx_message_logs_recipient_phone ON public.message_logs(recipient_phone);
CREATE INDEX IF NOT EXISTS idx_user_activity_logs_user_id ON public.user_activity_logs(user_id);
CREATE INDEX IF NOT EXISTS idx_user_activity_logs_created_at ON public.user_activity_logs(created_at);
CREATE INDEX IF NOT EXISTS idx_daily_statistics_stat_date ON public.daily_statistics(stat_date);

-- §5.1 updated_at triggers (public.update_updated_at_column() comes from the shared set; the
-- seed's definition is identical, so it is not redefined here).
DROP TRIGGER IF EXISTS update_workflows_updated_at ON public.workflows;
CREATE TRIGGER update_workflows_updated_at
  BEFORE UPDATE ON public.workflows
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();
DROP TRIGGER IF EXISTS update_message_templates_updated_at ON public.message_templates;
CREATE TRIGGER update_message_templates_updated_at
  BEFORE UPDATE ON public.message_templates
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

-- §5.2 usage counts
CREATE OR REPLACE FUNCTION public.update_usage_count()
RETURNS TRIGGER AS $$
BEGIN
    IF TG_TABLE_NAME = 'template_usage_logs' THEN
        UPDATE public.message_templates
        SET usage_count = usage_count + 1,
            last_used_at = NOW()
        WHERE id = NEW.template_id;
    END IF;
    RETURN NEW;
END;
$$ language 'plpgsql';
DROP TRIGGER IF EXISTS update_template_usage_count ON public.template_usage_logs;
CREATE TRIGGER update_template_usage_count
  AFTER INSERT ON public.template_usage_logs
  FOR EACH ROW EXECUTE FUNCTION public.update_usage_count();

-- §7 views
CREATE OR REPLACE VIEW public.workflow_summary AS
SELECT
  w.id,
  w.name,
  w.status,
  w.created_at,
  COUNT(wr.id) as total_runs,
  COUNT(CASE WHEN wr.status = 'completed' THEN 1 END) as successful_runs,
  COUNT(CASE WHEN wr.status = 'failed' THEN 1 END) as failed_runs,
  MAX(wr.started_at) as last_run_at,
  SUM(wr.total_cost) as total_cost
FROM public.workflows w
LEFT JOIN public.workflow_runs wr ON w.id = wr.workflow_id
GROUP BY w.id, w.name, w.status, w.created_at;

CREATE OR REPLACE VIEW public.daily_stats_summary AS
SELECT
  stat_date,
  workflows_created,
  workflows_executed,
  messages_sent,
  messages_failed,
  CASE
    WHEN messages_sent > 0
    THEN ROUND((messages_sent - messages_failed) * 100.0 / messages_sent, 2)
    ELSE 0
  END as success_rate,
  total_cost
FROM public.daily_statistics
ORDER BY stat_date DESC;

-- Views run with the querying role's rights, so RLS on the base tables applies to them too.
ALTER VIEW public.workflow_summary SET (security_invoker = true);
ALTER VIEW public.daily_stats_summary SET (security_invoker = true);
GRANT SELECT ON public.workflow_summary, public.daily_stats_summary TO authenticated, service_role;
REVOKE ALL ON public.workflow_summary, public.daily_stats_summary FROM anon;

-- §6 RLS on every table (the seed enables it on three; the platform standard covers all).
SELECT platform.enable_standard_rls('public.workflows');
SELECT platform.enable_standard_rls('public.workflow_runs');
SELECT platform.enable_standard_rls('public.message_templates');
SELECT platform.enable_standard_rls('public.template_usage_logs');
SELECT platform.enable_standard_rls('public.individual_variable_mappings');
SELECT platform.enable_standard_rls('public.variable_query_templates');
SELECT platform.enable_standard_rls('public.message_logs');
SELECT platform.enable_standard_rls('public.system_settings');
SELECT platform.enable_standard_rls('public.user_activity_logs');
SELECT platform.enable_standard_rls('public.daily_statistics');
