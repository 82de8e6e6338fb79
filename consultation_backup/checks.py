"""Asset checks: Notion-vs-Supabase parity, contracts, orphans, image parity, quarantine.

Contract violations cannot come from the sync (it validates first), so they are ERROR; the
quarantine and parity checks are WARN: the backup is usable, someone must look at the
listed pages.
"""

from typing import Any

import dagster as dg

from consultation_backup.constants import (
    CUSTOMERS_KEY,
    CUSTOMERS_TABLE,
    DOMAIN,
    IMAGES_KEY,
    NOTION_POOL,
    RECORDS_KEY,
    RECORDS_TABLE,
    SOURCE_CONSULTATIONS,
    SOURCE_CUSTOMERS,
    SOURCE_IMAGES,
)
from consultation_backup.history import rows_without_current_version
from consultation_backup.settings import ConsultationSettings
from resources.notion import NotionResource
from resources.postgres import PostgresResource


def _sample(rows: list[dict[str, Any]], key: str) -> str:
    return ", ".join(str(r[key]) for r in rows[:10]) or "none"


@dg.asset_check(
    asset=CUSTOMERS_KEY,
    name="notion_parity",
    blocking=False,
    pool=NOTION_POOL,
    description="Every live Notion customer page is backed up (or quarantined) and no other row "
    "is live.",
)
def customers_notion_parity(
    notion: NotionResource,
    supabase_db: PostgresResource,
    consultation_settings: ConsultationSettings,
) -> dg.AssetCheckResult:
    ds = notion.data_source_id(consultation_settings.customers_database_id)
    notion_ids = {p.id for p in notion.iter_pages(ds, filter_properties=["title"])}
    live = {
        r["notion_page_id"]
        for r in supabase_db.fetch_all(
            f"SELECT notion_page_id FROM public.{CUSTOMERS_TABLE} WHERE NOT is_deleted"
        )
    }
    quarantined = {
        r["item_id"]
        for r in supabase_db.fetch_all(
            "SELECT item_id FROM public.data_quarantine"
            " WHERE domain = %s AND source = %s AND resolved_at IS NULL",
            (DOMAIN, SOURCE_CUSTOMERS),
        )
    }
    missing = sorted(notion_ids - live - quarantined)
    extra = sorted(live - notion_ids)
    return dg.AssetCheckResult(
        passed=not missing and not extra,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "notion_pages": len(notion_ids),
            "supabase_live_rows": len(live),
            "quarantined": len(quarantined),
            "missing_in_supabase": len(missing),
            "extra_in_supabase": len(extra),
            "sample": ", ".join((missing + extra)[:10]) or "none",
        },
    )


@dg.asset_check(
    asset=CUSTOMERS_KEY,
    name="contract",
    blocking=False,
    description="customer_id is 5 digits, gender is 남/여 or empty, birth_date is a plausible "
    "past date.",
)
def customers_contract(supabase_db: PostgresResource) -> dg.AssetCheckResult:
    bad = supabase_db.fetch_all(
        f"""SELECT customer_id, notion_page_id FROM public.{CUSTOMERS_TABLE}
             WHERE customer_id !~ '^[0-9]{{5}}$'
                OR (gender IS NOT NULL AND gender NOT IN ('남', '여'))
                OR birth_date > current_date OR birth_date < DATE '1900-01-01' OR name = ''"""
    )
    return dg.AssetCheckResult(
        passed=not bad, metadata={"violations": len(bad), "sample": _sample(bad, "customer_id")}
    )


@dg.asset_check(
    asset=RECORDS_KEY,
    name="contract",
    blocking=False,
    description="consultation_id is {customer_id}_{NNN} of its own customer; dates are not in "
    "the future.",
)
def records_contract(supabase_db: PostgresResource) -> dg.AssetCheckResult:
    bad = supabase_db.fetch_all(
        f"""SELECT r.consultation_id FROM public.{RECORDS_TABLE} r
              JOIN public.{CUSTOMERS_TABLE} c ON c.id = r.customer_id
             WHERE r.consultation_id !~ '^[0-9]{{5}}_[0-9]{{3}}$'
                OR split_part(r.consultation_id, '_', 1) <> c.customer_id
                OR r.consultation_date > (now() AT TIME ZONE 'Asia/Seoul')::date + 1
                OR r.symptoms = ''"""
    )
    return dg.AssetCheckResult(
        passed=not bad, metadata={"violations": len(bad), "sample": _sample(bad, "consultation_id")}
    )


