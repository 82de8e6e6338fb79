"""Asset checks mirroring the sync health rules: lag (``v_sync_dashboard``), per-partition
count and checksum parity between source and target, and schema drift (source vs target,
migrations vs live)."""

import dagster as dg

from gfx_sync.constants import target_key
from gfx_sync.schema import drift_report
from gfx_sync.specs import SOURCE_SYSTEM, SPECS, TableSpec
from resources.postgres import PostgresResource

PARITY_SQL = """
SELECT (updated_at AT TIME ZONE 'UTC')::date::text AS day, count(*) AS n,
       coalesce(bit_xor(hashtextextended({key}::text || '|' || extract(epoch FROM
           updated_at)::text, 0)), 0) AS h
FROM public.{table} GROUP BY 1
"""


def partition_parity(
    source: PostgresResource, target: PostgresResource, spec: TableSpec
) -> dict[str, dict]:
    """Days (partitions) whose row count or (key, updated_at) checksum differ between the sides."""
    q = PARITY_SQL.format(key=spec.key, table=spec.table)
    src = {r["day"]: (r["n"], r["h"]) for r in source.fetch_all(q)}
    tgt = {r["day"]: (r["n"], r["h"]) for r in target.fetch_all(q)}
    return {
        d: {"source_rows": src.get(d, (0, 0))[0], "target_rows": tgt.get(d, (0, 0))[0]}
        for d in sorted(set(src) | set(tgt))
        if src.get(d) != tgt.get(d)
    }


def build_checks(spec: TableSpec) -> list[dg.AssetChecksDefinition]:
    key = target_key(spec.table)

    @dg.asset_check(
        asset=key,
        name="sync_lag",
        blocking=False,
        description="v_sync_dashboard health for this table: HEALTHY passes; STALE/WARNING warn; "
        "CRITICAL/ERROR fail with ERROR severity.",
    )
    def sync_lag(supabase_db: PostgresResource) -> dg.AssetCheckResult:
        row = supabase_db.fetch_one(
            "SELECT health_status, lag_seconds, consecutive_failures, status, last_error FROM"
            " public.v_sync_dashboard"
            " WHERE source = %s AND entity_type = %s",
            (SOURCE_SYSTEM, spec.table),
        )
        if row is None:
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"reason": "no sync_status row"},
            )
        health = row["health_status"]
        never = row["lag_seconds"] is None
        severity = (
            dg.AssetCheckSeverity.ERROR
            if health in ("CRITICAL", "ERROR")
            else dg.AssetCheckSeverity.WARN
        )
        return dg.AssetCheckResult(
            passed=health == "HEALTHY" and not never,
            severity=severity,
            metadata={
                "health_status": health,
                "lag_seconds": float(row["lag_seconds"] or 0),
                "never_synced": never,
                "consecutive_failures": row["consecutive_failures"],
                "status": row["status"],
                "last_error": row["last_error"] or "",
            },
        )

    @dg.asset_check(
        asset=key,
        name="partition_parity",
        blocking=False,
        description="Per day of updated_at: row count and (key, updated_at) checksum equal on both"
        " sides.",
    )
    def parity(
        supabase_db: PostgresResource, gfx_source_db: PostgresResource
    ) -> dg.AssetCheckResult:
        diff = partition_parity(gfx_source_db, supabase_db, spec)
        return dg.AssetCheckResult(
            passed=not diff,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "partitions_different": len(diff),
                "first_differences": dg.MetadataValue.json(dict(list(diff.items())[:20])),
            },
        )

    @dg.asset_check(
        asset=key,
        name="schema_drift",
        blocking=False,
        description="Columns and types equal on source and target, and equal to the migrations.",
    )
    def drift(
        supabase_db: PostgresResource, gfx_source_db: PostgresResource
    ) -> dg.AssetCheckResult:
        with gfx_source_db.connection() as sc, supabase_db.connection() as tc:
            rep = drift_report(sc, tc, [spec.table])
            sc.rollback()
            tc.rollback()
        lines = [line for line in rep.lines() if line.startswith(f"{spec.table}:")]
        return dg.AssetCheckResult(
            passed=not lines,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"problems": "\n".join(lines) or "none"},
        )

    return [sync_lag, parity, drift]


ALL_CHECKS = [c for s in SPECS for c in build_checks(s)]
