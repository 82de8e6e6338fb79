"""The postgres_fdw link Supabase -> external database used by the SQL restore function
``restore_gfx_from_external()`` (migration 0003).

``setup_external_fdw`` (CLI: ``python -m gfx_sync.cli fdw-setup``) creates, on the target, the
server ``external_db`` pointing at ``GFX_SOURCE_DB_URL``, user mappings for the current user and
for the owner of ``restore_gfx_from_external()`` (a SECURITY DEFINER function: postgres_fdw
connects as its owner whoever calls it, e.g. ``service_role``), and foreign tables
``external_db.<table>`` for every External-authoritative table. It is idempotent: the server is
dropped and recreated, so a changed URL or password takes effect.
"""

from __future__ import annotations

from psycopg import conninfo, sql

from gfx_sync.specs import SPECS
from resources.postgres import PostgresResource

SERVER = "external_db"
FOREIGN_SCHEMA = "external_db"


def restorable_tables() -> list[str]:
    return [s.table for s in SPECS if s.source_owned]


def setup_external_fdw(target: PostgresResource, source_dsn: str) -> list[str]:
    """Point ``external_db`` on the target at the source; returns the foreign tables created."""
    info = conninfo.conninfo_to_dict(source_dsn)
    server_opts = {
        "host": info.get("host") or "localhost",
        "port": str(info.get("port") or 5432),
        "dbname": info.get("dbname") or info.get("user") or "postgres",
    }
    user_opts = {k: str(info[k]) for k in ("user", "password") if info.get(k)}
    tables = restorable_tables()

    def options(opts: dict[str, str]) -> sql.Composable:
        return sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(k), sql.Literal(v)) for k, v in opts.items()
        )

    with target.transaction() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
        conn.execute(sql.SQL("DROP SERVER IF EXISTS {} CASCADE").format(sql.Identifier(SERVER)))
        conn.execute(
            sql.SQL("CREATE SERVER {} FOREIGN DATA WRAPPER postgres_fdw OPTIONS ({})").format(
                sql.Identifier(SERVER), options(server_opts)
            )
        )
        owner = conn.execute(
            "SELECT pg_get_userbyid(proowner) FROM pg_proc"
            " WHERE oid = to_regprocedure('public.restore_gfx_from_external(text[])')"
        ).fetchone()
        me = conn.execute("SELECT current_user").fetchone()
        roles = [
            r for r in dict.fromkeys([me[0] if me else None, owner[0] if owner else None]) if r
        ]
        for role in roles:
            mapping = sql.SQL("CREATE USER MAPPING FOR {} SERVER {}").format(
                sql.Identifier(role), sql.Identifier(SERVER)
            )
            if user_opts:
                mapping += sql.SQL(" OPTIONS ({})").format(options(user_opts))
            conn.execute(mapping)
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(FOREIGN_SCHEMA))
        )
        conn.execute(
            sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(FOREIGN_SCHEMA))
        )
        conn.execute(
            sql.SQL("IMPORT FOREIGN SCHEMA public LIMIT TO ({}) FROM SERVER {} INTO {}").format(
                sql.SQL(", ").join(sql.Identifier(t) for t in tables),
                sql.Identifier(SERVER),
                sql.Identifier(FOREIGN_SCHEMA),
            )
        )
    return [f"{FOREIGN_SCHEMA}.{t}" for t in tables]