@dg.asset_check(
    asset=RECORDS_KEY,
    name="no_orphans",
    blocking=False,
    description="Every record's customer_notion_id is its customer's page, and no live record "
    "belongs to a deleted customer.",
)
def records_no_orphans(supabase_db: PostgresResource) -> dg.AssetCheckResult:
    bad = supabase_db.fetch_all(
        f"""SELECT r.consultation_id FROM public.{RECORDS_TABLE} r
             LEFT JOIN public.{CUSTOMERS_TABLE} c ON c.id = r.customer_id
             WHERE c.id IS NULL OR c.notion_page_id <> r.customer_notion_id
                OR (c.is_deleted AND NOT r.is_deleted)"""
    )
    return dg.AssetCheckResult(
        passed=not bad,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"orphans": len(bad), "sample": _sample(bad, "consultation_id")},
    )


@dg.asset_check(
    asset=IMAGES_KEY,
    name="image_count_parity",
    blocking=False,
    description="Each live record has as many Storage copies as Notion image links, unless an "
    "image is quarantined.",
)
def images_count_parity(supabase_db: PostgresResource) -> dg.AssetCheckResult:
    bad = supabase_db.fetch_all(
        f"""SELECT r.consultation_id, r.image_count,
                   jsonb_array_length(coalesce(r.supabase_image_urls, '[]')) AS copies
              FROM public.{RECORDS_TABLE} r
             WHERE NOT r.is_deleted
               AND r.image_count <> jsonb_array_length(coalesce(r.supabase_image_urls, '[]'))
               AND NOT EXISTS (SELECT 1 FROM public.data_quarantine q
                                WHERE q.domain = %s AND q.source = %s AND q.resolved_at IS NULL
                                  AND q.item_id LIKE r.consultation_id || '#%%')""",
        (DOMAIN, SOURCE_IMAGES),
    )
    return dg.AssetCheckResult(
        passed=not bad,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "records_without_all_copies": len(bad),
            "sample": _sample(bad, "consultation_id"),
        },
    )


def _quarantine_check(asset_key: dg.AssetKey, source: str, label: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset_key,
        name="no_open_quarantine",
        blocking=False,
        description=f"No {label} is waiting in public.data_quarantine (fails visibly when one is).",
    )
    def _check(supabase_db: PostgresResource) -> dg.AssetCheckResult:
        rows = supabase_db.fetch_all(
            "SELECT item_id, reason FROM public.data_quarantine"
            " WHERE domain = %s AND source = %s AND resolved_at IS NULL"
            " ORDER BY last_seen_at DESC",
            (DOMAIN, source),
        )
        preview = "\n".join(f"- {r['item_id']}: {r['reason']}" for r in rows[:20]) or "none"
        return dg.AssetCheckResult(
            passed=not rows,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"open_items": len(rows), "items": dg.MetadataValue.md(preview)},
        )

    return _check


def _history_check(asset_key: dg.AssetKey, table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset_key,
        name="history_current",
        blocking=False,
        description="Every row's current history version is the row itself (a write that "
        "bypassed the history trigger would break point-in-time restore).",
    )
    def _check(supabase_db: PostgresResource) -> dg.AssetCheckResult:
        bad = rows_without_current_version(supabase_db, table)
        return dg.AssetCheckResult(
            passed=not bad,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "rows_without_current_version": len(bad),
                "sample": _sample(bad, "notion_page_id"),
            },
        )

    return _check


CHECKS = [
    customers_notion_parity,
    customers_contract,
    records_contract,
    records_no_orphans,
    images_count_parity,
    _quarantine_check(CUSTOMERS_KEY, SOURCE_CUSTOMERS, "customer page"),
    _quarantine_check(RECORDS_KEY, SOURCE_CONSULTATIONS, "consultation page"),
    _quarantine_check(IMAGES_KEY, SOURCE_IMAGES, "image"),
    _history_check(CUSTOMERS_KEY, CUSTOMERS_TABLE),
    _history_check(RECORDS_KEY, RECORDS_TABLE),
]
