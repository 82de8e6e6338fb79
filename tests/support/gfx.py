"""Helpers for the gfx_sync tests: seeding rows and comparing whole tables."""

from __future__ import annotations

from resources.postgres import PostgresResource

_INSERT_HANDS = """
INSERT INTO gfx_hands (id, session_id, hand_number, started_at, pot_size, board_cards, payload,
                       updated_at)
SELECT g, %s::bigint, g, {at} - interval '1 hour', (g %% 1000) * 12.5, ARRAY['As','Kd','7h'],
       jsonb_build_object('hand', g, 'actions', (
           SELECT jsonb_agg(jsonb_build_object('seq', a, 'act', 'raise', 'amount', a * 100,
                                               'player', '김철수'))
           FROM generate_series(1, %s::int) a)),
       {at}
FROM generate_series(%s::bigint, %s::bigint) g
"""


def insert_hands(
    db: PostgresResource,
    n: int,
    start_id: int = 1,
    session_id: int = 1,
    payload_size: int = 40,
    at: str = "now()",
) -> None:
    """``n`` gfx_hands rows with a jsonb payload of ``payload_size`` actions, stamped ``at``
    (an SQL expression)."""
    db.execute(
        _INSERT_HANDS.format(at=at),
        (session_id, payload_size, start_id, start_id + n - 1),
    )


def table_digest(db: PostgresResource, table: str) -> tuple[int, int]:
    """(count, order-independent checksum of every column) of a table."""
    db.execute("SELECT 1")
    row = db.fetch_all(
        "SELECT count(*) AS n, coalesce(sum(hashtextextended(t::text, 0)), 0) AS h"
        f" FROM public.{table} t"
    )[0]
    return int(row["n"]), int(row["h"])
