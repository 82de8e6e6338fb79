"""Dagster building blocks shared by the code locations: the migrations job factory, the
run-failure notification sensor factory and metadata helpers."""

import time
from collections.abc import Sequence

import dagster as dg

from resources.circuit_breaker import breaker_metadata
from resources.environment import current_environment
from resources.migrations import applicable, apply_migrations, sets_named
from resources.notifications import notify
from resources.postgres import PostgresResource

TARGET_RESOURCE = {"supabase": "supabase_db", "gfx_source": "gfx_source_db"}


def build_migrations_job(domain: str, set_names: Sequence[str]) -> dg.JobDefinition:
    """A job ``<domain>_migrations`` that applies the shared set and the domain's sets.

    Idempotent: launching it on an up-to-date database applies nothing and says so.
    """
    all_sets = sets_named(["platform", *[n for n in set_names if n != "platform"]])
    required = {TARGET_RESOURCE[m.target] for m in all_sets}

    @dg.op(
        name=f"{domain}_apply_migrations",
        required_resource_keys=required,
        description=f"Apply pending SQL migrations for {', '.join(m.name for m in all_sets)} "
        "(local-only sets, such as the external source's schema, only when PLATFORM_ENV=local).",
    )
    def apply_op(context: dg.OpExecutionContext) -> dg.Output[dict[str, int]]:
        started = time.perf_counter()
        msets = applicable(all_sets, current_environment())
        for skipped in sorted({m.name for m in all_sets} - {m.name for m in msets}):
            context.log.info(f"skipping migration set {skipped}: local-only")
        totals = {"applied": 0, "already_applied": 0}
        applied_names: list[str] = []
        for target in sorted({m.target for m in msets}):
            resource = getattr(context.resources, TARGET_RESOURCE[target])
            report = apply_migrations(
                resource.dsn, [m for m in msets if m.target == target], log=context.log.info
            )
            totals["applied"] += len(report.applied)
            totals["already_applied"] += len(report.already_applied)
            applied_names += report.applied
        metadata: dict[str, dg.RawMetadataValue] = {
            **totals,
            "applied_migrations": ", ".join(applied_names) or "none (up to date)",
            "duration_s": round(time.perf_counter() - started, 3),
        }
        context.log.info(f"migrations for {domain}: {metadata}")
        return dg.Output(totals, metadata=metadata)

    @dg.job(
        name=f"{domain}_migrations",
        description=f"Apply {domain}'s database migrations (safe to re-run).",
        # Never retried blindly by the instance's run retries: a failed migration needs a person.
        tags={"domain": domain, "dagster/max_retries": "0"},
    )
    def migrations_job() -> None:
        apply_op()

    return migrations_job


def run_metadata(started: float, **figures: object) -> dict[str, object]:
    """Standard run metadata: the given figures, the duration and every breaker's state."""
    return {**figures, "duration_s": round(time.perf_counter() - started, 3), **breaker_metadata()}


def build_run_failure_notifier(domain: str) -> dg.SensorDefinition:
    """A run-failure sensor ``<domain>_run_failure_notifications`` for every job of the code
    location it is defined in: one ``public.notifications`` row per failed run (deduplicated by
    run id), which the delivery sensor sends on.

    The row names the job, the run and the failed steps with the error's class only: exception
    messages may carry data values, and notifications never carry personal data.
    """

    @dg.run_failure_sensor(
        name=f"{domain}_run_failure_notifications",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description=f"Writes a notification for every failed run of a {domain} job.",
    )
    def _notify_failed_run(
        context: dg.RunFailureSensorContext, supabase_db: PostgresResource
    ) -> None:
        run = context.dagster_run
        steps = sorted(
            {e.step_key for e in context.get_step_failure_events() if e.step_key is not None}
        )
        error = context.failure_event.event_specific_data
        cls = getattr(getattr(error, "error", None), "cls_name", None)
        with supabase_db.transaction() as conn:
            notify(
                conn,
                domain=domain,
                type="run_failure",
                severity="error",
                title=f"Dagster run failed: {run.job_name}",
                message=f"run {run.run_id[:8]}"
                + (f", failed steps: {', '.join(steps)}" if steps else "")
                + (f" ({cls})" if cls else ""),
                metadata={"job_name": run.job_name, "run_id": run.run_id, "steps": steps},
                dedupe_key=f"run_failure:{run.run_id}",
            )

    return _notify_failed_run
