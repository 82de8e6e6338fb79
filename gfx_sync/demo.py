"""`python -m gfx_sync.demo --scale S`: a poker broadcast's external database (GFX_SOURCE_DB_URL).

Seeds, deterministically for a seed: GFX players (Korean and international names), feature-table
sessions, hands with a full GFX hand document (actions, board, graphics cues) as jsonb, seat
results, WSOP+ events / players / chip counts, cue sheets, overrides and profile images (real
WebP/PNG/JPEG thumbnails); and on the Supabase side a few render jobs and UI overrides, so the
two-way paths have something to move. ``updated_at`` is spread over the last 14 days, so the
daily partitions have data. Re-running adds nothing when the data is already there.

Counts per scale (``demo`` = 1,000): players size/5, sessions size/50, hands size*5 (with ~6
seats each), WSOP events 24, WSOP players size/2, chip counts size*2.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import typer
from psycopg.types.json import Jsonb

from gfx_sync.entrypoint import run
from resources.postgres import PostgresResource
from tooling.demo_data import DemoData

NATIONS = ["KR", "US", "CA", "GB", "DE", "FR", "BR", "JP", "CN", "VN", "AU", "ES"]
INTL = [
    "Daniel Negreanu",
    "Phil Ivey",
    "Vanessa Selbst",
    "Fedor Holz",
    "Bryn Kenney",
    "Justin Bonomo",
    "Maria Ho",
    "Kristen Foxen",
    "Stephen Chidwick",
    "Jason Koon",
    "Adrian Mateos",
    "Ole Schemion",
]
VENUES = ["Paradise City Seoul", "Horseshoe Las Vegas", "Jeju Shinhwa World", "Merit Crystal Cove"]
GAMES = ["No-Limit Hold'em", "Pot-Limit Omaha", "Mixed Games", "Short Deck"]

# Hands are generated in SQL (fast at any scale, deterministic through setseed): the payload is
# the GFX hand document, ~200-600 bytes, with Korean commentary.
HANDS_SQL = """
INSERT INTO public.gfx_hands (id, session_id, hand_number, started_at, ended_at, button_seat,
    small_blind, big_blind,
                              pot_size, board_cards, payload, created_at, updated_at)
SELECT g, 1 + (g %% %(sessions)s), g, ts, ts + interval '95 seconds', 1 + (g %% 9), 2500, 5000,
       round((random() * 900000)::numeric, 2),
       ARRAY[(ARRAY['As','Kd','Qh','Jc','Ts','9d','8h','7c','6s','5d','4h','3c','2s'])[1 + (g %%
           13)],
             (ARRAY['Ah','Kc','Qs','Jd','Th','9c','8s','7d','6h','5c','4s','3d','2h'])[1 + ((g /
                 13) %% 13)],
             (ARRAY['Ad','Ks','Qc','Jh','Tc','9s','8d','7h','6c','5s','4d','3h','2c'])[1 + ((g /
                 169) %% 13)]],
       jsonb_build_object(
         'hand_id', g, 'gfx_version', '4.2.1', 'table', 'Feature Table ' || (1 + g %% 3),
         'blinds', jsonb_build_object('sb', 2500, 'bb', 5000, 'ante', 5000),
         'actions', jsonb_build_array(
            jsonb_build_object('seq', 1, 'seat', 1 + (g %% 9), 'act', 'raise', 'amount', 12500),
            jsonb_build_object('seq', 2, 'seat', 1 + ((g + 3) %% 9), 'act', 'call',
                               'amount', 12500),
            jsonb_build_object('seq', 3, 'street', 'flop', 'act', 'bet',
                               'amount', (random() * 50000)::int)),
         'graphics', jsonb_build_object('lower_third', true, 'equity_bar', random() > 0.3,
                                        'commentary', (ARRAY['빅 블러프!', '쿨러 상황',
                                                              '리버에서 역전', '폴드 에퀴티']
                                                      )[1 + (g %% 4)])),
       ts, ts
