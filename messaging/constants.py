"""Names shared by the messaging code location: groups, tables, asset keys, limits, codes."""

from zoneinfo import ZoneInfo

import dagster as dg

DOMAIN = "messaging"
GROUP = "messaging"
OWNERS = ["team:messaging"]
SEOUL = ZoneInfo("Asia/Seoul")

SUPABASE_PREFIX = ["supabase", "public"]
MYSQL_PREFIX = ["mysql"]
MYSQL_TABLES = ("customers", "subscriptions", "payments")

# Tables the message platform's own app writes (workflow editor, template library).
PLATFORM_TABLES = (
    "workflows",
    "message_templates",
    "individual_variable_mappings",
    "variable_query_templates",
)
# Tables one workflow execution writes.
WORKFLOW_TABLES = ("workflow_runs", "message_logs", "template_usage_logs")


def supabase_key(table: str) -> dg.AssetKey:
    return dg.AssetKey([*SUPABASE_PREFIX, table])


def mysql_key(table: str) -> dg.AssetKey:
    return dg.AssetKey([*MYSQL_PREFIX, table])


MYSQL_KEYS = [mysql_key(t) for t in MYSQL_TABLES]
PLATFORM_KEYS = [supabase_key(t) for t in PLATFORM_TABLES]
WORKFLOW_RUNS = supabase_key("workflow_runs")
MESSAGE_LOGS = supabase_key("message_logs")
TEMPLATE_USAGE_LOGS = supabase_key("template_usage_logs")
WORKFLOW_KEYS = [WORKFLOW_RUNS, MESSAGE_LOGS, TEMPLATE_USAGE_LOGS]
DAILY_STATISTICS = supabase_key("daily_statistics")
SYSTEM_SETTINGS = supabase_key("system_settings")

PROVIDER = "solapi"

# Byte limits counted in EUC-KR (SOLAPI: SMS 90 bytes, LMS 2,000 bytes; Alimtalk 1,000 characters).
SMS_MAX_BYTES = 90
LMS_MAX_BYTES = 2_000
KAKAO_MAX_CHARS = 1_000
LMS_SUBJECT_MAX_BYTES = 40

# SOLAPI accepts at most 10,000 messages in one send-many request.
SEND_CHUNK_MAX = 10_000

# Unit prices in KRW used for cost accounting (SOLAPI's published list prices, VAT excluded).
UNIT_COST_KRW = {"sms": 20.0, "lms": 50.0, "kakao": 13.0}

# Advertising messages (Korean Information and Communications Network Act, art. 50).
AD_PREFIX = "(광고)"
DEFAULT_OPT_OUT_LINE = "무료수신거부 080-000-0000"
AD_QUIET_START_HOUR = 21  # no advertising sends from 21:00 ...
AD_QUIET_END_HOUR = 8  # ... until 08:00 Asia/Seoul

SEND_MODES = ("dry_run", "live")

# The webhook endpoint (``python -m messaging.webhook``): port, and the secret used locally.
WEBHOOK_DEFAULT_PORT = 18330
LOCAL_WEBHOOK_SECRET = "local-webhook-secret"

# Error codes written to message_logs.error_code by the platform (SOLAPI's own codes are numeric).
ERR_UNRESOLVED = "UNRESOLVED_VARIABLE"
ERR_TOO_LONG = "MESSAGE_TOO_LONG"
ERR_CHARSET = "NOT_EUC_KR"
ERR_PHONE = "INVALID_PHONE"
# a CRM value with a NUL character: neither SMS nor PostgreSQL text/jsonb can carry it
ERR_CHARACTER = "INVALID_CHARACTER"
ERR_QUIET_HOURS = "AD_QUIET_HOURS"
ERR_DRY_RUN = "DRY_RUN"
ERR_CANCELLED = "SEND_CANCELLED"  # a running send was cancelled (workflow_runs.cancel_requested_at)
ERR_PAUSED = "WORKFLOW_PAUSED"  # the workflow was paused or archived during the send
ERR_SUPPRESSED = "SUPPRESSED"  # advertising to a number on the suppression list
ERR_FREQUENCY_CAP = "FREQUENCY_CAP"  # the recipient had their advertising messages for the day
ERR_KAKAO_CONFIG = "KAKAO_CONFIG"
