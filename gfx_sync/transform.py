"""Pure logic of the sync: SQL fragments built from a spec and a column list, the overlap
argument, chunk-hash diffing. No Dagster, no clients."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta

from psycopg import sql

from gfx_sync.specs import ORIGIN_COLUMN, SIDE_SUPABASE, TIMESTAMP_COLUMN, TableSpec


def ident_list(columns: Sequence[str], prefix: str | None = None) -> sql.Composable:
    if prefix:
        return sql.SQL(", ").join(sql.Identifier(prefix, c) for c in columns)
    return sql.SQL(", ").join(sql.Identifier(c) for c in columns)


def next_watermark(target_max: datetime | None, horizon: datetime | None) -> datetime | None:
    """The watermark a committed run leaves in sync_status: the target's ``max(updated_at)``, held
    back to the read horizon: the start of the source's oldest transaction open at read time
    (or the read time itself).

    Why: a row is stamped with its transaction's start time (``now()``) but becomes visible only
    at commit. Every row the read could not see belonged to a transaction open at read time, so
    its stamp is >= the oldest open transaction's start. The next read starts at or below that
    point, so no late commit is ever skipped, however long the transaction ran. The value is
    never above the target's own max(updated_at), so it is never ahead of committed data.
    """
    if target_max is None or horizon is None:
        return target_max
    return min(target_max, horizon)


def read_base(target_max: datetime | None, stored: datetime | None) -> datetime | None:
    """Where the next incremental read starts (before the overlap): the lower of the target's
    ``max(updated_at)`` and the held-back watermark the last incremental run committed beside the
    data. No stored watermark (never synced incrementally, e.g. only a window backfill ran, or the
    status row was lost) or an empty target means a full read: a partial backfill must not hide
    the older rows it did not cover."""
    if target_max is None or stored is None:
        return None
    return min(target_max, stored)


def read_from(
    watermark: datetime | None, overlap: timedelta, source_now: datetime
) -> datetime | None:
    """Lower bound of an incremental read: the watermark minus the overlap (a floor for clock
    jitter and commit-order slack), never in the future (a future-dated row on the target must not
    make the read skip real changes)."""
    if watermark is None:
        return None
    return min(watermark, source_now) - overlap


def day_window(partition_key: str) -> tuple[datetime, datetime]:
    d = date.fromisoformat(partition_key)
    start = datetime.combine(d, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def content_columns(columns: Sequence[str]) -> list[str]:
    """Columns compared for 'same content' (everything but the origin marker)."""
    return [c for c in columns if c != ORIGIN_COLUMN]


def changed_guard(columns: Sequence[str], target_alias: str = "t") -> sql.Composable:
    """ON CONFLICT guard for source-owned data: a newer version, or the same stamp with other
    content
    (a local edit that kept updated_at). An older incoming version never overwrites (CDC may be
    ahead)."""
    ts = sql.Identifier(TIMESTAMP_COLUMN)
    return sql.SQL(
        "({t}.{ts} < EXCLUDED.{ts} OR ({t}.{ts} = EXCLUDED.{ts} AND ({tc}) IS DISTINCT FROM"
        " ({ec})))"
    ).format(
        t=sql.Identifier(target_alias),
        ts=ts,
        tc=ident_list(columns, target_alias),
        ec=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in columns),
    )


def tie_break(spec: TableSpec, alias: str, columns: Sequence[str]) -> sql.Composable:
    """A value that orders two versions with the same updated_at, identical on both sides.

    Supabase-priority tables: the Supabase-originated version ranks higher. Equal-priority tables
    (cue_sheets): the md5 of the row's content, so both sides pick the same winner without
    knowing where they run.
    """
    a = sql.Identifier(alias) if alias != "EXCLUDED" else sql.SQL("EXCLUDED")
    if spec.winner in ("supabase", "supabase_absolute"):
        return sql.SQL("(CASE WHEN {a}.{o} = {s} THEN 1 ELSE 0 END)::text").format(
            a=a, o=sql.Identifier(ORIGIN_COLUMN), s=sql.Literal(SIDE_SUPABASE)
        )
    return sql.SQL("md5(row({})::text)").format(
        sql.SQL(", ").join(
            sql.SQL("{}.{}").format(a, sql.Identifier(c)) for c in content_columns(columns)
        )
    )


def lww_guard(spec: TableSpec, columns: Sequence[str], target_alias: str = "t") -> sql.Composable:
    """ON CONFLICT guard for two-way tables: (updated_at, tie-break) strictly greater wins. Equal
    versions never overwrite each other, so a copied row cannot echo back."""
    ts = sql.Identifier(TIMESTAMP_COLUMN)
    return sql.SQL("(({t}.{ts}, {tbt}) < (EXCLUDED.{ts}, {tbe}))").format(
        t=sql.Identifier(target_alias),
        ts=ts,
        tbt=tie_break(spec, target_alias, columns),
        tbe=tie_break(spec, "EXCLUDED", columns),
    )


def bucket_expr(spec: TableSpec, chunk_rows: int) -> sql.Composable:
    """The key-range chunk a row belongs to: ``id / chunk_rows`` for bigint keys, the leading
    12 bits of the uuid (4096 ranges) for uuid keys. Both are ranges of the key order."""
    key = sql.Identifier(spec.key)
    if spec.key_type == "bigint":
        return sql.SQL("({} / {})").format(key, sql.Literal(int(chunk_rows)))
    return sql.SQL("(('x' || substr({}::text, 1, 3))::bit(12)::int)").format(key)


def chunk_predicate(spec: TableSpec, chunk_rows: int, buckets: Sequence[int]) -> sql.Composable:
    """Rows of the given chunks (a range scan on the key for bigint keys)."""
    key = sql.Identifier(spec.key)
    if spec.key_type == "bigint":
        parts = [
            sql.SQL("({k} >= {lo} AND {k} < {hi})").format(
                k=key, lo=sql.Literal(b * chunk_rows), hi=sql.Literal((b + 1) * chunk_rows)
            )
            for b in buckets
        ]
        return (
            sql.SQL("(") + sql.SQL(" OR ").join(parts) + sql.SQL(")") if parts else sql.SQL("false")
        )
    return sql.SQL("{} = ANY({})").format(bucket_expr(spec, chunk_rows), sql.Literal(list(buckets)))


def row_hash_expr(key: str, columns: Sequence[str], full: bool) -> sql.Composable:
    """Per-row fingerprint. Cheap pass: (key, updated_at) hashed as integers (no text rendering,
    no detoasting of the payload). Full pass: every column's text (run with ``TimeZone = UTC``)."""
    if full:
        return sql.SQL("hashtextextended(row({})::text, 0)").format(ident_list(columns))
    # +/-infinity (and stamps past year 200000) have no epoch in bigint microseconds: they get
    # the two ends of the bigint range as seeds (the full pass still tells them apart)
    return sql.SQL(
        "hashtextextended({k}::text, CASE WHEN {ts} > '-infinity' AND {ts} < '200000-01-01+00'"
        " THEN (extract(epoch FROM {ts}) * 1000000)::bigint"
        " WHEN {ts} > 'epoch' THEN 9223372036854775807 ELSE -9223372036854775807 END)"
    ).format(k=sql.Identifier(key), ts=sql.Identifier(TIMESTAMP_COLUMN))