FROM (SELECT g, %(now)s::timestamptz - random() * interval '14 days' AS ts
      FROM generate_series(%(start)s::bigint, %(stop)s::bigint) g) s
ON CONFLICT (id) DO NOTHING
"""

HAND_PLAYERS_SQL = """
INSERT INTO public.gfx_hand_players (id, hand_id, player_id, seat_no, hole_cards, start_stack,
    end_stack, net_result,
                                     is_winner, created_at, updated_at)
SELECT h.id * 10 + s, h.id, 1 + ((h.id * 7 + s * 13) %% %(players)s), s,
       ARRAY['A' || (ARRAY['s','h','d','c'])[1 + s %% 4], 'K' || (ARRAY['s','h','d','c'])[1 + (s +
           1) %% 4]],
       st, st + delta, delta, delta > 0, h.updated_at, h.updated_at
FROM public.gfx_hands h
CROSS JOIN LATERAL generate_series(1, 6) s
CROSS JOIN LATERAL (SELECT round((100000 + random() * 2000000)::numeric, 2) AS st,
                           round(((random() - 0.5) * 200000)::numeric, 2) AS delta) v
WHERE h.id BETWEEN %(start)s AND %(stop)s
ON CONFLICT (id) DO NOTHING
"""


PLAYERS_SQL = (
    "INSERT INTO gfx_players (id, player_code, display_name, name_ko, nationality, photo_url,"
    " total_hands, created_at, updated_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)"
    " ON CONFLICT (id) DO NOTHING"
)
SESSIONS_SQL = (
    "INSERT INTO gfx_sessions (id, session_code, event_name, table_name, venue, status,"
    " gfx_version, started_at, ended_at, metadata, created_at, updated_at)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (id) DO NOTHING"
)
WSOP_EVENTS_SQL = (
    "INSERT INTO wsop_events (id, event_code, name, buy_in, game_type, venue, starts_at,"
    " ends_at, status, entrants, prize_pool, created_at, updated_at)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (id) DO NOTHING"
)
WSOP_PLAYERS_SQL = (
    "INSERT INTO wsop_players (id, wsop_player_id, first_name, last_name, name_ko, country,"
    " city, bracelets, created_at, updated_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
    " ON CONFLICT (id) DO NOTHING"
)
CHIP_COUNTS_SQL = """
INSERT INTO wsop_chip_counts (id, event_id, player_id, day_label, level, chip_count, table_no,
                              seat_no, recorded_at, created_at, updated_at)
SELECT g, 1 + g %% 24, 1 + g %% %(wsop)s,
       (ARRAY['Day 1A','Day 1B','Day 2','Day 3','Final'])[1 + g %% 5],
       1 + g %% 30, (random() * 5000000)::bigint, 1 + g %% 60, 1 + g %% 9, ts, ts, ts
FROM (SELECT g, %(now)s::timestamptz - random() * interval '14 days' AS ts
      FROM generate_series(1, %(n)s) g) s
