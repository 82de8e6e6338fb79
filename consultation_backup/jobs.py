"""Jobs: the nightly reconcile (customers asset with ``reconcile``), the daily partition job,
and the restore job (Supabase -> Notion, dry run unless told otherwise)."""

import dagster as dg
from pydantic import Field

from consultation_backup import restore
from consultation_backup.assets import CustomersConfig, consultation_customers
from consultation_backup.constants import CUSTOMERS_KEY, IMAGES_KEY, NOTION_POOL, RECORDS_KEY
from consultation_backup.partitions import consultation_daily
from consultation_backup.settings import ConsultationSettings
from resources.dagster_helpers import build_migrations_job
from resources.notion import NotionResource
from resources.postgres import PostgresResource

migrations_job = build_migrations_job("consultation_backup", ["consultation_backup"])

reconcile_job = dg.define_asset_job(
    "consultation_reconcile_job",
    selection=dg.AssetSelection.assets(CUSTOMERS_KEY),
    config=dg.RunConfig(
        ops={
            consultation_customers.op.name: CustomersConfig(
                reconcile=True, full_refresh=False, conflict_strategy="notion_wins"
            )
        }
    ),
    description="Nightly: incremental customer sync, then full ID reconciliation against Notion "
    "(trashed or deleted pages become is_deleted, never hard-deleted) and consultation_count "
    "recomputed.",
    tags={"domain": "consultation_backup"},
)

customers_job = dg.define_asset_job(
    "consultation_customers_job",
    selection=dg.AssetSelection.assets(CUSTOMERS_KEY),
    tags={"domain": "consultation_backup"},
    description="Incremental customer backup (what the Notion edits sensor requests).",
)

records_job = dg.define_asset_job(
    "consultation_records_job",
    selection=dg.AssetSelection.assets(RECORDS_KEY, IMAGES_KEY),
    partitions_def=consultation_daily,
    tags={"domain": "consultation_backup"},
    description="Back up one 상담일자 partition of consultations and their images.",
)


class RestoreConfig(dg.Config):
    dry_run: bool = Field(
        default=True, description="only report what would be created (the default)"
    )
    target_customers_database_id: str = Field(
        default="", description="empty = NOTION_CUSTOMERS_DATABASE_ID"
    )
    target_consultations_database_id: str = Field(
        default="", description="empty = NOTION_CONSULTATIONS_DATABASE_ID"
    )
    customer_ids: list[str] = Field(
        default_factory=list, description="restrict to these 5-digit customer ids"
    )


@dg.op(
    pool=NOTION_POOL,
    description="Recreate customers and consultations missing from Notion from the Supabase "
    "backup (idempotent: matched by customer/consultation id).",
)
def restore_to_notion(
    context: dg.OpExecutionContext,
    config: RestoreConfig,
    notion: NotionResource,
    supabase_db: PostgresResource,
    consultation_settings: ConsultationSettings,
) -> dg.Output:
    report = restore.restore(
        notion,
        supabase_db,
        customers_database_id=config.target_customers_database_id
        or consultation_settings.customers_database_id,
        consultations_database_id=config.target_consultations_database_id
        or consultation_settings.consultations_database_id,
        dry_run=config.dry_run,
        customer_ids=config.customer_ids or None,
        log=context.log.info,
    )
    return dg.Output(
        report.as_dict(),
        metadata={k: v for k, v in report.as_dict().items() if not isinstance(v, list)},
    )


@dg.job(
    name="consultation_restore_job",
    tags={"domain": "consultation_backup"},
    description="Restore Notion from the Supabase backup (dry run by default).",
)
def restore_job():
    restore_to_notion()


JOBS = [migrations_job, customers_job, reconcile_job, records_job, restore_job]