def diff_chunks(
    source: Mapping[int, tuple[int, int]], target: Mapping[int, tuple[int, int]]
) -> list[int]:
    """Chunks whose (count, xor-hash) differ, or exist on one side only."""
    return sorted(b for b in set(source) | set(target) if source.get(b) != target.get(b))


def diff_rows(source: Mapping[str, int], target: Mapping[str, int]) -> tuple[list[str], list[str]]:
    """(keys to copy from the source: missing or different on the target, keys to delete on the
    target)."""
    to_copy = [k for k, h in source.items() if target.get(k) != h]
    to_delete = [k for k in target if k not in source]
    return sorted(to_copy), sorted(to_delete)


def check_expression(constraint_def: str) -> str | None:
    """The boolean expression of a ``pg_get_constraintdef`` CHECK definition, or None."""
    text = constraint_def.strip()
    if not text.upper().startswith("CHECK "):
        return None
    text = text[len("CHECK ") :]
    if text.upper().endswith(" NOT VALID"):
        text = text[: -len(" NOT VALID")]
    return text


def compare_columns(
    source: Iterable[tuple[str, str]], target: Iterable[tuple[str, str]]
) -> list[str]:
    """Human-readable differences between two ordered (column, type) lists; empty when equal."""
    src, tgt = list(source), list(target)
    problems: list[str] = []
    s_map, t_map = dict(src), dict(tgt)
    for name, typ in src:
        if name not in t_map:
            problems.append(f"column {name} ({typ}) missing on target")
        elif t_map[name] != typ:
            problems.append(f"column {name}: source {typ}, target {t_map[name]}")
    for name, typ in tgt:
        if name not in s_map:
            problems.append(f"column {name} ({typ}) missing on source")
    if not problems and [n for n, _ in src] != [n for n, _ in tgt]:
        problems.append("same columns in a different order (binary COPY needs the same order)")
    return problems
