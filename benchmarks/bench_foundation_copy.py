"""Foundation: ``PostgresResource.copy_query_into`` (psycopg 3 binary COPY pass-through) against
the physical reference, ``psql -c "COPY … TO STDOUT" | psql -c "COPY … FROM STDIN"`` between the
same two databases, on a hands-like table (bigint key, timestamps, numeric, text, ~200 B jsonb)."""

from __future__ import annotations

import subprocess

from benchmarks.harness import BenchContext, Figure, median_time
from resources.postgres import PostgresResource
from tooling.demo_data import scale_factor

COLUMNS = ["id", "session_id", "hand_no", "started_at", "updated_at", "pot", "board", "payload"]
DDL = """
DROP TABLE IF EXISTS {t};
CREATE UNLOGGED TABLE {t} (id bigint PRIMARY KEY, session_id bigint, hand_no int,
  started_at timestamptz, updated_at timestamptz, pot numeric(14,2), board text, payload jsonb)
"""


def bench(ctx: BenchContext) -> list[Figure]:
    rows = min(scale_factor(ctx.scale), 1_000_000)
    src = PostgresResource(dsn=ctx.gfx_source_url, application_name="bench-src")
    dst = PostgresResource(dsn=ctx.supabase_url, application_name="bench-dst")
    src.execute(DDL.format(t="bench_hands"))
    src.execute(
        "INSERT INTO bench_hands SELECT g, g / 100, g %% 100, now() - g * interval '1 second',"
        " now(), (g %% 5000) * 1.5, 'As Kd 7h 2c 9s',"
        " jsonb_build_object('players', jsonb_build_array('김민준', '이서연', '박지훈'),"
        " 'actions', jsonb_build_array(jsonb_build_object('seat', 1, 'bet', g %% 900),"
        " jsonb_build_object('seat', 2, 'fold', true)),"
        " 'note', repeat('x', 60)) FROM generate_series(1, %s) g",
        (rows,),
    )
    src.execute("ANALYZE bench_hands")

    def reset() -> None:
        dst.execute(DDL.format(t="bench_hands_copy"))

    def ours() -> None:
        with dst.transaction() as conn:
            src.copy_query_into(dst, conn, "SELECT * FROM bench_hands", "bench_hands_copy", COLUMNS)

    def reference() -> None:
        out = subprocess.Popen(
            [
                "psql",
                "-X",
                "-q",
                ctx.gfx_source_url,
                "-c",
                "COPY (SELECT * FROM bench_hands) TO STDOUT (FORMAT binary)",
            ],
            stdout=subprocess.PIPE,
        )
        subprocess.run(
            [
                "psql",
                "-X",
                "-q",
                ctx.supabase_url,
                "-c",
                "COPY bench_hands_copy FROM STDIN (FORMAT binary)",
            ],
            stdin=out.stdout,
            check=True,
        )
        out.stdout.close()
        if out.wait() != 0:
            raise RuntimeError("psql COPY TO failed")

    t_ref = median_time(reference, ctx.repeats, setup=reset)
    t_ours = median_time(ours, ctx.repeats, setup=reset)
    assert dst.fetch_value("SELECT count(*) FROM bench_hands_copy") == rows
    src.execute("DROP TABLE bench_hands")
    dst.execute("DROP TABLE bench_hands_copy")
    return [
        Figure(
            "foundation copy_query_into",
            "rows/s",
            rows / t_ours,
            rows / t_ref,
            "psql COPY | psql COPY",
            note=f"{rows:,} rows, median of {ctx.repeats}",
        )
    ]
