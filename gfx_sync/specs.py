"""The declarative list of synced tables, with each table's method and conflict winner.

One row per table; every mechanism (assets, batch copy, reconciliation, two-way merge, restore,
drift check, and the CDC stream in ``gfx_sync.cdc``) reads this list instead of naming tables.

Fields:
    table:      the table name, identical in both databases (schema ``public``).
    key:        the single-column primary key.
    key_type:   ``bigint`` (key ranges are numeric) or ``uuid`` (rows created on both sides).
    direction:  ``external_to_supabase``, ``supabase_to_external`` or ``both``.
    method:     ``cdc`` (logical replication; the batch path is its reconciliation), ``batch``
                (15-minute watermark copy), ``two_way`` (changes on either side), ``reverse``
                (created in Supabase, results come back from the external renderer).
    winner:     who wins a conflict: ``external`` (absolute: Supabase edits are reverted),
                ``supabase`` (LWW on updated_at, ties go to Supabase), ``lww`` (LWW on updated_at,
                both sides equal, ties broken by the row's content hash), ``supabase_absolute``
                (render_queue: only the result columns come back).
    back_columns: for ``reverse``: the columns the external side may write back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

Direction = Literal["external_to_supabase", "supabase_to_external", "both"]
Method = Literal["cdc", "batch", "two_way", "reverse"]
Winner = Literal["external", "supabase", "lww", "supabase_absolute"]

SOURCE_SYSTEM = "external_pg"  # sync_status.source / asset key prefix of the source specs
TARGET_SYSTEM = "supabase"
SCHEMA = "public"
TIMESTAMP_COLUMN = "updated_at"  # the change timestamp: watermark, partitions, LWW
ORIGIN_COLUMN = "sync_origin"  # two-way tables only: the side of the last non-sync write
SIDE_EXTERNAL = "external"
SIDE_SUPABASE = "supabase"

# Writers acting for the sync set this in their transaction (``SET LOCAL gfx_sync.applying =
# 'on'``):
# the triggers then keep the row's updated_at/sync_origin and do not log a local edit.
# The CDC applier MUST set it too (see ``mark_sync_transaction``).
APPLYING_GUC = "gfx_sync.applying"

BATCH_INTERVAL = timedelta(minutes=15)
CDC_FRESHNESS = timedelta(minutes=5)
BATCH_FRESHNESS = timedelta(minutes=30)


@dataclass(frozen=True)
class TableSpec:
    table: str
    key: str
    key_type: Literal["bigint", "uuid"]
    direction: Direction
    method: Method
    winner: Winner
    group: str
    description: str
    back_columns: tuple[str, ...] = field(default=())

    @property
    def is_two_way(self) -> bool:
        return self.method in ("two_way", "reverse")

    @property
    def source_owned(self) -> bool:
        """External data: Supabase edits are reverted from the source."""
        return self.winner == "external"

    @property
    def freshness(self) -> timedelta:
        return CDC_FRESHNESS if self.method == "cdc" else BATCH_FRESHNESS

    @property
    def sync_interval(self) -> timedelta:
        return CDC_FRESHNESS if self.method == "cdc" else BATCH_INTERVAL

    @property
    def authoritative_side(self) -> str:
        """Where a restore copies from: the side that owns the table."""
        return (
            SIDE_EXTERNAL
            if self.winner == "external"
            else (
                SIDE_SUPABASE if self.winner in ("supabase", "supabase_absolute") else SIDE_EXTERNAL
            )
        )


SPECS: tuple[TableSpec, ...] = (
    TableSpec(
        "gfx_sessions",
        "id",
        "bigint",
        "external_to_supabase",
        "cdc",
        "external",
        "gfx",
        "Broadcast sessions (one per feature table and day) from the GFX system.",
    ),
    TableSpec(
        "gfx_hands",
        "id",
        "bigint",
        "external_to_supabase",
        "cdc",
        "external",
        "gfx",
        "Every hand played on a feature table, with the full GFX hand document as jsonb.",
    ),
    TableSpec(
        "gfx_hand_players",
        "id",
        "bigint",
        "external_to_supabase",
        "cdc",
        "external",
        "gfx",
        "Seat-level results of each hand (hole cards, stacks, winner).",
    ),
    TableSpec(
        "gfx_players",
        "id",
        "bigint",
        "external_to_supabase",
        "cdc",
        "external",
        "gfx",
        "Players known to the GFX system.",
    ),
    TableSpec(
        "wsop_events",
        "id",
        "bigint",
        "external_to_supabase",
        "batch",
        "external",
        "wsop",
        "WSOP+ tournament events.",
    ),
    TableSpec(
        "wsop_players",
        "id",
        "bigint",
        "external_to_supabase",
        "batch",
        "external",
        "wsop",
        "WSOP+ registered players.",
    ),
    TableSpec(
        "wsop_chip_counts",
        "id",
        "bigint",
        "external_to_supabase",
        "batch",
        "external",
        "wsop",
        "WSOP+ chip counts reported per level.",
    ),
    TableSpec(
        "render_queue",
        "id",
        "uuid",
        "supabase_to_external",
        "reverse",
        "supabase_absolute",
        "render",
        "Render jobs created in Supabase; the external renderer reports status and results back.",
        back_columns=("status", "progress", "output_url", "error_message", "rendered_at"),
    ),
    TableSpec(
        "player_overrides",
        "id",
        "uuid",
        "both",
        "two_way",
        "supabase",
        "overrides",
        "Operator overrides of player fields (UI edits in Supabase win ties).",
    ),
    TableSpec(
        "profile_images",
        "id",
        "uuid",
        "both",
        "two_way",
        "supabase",
        "overrides",
        "Player profile images uploaded by admins (Supabase wins ties).",
    ),
    TableSpec(
        "cue_sheets",
        "id",
        "uuid",
        "both",
        "two_way",
        "lww",
        "cue",
        "Broadcast cue sheets edited on both sides (last write wins, both sides equal).",
    ),
)

SPECS_BY_TABLE: dict[str, TableSpec] = {s.table: s for s in SPECS}
CDC_TABLES: tuple[str, ...] = tuple(s.table for s in SPECS if s.method == "cdc")
BATCH_TABLES: tuple[str, ...] = tuple(s.table for s in SPECS if s.method == "batch")
TWO_WAY_TABLES: tuple[str, ...] = tuple(s.table for s in SPECS if s.is_two_way)


def spec_for(table: str) -> TableSpec:
    try:
        return SPECS_BY_TABLE[table]
    except KeyError:
        raise KeyError(
            f"{table!r} is not a synced table; known: {', '.join(SPECS_BY_TABLE)}"
        ) from None


def mark_sync_transaction(conn) -> None:
    """Mark the current transaction on ``conn`` as a sync write (triggers keep timestamps, no
    local-edit log).

    ``SET LOCAL`` ends with the transaction, so call it inside each transaction that writes.
    """
    conn.execute(f"SET LOCAL {APPLYING_GUC} = 'on'")
