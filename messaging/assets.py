"""Messaging assets: MySQL sources, the schema catalog, workflow executions and daily statistics.

Lineage drawn in the UI: ``mysql/<table>`` -> ``supabase/public/message_logs`` (and
``workflow_runs``,
``template_usage_logs``) -> ``supabase/public/daily_statistics``.
"""

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Literal

import dagster as dg
from psycopg.types.json import Jsonb

from messaging import constants as C
from messaging.catalog import MAPPINGS_PATH, discover_schema, load_table_mappings
from messaging.constants import mysql_key, supabase_key
from messaging.engine import RunOptions, execute_workflow
from messaging.models import TableMappingError, WorkflowConfigError
from messaging.settings import MessagingSettings
from messaging.statistics import compute_daily_statistics
from resources.dagster_helpers import run_metadata
from resources.errors import PermanentError
from resources.mysql import MySQLResource
from resources.postgres import PostgresResource
from resources.solapi import SolapiResource


def _schema(columns: str) -> dg.TableSchema:
    """``"name type, name type"`` -> TableSchema (what the UI shows as the column list)."""
    return dg.TableSchema(columns=[dg.TableColumn(*c.split()) for c in columns.split(", ")])


COLUMN_SCHEMAS = {
    "workflow_runs": _schema(
        "id uuid, workflow_id uuid, status varchar, trigger_type varchar, target_count integer, "
        "success_count integer, failed_count integer, total_cost numeric, error_message text, "
        "execution_time_ms integer, started_at timestamptz, completed_at timestamptz, logs jsonb, "
        "execution_key text, dagster_run_id text, cancel_requested_at timestamptz, "
        "cancel_requested_by text, handed_back_from bigint"
    ),
    "message_logs": _schema(
        "id uuid, workflow_run_id uuid, template_id uuid, recipient_phone varchar, "
        "recipient_name varchar, message_type varchar, message_content text, variables_used jsonb, "
        "status varchar, provider varchar, provider_message_id varchar, cost numeric, "
        "sent_at timestamptz, delivered_at timestamptz, failed_at timestamptz, error_code varchar, "
        "error_message text, created_at timestamptz, idempotency_key text, "
        "send_attempted_at timestamptz, provider_group_id varchar, not_before timestamptz, "
        "fallback_content text, run_seq bigint"
    ),
    "template_usage_logs": _schema(
        "id uuid, template_id uuid, workflow_id uuid, used_at timestamptz, "
        "variables_used jsonb, success boolean, error_message text"
    ),
    "daily_statistics": _schema(
        "id uuid, stat_date date, workflows_created integer, workflows_executed integer, "
        "messages_sent integer, messages_failed integer, total_cost numeric, "
        "templates_used integer, unique_users integer, created_at timestamptz, "
        "updated_at timestamptz"
    ),
}


def _mysql_schema(table: str) -> dg.TableSchema:
    mapping = json.loads(MAPPINGS_PATH.read_text(encoding="utf-8")).get(table, {})
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, f.get("type", "string"), description=f.get("displayName"))
            for name, f in mapping.get("fields", {}).items()
        ]
    )


# -- MySQL sources (observed: row count, last change) ---------------------------------------------
MYSQL_SPECS = [
    dg.AssetSpec(
        mysql_key(t),
        group_name=C.GROUP,
        kinds={"mysql"},
        owners=C.OWNERS,
        description=f"Operational MySQL table `{t}` (read-only, SELECT-only user).",
        metadata={"dagster/table_name": f"mysql.{t}", "dagster/column_schema": _mysql_schema(t)},
    )
    for t in C.MYSQL_TABLES
]


@dg.multi_observable_source_asset(
    specs=MYSQL_SPECS, can_subset=True, description="Observe the CRM tables."
)
def mysql_crm_tables(context, mysql: MySQLResource):
    """Row count and last change of each CRM table; the data version changes when either does."""
    mappings = load_table_mappings()
    for key in context.selected_asset_keys:
        table = key.path[-1]
        change = mappings[table].change_column if table in mappings else None
        last_change = f", MAX(`{change}`) AS last_change" if change else ""
        select = f"SELECT COUNT(*) AS n{last_change} FROM `{table}`"
        row = mysql.query(select)[0]
        last = row.get("last_change")
        yield dg.ObserveResult(
            asset_key=key,
            data_version=dg.DataVersion(f"{row['n']}:{last}"),
            metadata={
                "dagster/row_count": int(row["n"]),
                "last_change": str(last) if last is not None else "n/a",
            },
        )


