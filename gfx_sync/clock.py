"""Two clocks, one last-write-wins decision.

The external database and Supabase are different servers: a row's ``updated_at`` is stamped by
the clock of the side that wrote it (``sync_origin`` says which). Every two-way run measures the
offset between the two clocks (``clock_timestamp()`` on each, each read bracketed by this
process's clock, so half the round trip bounds the error) and decides a conflict between
versions from different sides on the corrected times. When the corrected times are closer than
the measured uncertainty (plus an optional margin) the clocks cannot order the writes: the
spec's deterministic tie-break decides instead (the same on both sides, so they converge), and
the run says how many keys were decided that way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from gfx_sync import transform as tf
from gfx_sync.specs import ORIGIN_COLUMN, SIDE_EXTERNAL, TIMESTAMP_COLUMN, TableSpec

SAMPLES = 3


@dataclass(frozen=True)
class ClockOffset:
    """``offset_s``: external clock minus Supabase clock; ``uncertainty_s``: its error bound
    (plus ``margin_s``, configured)."""

    offset_s: float
    uncertainty_s: float
    margin_s: float = 0.0

    @property
    def window_s(self) -> float:
        return self.uncertainty_s + self.margin_s

    def metadata(self) -> dict[str, float]:
        return {
            "clock_offset_s": round(self.offset_s, 6),
            "clock_uncertainty_s": round(self.window_s, 6),
        }


def _offset_to_local(conn: psycopg.Connection) -> tuple[float, float]:
    """(server clock minus local clock, half round trip) of the tightest of a few reads."""
    best: tuple[float, float] | None = None
    for _ in range(SAMPLES):
        with conn.transaction():  # its own (or a savepoint): never leaves a transaction open
            t0 = time.time()
            row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
            t1 = time.time()
        assert row is not None
        half = (t1 - t0) / 2
        off = float(row[0]) - (t0 + half)
        if best is None or half < best[1]:
            best = (off, half)
    assert best is not None
    return best


def measure(
    source: psycopg.Connection, target: psycopg.Connection, margin_s: float = 0.0
) -> ClockOffset:
    """The external clock's offset from Supabase's, and how sure we are of it."""
    src_off, src_half = _offset_to_local(source)
    tgt_off, tgt_half = _offset_to_local(target)
    return ClockOffset(src_off - tgt_off, src_half + tgt_half, margin_s)


def corrected(alias: sql.Composable, offset: ClockOffset) -> sql.Composable:
    """The row's updated_at on Supabase's clock (external stamps shifted by the offset)."""
    return sql.SQL(
        "({a}.{ts} - CASE WHEN {a}.{o} = {ext} THEN make_interval(secs => {off}) "
        "ELSE interval '0' END)"
    ).format(
        a=alias,
        ts=sql.Identifier(TIMESTAMP_COLUMN),
        o=sql.Identifier(ORIGIN_COLUMN),
        ext=sql.Literal(SIDE_EXTERNAL),
        off=sql.Literal(offset.offset_s),
    )


def clock_aware_guard(
    spec: TableSpec, columns: Sequence[str], offset: ClockOffset, target_alias: str = "t"
) -> sql.Composable:
    """ON CONFLICT guard: like :func:`gfx_sync.transform.lww_guard` for versions from the same
    side; across sides, on corrected times, and by the tie-break alone when they are within the
    uncertainty window."""
    t = sql.Identifier(target_alias)
    ex = sql.SQL("EXCLUDED")
    return sql.SQL(
        "(CASE WHEN {t}.{o} IS NOT DISTINCT FROM EXCLUDED.{o} THEN {plain}"
        " WHEN abs(extract(epoch FROM {ce} - {ct})) <= {win} THEN {tbt} < {tbe}"
        " ELSE {ct} < {ce} END)"
    ).format(
        t=t,
        o=sql.Identifier(ORIGIN_COLUMN),
        plain=tf.lww_guard(spec, columns, target_alias),
        ce=corrected(ex, offset),
        ct=corrected(t, offset),
        win=sql.Literal(offset.window_s),
        tbt=tf.tie_break(spec, target_alias, columns),
        tbe=tf.tie_break(spec, "EXCLUDED", columns),
    )


def uncertain_keys(
    tc: psycopg.Connection,
    spec: TableSpec,
    columns: Sequence[str],
    stage: sql.Composable,
    offset: ClockOffset,
) -> list[str]:
    """Keys whose incoming (external) and Supabase versions come from different sides within the
    uncertainty window: decided by the tie-break, not by the clocks."""
    s, t = sql.Identifier("s"), sql.Identifier("t")
    rows = tc.execute(
        sql.SQL(
            "SELECT s.{k}::text FROM {stage} s JOIN {tbl} t ON t.{k} = s.{k}"
            " WHERE t.{o} IS DISTINCT FROM s.{o}"
            " AND abs(extract(epoch FROM {cs} - {ct})) <= {win}"
            " AND ({tc}) IS DISTINCT FROM ({sc})"
        ).format(
            k=sql.Identifier(spec.key),
            stage=stage,
            tbl=sql.Identifier("public", spec.table),
            o=sql.Identifier(ORIGIN_COLUMN),
            cs=corrected(s, offset),
            ct=corrected(t, offset),
            win=sql.Literal(offset.window_s),
            tc=tf.ident_list(tf.content_columns(columns), "t"),
            sc=tf.ident_list(tf.content_columns(columns), "s"),
        )
    ).fetchall()
    return [r[0] for r in rows]
