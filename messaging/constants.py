"""Names shared by the messaging code location."""

from zoneinfo import ZoneInfo

DOMAIN = "messaging"
GROUP = "messaging"
OWNERS = ["team:messaging"]
SEOUL = ZoneInfo("Asia/Seoul")

SUPABASE_PREFIX = ["supabase", "public"]
MYSQL_PREFIX = ["mysql"]
MYSQL_TABLES = ("customers", "subscriptions", "payments")

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

# Error codes written to message_logs.error_code by the platform (SOLAPI's own codes are numeric).
ERR_UNRESOLVED = "UNRESOLVED_VARIABLE"
ERR_TOO_LONG = "MESSAGE_TOO_LONG"
ERR_CHARSET = "NOT_EUC_KR"
ERR_PHONE = "INVALID_PHONE"
ERR_QUIET_HOURS = "AD_QUIET_HOURS"
ERR_DRY_RUN = "DRY_RUN"
ERR_KAKAO_CONFIG = "KAKAO_CONFIG"