# Tables the message platform's own app writes (workflow editor, template library); upstream here.
PLATFORM_SPECS = [
    dg.AssetSpec(
        supabase_key(t),
        group_name=C.GROUP,
        kinds={"supabase", "postgres"},
        owners=C.OWNERS,
        description=f"`public.{t}`, edited in the message platform.",
        metadata={"dagster/table_name": f"supabase.public.{t}"},
    )
    for t in C.PLATFORM_TABLES
]


@dg.asset(
    key=C.SYSTEM_SETTINGS,
    group_name=C.GROUP,
    kinds={"mysql", "supabase"},
    owners=C.OWNERS,
    deps=C.MYSQL_KEYS,
    check_specs=[
        dg.AssetCheckSpec(
            "table_mappings_valid",
            asset=C.SYSTEM_SETTINGS,
            blocking=True,
            description="data/table-mappings.json matches the live MySQL schema",
        )
    ],
)
def mysql_schema_catalog(context, mysql: MySQLResource, supabase_db: PostgresResource):
    """Schema discovery of the operational MySQL (tables, columns, types, indexes) and the validated
    table mappings, stored as ``system_settings`` rows ``mysql.schema_catalog`` and
    ``mysql.table_mappings``."""
    started = time.perf_counter()
    schema = discover_schema(mysql)
    problem = None
    try:
        mappings = load_table_mappings(schema=schema)
        mapping_doc = {
            t: {
                "displayName": m.display_name,
                "fields": {f.name: f.display_name for f in m.fields.values()},
                "searchable": m.searchable_fields,
            }
            for t, m in mappings.items()
        }
    except TableMappingError as exc:
        problem, mapping_doc = str(exc), None
    with supabase_db.transaction() as conn:
        conn.execute(
            "INSERT INTO public.system_settings (setting_key, setting_value, description, "
            "category, updated_by)"
            " VALUES ('mysql.schema_catalog', %s, 'MySQL schema discovery (tables, columns, "
            "indexes)', 'mysql', 'dagster')"
            " ON CONFLICT (setting_key) DO UPDATE SET setting_value = EXCLUDED.setting_value, "
            "updated_at = now()",
            (Jsonb(schema),),
        )
        if mapping_doc is not None:  # never overwrite good mappings with a broken file
            conn.execute(
                "INSERT INTO public.system_settings (setting_key, setting_value, description, "
                "category, updated_by)"
                " VALUES ('mysql.table_mappings', %s, 'validated data/table-mappings.json', "
                "'mysql', 'dagster')"
                " ON CONFLICT (setting_key) DO UPDATE SET setting_value = EXCLUDED.setting_value, "
                "updated_at = now()",
                (Jsonb(mapping_doc),),
            )
    columns = sum(len(t["columns"]) for t in schema.values())
    yield dg.MaterializeResult(
        metadata=run_metadata(
            started,
            tables=len(schema),
            columns=columns,
            indexes=sum(len(t["indexes"]) for t in schema.values()),
            catalog=dg.MetadataValue.json(
                {t: [c["name"] for c in s["columns"]] for t, s in schema.items()}
            ),
        )
    )
    yield dg.AssetCheckResult(
        check_name="table_mappings_valid",
        passed=problem is None,
        metadata={"problem": problem or "none"},
    )


# -- workflow execution --------------------------------------------------------------------------
TriggerType = Literal["", "manual", "schedule", "event", "webhook"]


class WorkflowRunConfig(dg.Config):
    """Which workflow to run. Sensors fill the trigger fields; a manual launch needs only
    ``workflow_id`` (``trigger_type`` empty: the workflow's own)."""

    workflow_id: str = ""
    execution_key: str = ""
    event_from: int | None = None
    event_to: int | None = None
    webhook_event_id: int | None = None
    payload_json: str = "{}"
    trigger_type: TriggerType = ""
    chunk_size: int = C.SEND_CHUNK_MAX
    # retries of a run that failed on something passing (SOLAPI or a database unreachable);
    # each resumes the same execution. Configuration errors and refusals are never retried.
    send_retries: int = 3


WORKFLOW_DESCRIPTIONS = {
    "workflow_runs": "One row per workflow execution (counts, cost, duration, logs).",
    "message_logs": "One row per recipient: pending -> sent -> delivered / failed.",
    "template_usage_logs": "One row per execution and template (usage counts).",
}


# Logs and statistics are written every day: warn after 2 hours, fail after a missed day.
DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=26), warn_window=timedelta(hours=2)
)


SEND_RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL)


