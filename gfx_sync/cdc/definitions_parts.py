"""The CDC stream's Dagster objects, exposed as lists for ``gfx_sync/definitions.py`` to wire in.

- ``gfx_cdc_sensor`` (RUNNING by default): every few seconds, if the slot has unapplied WAL and
  no streaming worker holds it, launches ``gfx_cdc_drain_job``; it also evaluates slot health
  each tick so an inactive slot raises its notification even when nothing drains it.
- ``gfx_cdc_drain_job``: initializes (idempotent), drains the slot through the applier and
  REPORTS ``AssetMaterialization`` events for the ``[supabase, public, <table>]`` assets the batch
  factory defines (this module defines no asset with those keys).
- ``CDC_CHECKS``: slot lag (bytes, seconds) and inactive-slot WAL retention per CDC table.
"""

import time

import dagster as dg
import psycopg

from gfx_sync.cdc.applier import Applier
from gfx_sync.cdc.debezium_engine import RUNNER_ENV, selected_runner
from gfx_sync.cdc.errors import SchemaDriftError, SlotBusy, TargetBehindSlot
from gfx_sync.cdc.health import Thresholds, evaluate, record_alerts, slot_health
from gfx_sync.cdc.runner import drain_via_sql, materializations, peek_pending
from gfx_sync.cdc.settings import CdcSettings
from gfx_sync.cdc.snapshot import initialize
from gfx_sync.constants import CDC_ASSET_KEYS, DOMAIN_TAG
from resources.postgres import PostgresResource

DRAIN_JOB_NAME = "gfx_cdc_drain_job"
SENSOR_INTERVAL_S = 5
DEFAULT_THRESHOLDS = Thresholds()


@dg.op(
    name="gfx_cdc_drain",
    tags={**DOMAIN_TAG, "kind": "cdc"},
    description="Apply every committed change waiting in the gfx CDC slot (whole transactions, in"
    " commit "
    "order, position recorded in the same target transaction), then advance the slot.",
)
def gfx_cdc_drain(
    context: dg.OpExecutionContext,
    supabase_db: PostgresResource,
    gfx_source_db: PostgresResource,
    gfx_cdc: CdcSettings,
):
    started = time.perf_counter()
    config = gfx_cdc.config(gfx_source_db.dsn)
    init = initialize(gfx_source_db.dsn, supabase_db.dsn, config)
    if init.created:
        context.log.info(f"initial snapshot: {init.message}")
    with Applier(supabase_db.dsn, config, run_id=context.run.run_id) as applier:
        try:
            result = drain_via_sql(gfx_source_db.dsn, applier, config)
        except (SchemaDriftError, TargetBehindSlot) as exc:
            applier.record_stop(str(exc))
            raise
        except SlotBusy as exc:
            context.log.info(f"skipped: {exc}")
            yield dg.Output(0, metadata={"skipped": str(exc)})
            return
    with psycopg.connect(gfx_source_db.dsn) as src, psycopg.connect(supabase_db.dsn) as tgt:
        health = slot_health(src, tgt, config.slot_name)
        record_alerts(tgt, health, evaluate(health, Thresholds()))
    extra = {"snapshot_rows": sum(init.rows.values())} if init.created else {}
    yield from materializations(result, config.slot_name, extra)
    yield dg.Output(
        result.changes,
        metadata={
            "transactions": result.transactions,
            "changes": result.changes,
            "replayed_transactions_skipped": result.skipped_transactions,
            "tables_touched": ", ".join(sorted(result.tables)) or "none",
            "commit_to_apply_lag_ms": round(result.max_lag_ms, 1),
            "duration_s": round(time.perf_counter() - started, 3),
            **health.metadata(),
        },
    )


@dg.job(
    name=DRAIN_JOB_NAME,
    tags={**DOMAIN_TAG, "dagster/max_runtime": 900},
    description="Drain the gfx CDC replication slot into Supabase (launched by gfx_cdc_sensor).",
)
def gfx_cdc_drain_job():
    gfx_cdc_drain()


_ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dg.sensor(
    name="gfx_cdc_sensor",
    job=gfx_cdc_drain_job,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every few seconds: when the gfx CDC slot holds unapplied WAL and no streaming"
    " worker holds "
    "it, launch a drain run. Also raises the inactive-slot notification.",
)
def gfx_cdc_sensor(
    context: dg.SensorEvaluationContext,
    gfx_source_db: PostgresResource,
    supabase_db: PostgresResource,
    gfx_cdc: CdcSettings,
):
    runner = selected_runner()
    if runner != "pgoutput":
        # one runner per target: the Debezium engine streams into it (and owns its own slot)
        return dg.SkipReason(
            f"{RUNNER_ENV} is {runner!r}: the Debezium engine streams into this target; the"
            f" pgoutput drain stands aside (set {RUNNER_ENV}=pgoutput to use it)"
        )
    config = gfx_cdc.config(gfx_source_db.dsn)
    with psycopg.connect(gfx_source_db.dsn) as src, psycopg.connect(supabase_db.dsn) as tgt:
        health = slot_health(src, tgt, config.slot_name)
        if health.exists:
            record_alerts(tgt, health, evaluate(health, Thresholds()))
    if health.exists and health.active:
        return dg.SkipReason(
            f"slot {config.slot_name} is held by the streaming worker, which reports "
            "materializations itself"
        )
    running_now = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=DRAIN_JOB_NAME, statuses=_ACTIVE), limit=1
    )
    if running_now:
        return dg.SkipReason(f"drain run {running_now[0].run_id} still in progress")
    try:
        if not peek_pending(gfx_source_db.dsn, config, target_dsn=supabase_db.dsn):
            if health.exists and health.last_commit_lsn:
                with Applier(supabase_db.dsn, config) as applier:
                    # caught up: sync_status stays HEALTHY while the source is idle
                    applier.heartbeat()
            return dg.SkipReason(f"caught up: no published change past {health.last_commit_lsn}")
    except SlotBusy as exc:
        return dg.SkipReason(f"slot busy: {exc}")
    position = health.last_commit_lsn or "uninitialized"
    # one run per position and minute: a failing position is retried once a minute, not every tick
    return dg.RunRequest(
        run_key=f"{config.slot_name}:{position}:{int(time.time() // 60)}",
        tags={"gfx_cdc/slot": config.slot_name, "gfx_cdc/lag_bytes": str(health.lag_bytes)},
    )


def build_cdc_checks(
    thresholds: Thresholds = DEFAULT_THRESHOLDS, keys: list[dg.AssetKey] | None = None
):
    """Slot checks for each CDC table: lag (bytes/seconds, WARN) and inactive-slot WAL retention
    (ERROR)."""
    keys = keys or CDC_ASSET_KEYS
    specs = [
        dg.AssetCheckSpec(name, asset=k, description=desc)
        for k in keys
        for name, desc in (
            (
                "cdc_slot_lag",
                f"unapplied WAL <= {thresholds.max_lag_bytes} bytes and lag <="
                f" {thresholds.max_lag_seconds}s",
            ),
            (
                "cdc_slot_wal_retention",
                f"the slot exists, is not lost, and does not retain more than "
                f"{thresholds.max_inactive_retained_bytes} bytes of WAL while inactive",
            ),
        )
    ]

    @dg.multi_asset_check(
        specs=specs,
        name="gfx_cdc_slot_checks",
        description="Health of the gfx CDC replication slot (shared by the four CDC tables).",
    )
    def gfx_cdc_slot_checks(
        context: dg.AssetCheckExecutionContext,
        gfx_source_db: PostgresResource,
        supabase_db: PostgresResource,
        gfx_cdc: CdcSettings,
    ):
        config = gfx_cdc.config(gfx_source_db.dsn)
        with psycopg.connect(gfx_source_db.dsn) as src, psycopg.connect(supabase_db.dsn) as tgt:
            health = slot_health(src, tgt, config.slot_name, thresholds)
            verdicts = evaluate(health, thresholds)
            record_alerts(tgt, health, verdicts)
        by_name = {v.name: v for v in verdicts}
        lag_ok = [by_name[n] for n in ("lag_bytes", "lag_seconds") if n in by_name]
        ret_ok = [
            by_name[n]
            for n in ("inactive_slot_wal", "slot_lost", "slot_missing", "stopped")
            if n in by_name
        ]
        meta = health.metadata()
        for key in keys:
            if dg.AssetCheckKey(key, "cdc_slot_lag") in context.selected_asset_check_keys:
                yield dg.AssetCheckResult(
                    asset_key=key,
                    check_name="cdc_slot_lag",
                    passed=all(v.passed for v in lag_ok),
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={
                        **meta,
                        "verdict": "; ".join(v.message for v in lag_ok) or "slot missing",
                    },
                )
            if dg.AssetCheckKey(key, "cdc_slot_wal_retention") in context.selected_asset_check_keys:
                failing = [v for v in ret_ok if not v.passed]
                yield dg.AssetCheckResult(
                    asset_key=key,
                    check_name="cdc_slot_wal_retention",
                    passed=not failing,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={**meta, "verdict": "; ".join(v.message for v in (failing or ret_ok))},
                )

    return gfx_cdc_slot_checks


CDC_SENSORS = [gfx_cdc_sensor]
CDC_JOBS = [gfx_cdc_drain_job]
CDC_CHECKS = [build_cdc_checks()]
CDC_ASSET_CHECKS = CDC_CHECKS  # the name gfx_sync/definitions.py's placeholder uses