ON CONFLICT (id) DO NOTHING
"""


def generate_hands(
    conn: psycopg.Connection, start: int, stop: int, sessions: int = 20, now: datetime | None = None
) -> None:
    """Insert gfx_hands ids ``start..stop`` (used by the demo and the benchmark)."""
    conn.execute(
        HANDS_SQL,
        {
            "start": start,
            "stop": stop,
            "sessions": max(1, sessions),
            "now": now or datetime.now(UTC),
        },
    )


def seed_source(conn: psycopg.Connection, data: DemoData) -> dict[str, int]:
    """Seed the external database; the row counts per table."""
    now = datetime.now(UTC)
    conn.execute("SELECT setseed(%s)", ((data.seed % 1000) / 1000.0,))

    def recent() -> datetime:
        return now - timedelta(seconds=data.rng.uniform(0, 14 * 86400))

    n_players, n_sessions = _seed_players_and_sessions(conn, data, recent)
    n_hands = data.size * 5
    for start in range(1, n_hands + 1, 50_000):
        stop = min(n_hands, start + 49_999)
        generate_hands(conn, start, stop, n_sessions, now)
        conn.execute(HAND_PLAYERS_SQL, {"start": start, "stop": stop, "players": n_players})
    n_wsop = _seed_wsop(conn, data, recent, now)
    _seed_cues_and_images(conn, data, recent, n_sessions)
    return {
        "gfx_players": n_players,
        "gfx_sessions": n_sessions,
        "gfx_hands": n_hands,
        "gfx_hand_players": n_hands * 6,
        "wsop_events": 24,
        "wsop_players": n_wsop,
        "wsop_chip_counts": data.size * 2,
    }


def _seed_players_and_sessions(
    conn: psycopg.Connection, data: DemoData, recent: Callable[[], datetime]
) -> tuple[int, int]:
    rng = data.rng
    n_players = max(20, data.size // 5)
    players = []
    for i in range(1, n_players + 1):
        korean = i % 2 == 1
        name = data.korean_name() if korean else f"{INTL[i % len(INTL)]} {i}"
        ts = recent()
        players.append(
            (
                i,
                f"GFX-P{i:06d}",
                name,
                name if korean else None,
                "KR" if korean else rng.choice(NATIONS),
                f"https://cdn.example.com/players/{i}.webp",
                rng.randint(0, 5000),
                ts,
                ts,
            )
        )
    n_sessions = max(3, data.size // 50)
    with conn.cursor() as cur:
        cur.executemany(PLAYERS_SQL, players)
        cur.executemany(
            SESSIONS_SQL,
            [
                (
                    i,
                    f"S-2026-{i:04d}",
                    f"WSOP 서울 #{1 + i % 24}",
                    f"Feature Table {1 + i % 3}",
                    rng.choice(VENUES),
                    "live" if i % 7 == 0 else "ended",
                    "4.2.1",
                    (ts := recent()),
                    ts + timedelta(hours=8),
                    Jsonb({"director": data.korean_name(), "stream_delay_s": 1800}),
                    ts,
                    ts,
                )
                for i in range(1, n_sessions + 1)
            ],
        )
    return n_players, n_sessions


def _seed_wsop(
    conn: psycopg.Connection, data: DemoData, recent: Callable[[], datetime], now: datetime
) -> int:
    rng = data.rng
    buy_ins = [1500, 3000, 10000, 25000]
    n_wsop = max(20, data.size // 2)
    with conn.cursor() as cur:
        cur.executemany(
            WSOP_EVENTS_SQL,
            [
                (
                    i,
                    f"WSOP-2026-{i:02d}",
                    f"Event #{i}: ${buy_ins[i % 4]:,} {GAMES[i % 4]}",
                    buy_ins[i % 4],
                    GAMES[i % 4],
                    rng.choice(VENUES),
                    (ts := recent()),
                    ts + timedelta(days=3),
                    "running" if i % 5 == 0 else "completed",
                    rng.randint(100, 9000),
                    rng.randint(100, 9000) * buy_ins[i % 4] * 0.9,
                    ts,
                    ts,
                )
                for i in range(1, 25)
            ],
        )
        cur.executemany(
            WSOP_PLAYERS_SQL,
            [
                (
                    i,
                    f"WP{100000 + i}",
                    (nm := data.korean_name())[1:],
                    nm[0],
                    nm,
                    "KR" if i % 3 else rng.choice(NATIONS),
                    data.faker.city(),
                    rng.choice([0, 0, 0, 1, 2]),
                    (ts := recent()),
                    ts,
                )
                for i in range(1, n_wsop + 1)
            ],
        )
    conn.execute(CHIP_COUNTS_SQL, {"wsop": n_wsop, "n": data.size * 2, "now": now})
    return n_wsop


def _seed_cues_and_images(
    conn: psycopg.Connection, data: DemoData, recent: Callable[[], datetime], n_sessions: int
) -> None:
    rng = data.rng
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO cue_sheets (session_id, sheet_name, segment_no, cue_type, cue_at,"
            " content, operator, status) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
            [
                (
                    1 + i % n_sessions,
                    f"Day {1 + i % 3} 메인 큐시트",
                    i,
                    rng.choice(["lower_third", "leaderboard", "bug"]),
                    recent(),
                    Jsonb({"text": f"{data.korean_name()} 칩 리더", "duration_s": 8}),
                    data.korean_name(),
                    rng.choice(["draft", "ready", "done"]),
                )
                for i in range(1, 13)
            ],
        )
        images = []
        for i in range(1, 9):
            blob, mime, ext = data.random_image()
            images.append(
                (i, f"players/{i}.{ext}", mime, 64, 48, len(blob), blob, True, "gfx-operator")
            )
        cur.executemany(
            "INSERT INTO profile_images (player_id, storage_path, mime_type, width, height,"
            " byte_size, thumbnail, is_primary, uploaded_by) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            images,
        )


def seed_supabase(conn: psycopg.Connection, data: DemoData) -> None:
    """Things created in the Supabase UI: render jobs and operator overrides."""
    rng = data.rng
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO render_queue (job_type, session_id, player_id, template_name, params,"
            " priority, requested_by)"
            " VALUES (%s,%s,%s,%s,%s,%s,%s)",
            [
                (
                    rng.choice(["lower_third", "leaderboard", "chip_count", "player_profile"]),
                    1,
                    1 + i,
                    f"tpl_{i % 4}_v2",
                    Jsonb({"lang": "ko", "top": 10}),
                    1 + i % 5,
                    data.korean_name(),
                )
                for i in range(6)
            ],
        )
        cur.executemany(
            "INSERT INTO player_overrides (player_id, field_name, override_value, reason,"
            " created_by)"
            " VALUES (%s,%s,%s,%s,%s)",
            [(1 + i, "name_ko", data.korean_name(), "방송 표기 수정", "pd-kim") for i in range(5)],
        )


app = typer.Typer(add_completion=False)


@app.command()
def seed(
    scale: str = typer.Option("demo", "--scale", help="dataset scale"),
    seed: int = typer.Option(20261121, "--seed", help="dataset seed"),
) -> int:
    """Seed the external database (and a few Supabase-side rows) unless it already has data."""
    from resources.shared import gfx_source_db, supabase_db

    source = gfx_source_db.process_config_and_initialize()
    target = supabase_db.process_config_and_initialize()
    data = DemoData(seed=seed, scale=scale).child("gfx_sync")
    with psycopg.connect(source.dsn) as src:
        row = src.execute("SELECT count(*) FROM gfx_hands").fetchone()
        if row and row[0]:
            print("[gfx_sync] external database already seeded; nothing added")
            _link_fdw(target, source.dsn)
            return 0
        counts = seed_source(src, data)
        src.commit()
    with psycopg.connect(target.dsn) as sb:
        row = sb.execute("SELECT count(*) FROM render_queue").fetchone()
        if not (row and row[0]):
            seed_supabase(sb, data.child("supabase"))
            sb.commit()
    print(
        "[gfx_sync] seeded the external database: "
        + ", ".join(f"{k}={v:,}" for k, v in counts.items())
    )
    _link_fdw(target, source.dsn)
    return 0


def _link_fdw(target: PostgresResource, source_dsn: str) -> None:
    """The postgres_fdw link for the SQL function restore_gfx_from_external() (optional in the
    demo)."""
    from gfx_sync.fdw import setup_external_fdw

    try:
        setup_external_fdw(target, source_dsn)
        print(
            "[gfx_sync] SELECT restore_gfx_from_external() is ready"
            " (postgres_fdw server external_db)"
        )
    except Exception as exc:  # noqa: BLE001 - the demo works without it; say why it is missing
        print(
            f"[gfx_sync] postgres_fdw link not created ({type(exc).__name__}: {exc}); "
            "run gfx-sync fdw-setup"
        )


def main(argv: list[str] | None = None) -> int:
    """``python -m gfx_sync.demo [--scale S] [--seed N]``; the exit code."""
    return run(app, argv, "python -m gfx_sync.demo")


if __name__ == "__main__":
    raise SystemExit(main())