@dg.multi_asset(
    name="messaging_workflow_run",
    specs=[
        dg.AssetSpec(
            supabase_key(t),
            group_name=C.GROUP,
            kinds={"supabase", "postgres"},
            owners=C.OWNERS,
            deps=[*C.MYSQL_KEYS, *C.PLATFORM_KEYS],
            description=WORKFLOW_DESCRIPTIONS[t],
            metadata={
                "dagster/table_name": f"supabase.public.{t}",
                "dagster/column_schema": COLUMN_SCHEMAS[t],
            },
            freshness_policy=DAILY_FRESHNESS if t == "message_logs" else None,
        )
        for t in C.WORKFLOW_TABLES
    ],
    pool="solapi",
    # A run that fails mid-send (SOLAPI or the database unreachable, a killed step) is retried
    # in the same run: same execution key, so it resumes from its pending rows and settles its
    # open groups first; nothing is sent twice.
    retry_policy=SEND_RETRY_POLICY,
    description="Run one workflow execution: MySQL targets -> rendered messages -> SOLAPI (exactly "
    "once).",
)
def messaging_workflow_run(
    context: dg.AssetExecutionContext,
    config: WorkflowRunConfig,
    supabase_db: PostgresResource,
    mysql: MySQLResource,
    solapi: SolapiResource,
    messaging_settings: MessagingSettings,
) -> Iterator[dg.MaterializeResult[Any]]:
    started = time.perf_counter()
    if not config.workflow_id:
        context.log.info("no workflow_id in run config: nothing to execute")
        for key in C.WORKFLOW_KEYS:
            yield dg.MaterializeResult(
                asset_key=key, metadata={"skipped": "no workflow_id in run config"}
            )
        return
    root = context.run.root_run_id or context.run.run_id
    opts = RunOptions(
        workflow_id=config.workflow_id,
        execution_key=config.execution_key or f"dagster:{root}",
        send_mode=messaging_settings.send_mode(),
        trigger_type=config.trigger_type or None,
        event_range=(config.event_from, config.event_to) if config.event_to is not None else None,
        webhook_event_id=config.webhook_event_id,
        payload=json.loads(config.payload_json or "{}"),
        chunk_size=config.chunk_size,
        dagster_run_id=context.run.run_id,
    )
    try:
        summary = execute_workflow(supabase_db, mysql, solapi, opts, log=context.log.info)
    except (WorkflowConfigError, PermanentError) as exc:  # a retry cannot fix these
        raise dg.Failure(f"{type(exc).__name__}: {exc}", allow_retries=False) from exc
    except Exception as exc:
        if context.retry_number >= config.send_retries:
            raise dg.Failure(
                f"{type(exc).__name__}: {exc} (after {context.retry_number} retries)",
                allow_retries=False,
            ) from exc
        raise
    meta = run_metadata(
        started,
        send_mode=opts.send_mode,
        execution_key=opts.execution_key,
        workflow_id=config.workflow_id,
        **summary.metadata(),
    )
    yield dg.MaterializeResult(asset_key=C.WORKFLOW_RUNS, metadata=meta)
    yield dg.MaterializeResult(
        asset_key=C.MESSAGE_LOGS,
        metadata={**meta, "dagster/row_count": summary.target_count},
    )
    yield dg.MaterializeResult(
        asset_key=C.TEMPLATE_USAGE_LOGS,
        metadata={"template_unmapped": meta["unmapped_variables"]},
    )


# -- statistics ----------------------------------------------------------------------------------
daily_partitions = dg.DailyPartitionsDefinition(
    start_date="2026-01-01", timezone="Asia/Seoul", end_offset=1
)


@dg.asset(
    key=C.DAILY_STATISTICS,
    group_name=C.GROUP,
    kinds={"supabase", "postgres"},
    owners=C.OWNERS,
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[*C.WORKFLOW_KEYS, supabase_key("workflows")],
    freshness_policy=DAILY_FRESHNESS,
    metadata={
        "dagster/table_name": "supabase.public.daily_statistics",
        "dagster/column_schema": COLUMN_SCHEMAS["daily_statistics"],
    },
)
def daily_statistics(context: dg.AssetExecutionContext, supabase_db: PostgresResource):
    """Per Asia/Seoul day: workflows created/executed, messages sent/failed, cost, templates used,
    unique recipients; upserted on ``stat_date`` (a range backfill is one run and one statement)."""
    started = time.perf_counter()
    window = context.partition_time_window
    rows = compute_daily_statistics(supabase_db, window.start, window.end)
    sent = sum(r["messages_sent"] for r in rows)
    failed = sum(r["messages_failed"] for r in rows)
    cost = float(sum(r["total_cost"] for r in rows))
    return dg.MaterializeResult(
        metadata=run_metadata(
            started,
            days=len(rows),
            messages_sent=sent,
            messages_failed=failed,
            success_rate=round((sent - failed) / sent, 4) if sent else 0.0,
            cost_krw=round(cost, 2),
            partitions=f"{context.partition_key_range.start}..{context.partition_key_range.end}",
            **{"dagster/row_count": len(rows)},
        )
    )
