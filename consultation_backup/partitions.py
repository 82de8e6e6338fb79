"""Daily partitions on 상담일자 in Asia/Seoul; today's partition exists (consultations are being
written today), so the sensor can target it."""

import dagster as dg

from consultation_backup.constants import PARTITIONS_START, TIMEZONE

consultation_daily = dg.DailyPartitionsDefinition(
    start_date=PARTITIONS_START, timezone=TIMEZONE, end_offset=1
)
