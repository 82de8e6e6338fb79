"""Read-only MySQL: many small keyed SELECTs (a query variable resolved per recipient) through
``MySQLResource`` (guard, read-only transaction, time limit, pooled SQLAlchemy engine) against
the physical reference, the bare SELECT repeated on one open pymysql connection; and the
resource's previous behaviour (a new connection per query, with the same session setup) against
the same reference."""

from __future__ import annotations

import os

import pymysql

from benchmarks.harness import BenchContext, Figure, median_time
from resources.mysql import MySQLResource
from tooling.demo_data import scale_factor
from tooling.services import MySQLAdmin

SQL = "SELECT name FROM bench_people WHERE id = %s"


def _connect(database: str) -> pymysql.connections.Connection:
    return pymysql.connect(
        host=os.environ["MYSQL_HOST"],
        port=int(os.environ["MYSQL_PORT"]),
        user=os.environ["MYSQL_READ_USER"],
        password=os.environ["MYSQL_READ_PASSWORD"],
        database=database,
        charset="utf8mb4",
    )


def bench(ctx: BenchContext) -> list[Figure]:
    queries = max(200, min(scale_factor(ctx.scale) // 50, 5_000))
    admin = MySQLAdmin().connect(ctx.mysql_database)
    try:
        with admin.cursor() as cur:
            cur.execute("CREATE TABLE bench_people (id INT PRIMARY KEY, name VARCHAR(40))")
            cur.executemany(
                "INSERT INTO bench_people VALUES (%s, %s)",
                [(i, f"고객{i}") for i in range(1, 1_001)],
            )
    finally:
        admin.close()
    mysql = MySQLResource(
        host=os.environ["MYSQL_HOST"],
        port=int(os.environ["MYSQL_PORT"]),
        user=os.environ["MYSQL_READ_USER"],
        password=os.environ["MYSQL_READ_PASSWORD"],
        database=ctx.mysql_database,
    )
    keys = [(i % 1_000) + 1 for i in range(queries)]

    def ours() -> None:
        for k in keys:
            mysql.query(SQL, (k,))

    def per_query_connection() -> None:
        for k in keys:
            conn = _connect(ctx.mysql_database)
            try:
                with conn.cursor() as cur:
                    cur.execute("SET SESSION max_statement_time = %s", (30.0,))
                    cur.execute("START TRANSACTION READ ONLY")
                    cur.execute(SQL, (k,))
                    cur.fetchall()
                conn.rollback()
            finally:
                conn.close()

    def reference() -> None:
        conn = _connect(ctx.mysql_database)
        try:
            with conn.cursor() as cur:
                for k in keys:
                    cur.execute(SQL, (k,))
                    cur.fetchall()
        finally:
            conn.close()

    mysql.scalar("SELECT 1")  # the pool's first connection is set-up, not steady state
    t_ref = median_time(reference, ctx.repeats)
    t_ours = median_time(ours, ctx.repeats)
    t_old = median_time(per_query_connection, ctx.repeats)
    ref_qps = queries / t_ref
    note = f"{queries} keyed SELECTs"
    return [
        Figure(
            "mysql_pool",
            "queries/s (guarded, read-only txn, pooled)",
            queries / t_ours,
            ref_qps,
            "bare SELECT on one open connection",
            note=note,
        ),
        Figure(
            "mysql_pool",
            "queries/s (before: new connection per query)",
            queries / t_old,
            ref_qps,
            "bare SELECT on one open connection",
            note=note,
        ),
    ]
