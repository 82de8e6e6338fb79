"""Make the local PostgreSQL and MariaDB ready: running, ``wal_level=logical``, databases and users.

Used by ``make`` (through ``platform services ensure``) and by the test session. Every step is
idempotent; a server that is not installed gets one message saying what to install.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from dataclasses import dataclass

import psycopg
import pymysql
from psycopg import sql

from resources.environment import LOCAL_DEFAULTS, apply_local_defaults
from resources.errors import ConfigurationError

PG_ADMIN_URL = os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_SETTINGS = {"wal_level": "logical", "max_replication_slots": "40", "max_wal_senders": "40"}


class ServiceMissing(ConfigurationError):
    """A required database server is not installed or cannot be started."""


@dataclass
class MySQLAdmin:
    host: str = os.environ.get("MYSQL_ADMIN_HOST", "127.0.0.1")
    port: int = int(os.environ.get("MYSQL_ADMIN_PORT", os.environ.get("MYSQL_PORT", "3306")))
    user: str = os.environ.get("MYSQL_ADMIN_USER", "root")
    password: str = os.environ.get("MYSQL_ADMIN_PASSWORD", "")

    def connect(self, database: str | None = None) -> pymysql.connections.Connection:
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database,
            autocommit=True,
            charset="utf8mb4",
            connect_timeout=5,
        )


def _say(msg: str) -> None:
    print(f"[services] {msg}", flush=True)


def _pg_connect(url: str = PG_ADMIN_URL) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


def _wait(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            check()
            return
        except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
            last = exc
            time.sleep(0.5)
    raise ServiceMissing(f"{what} did not come up within {seconds:.0f}s: {last}")


def _pg_cluster() -> tuple[str, str] | None:
    versions = sorted(glob.glob("/etc/postgresql/*/main"))
    if not versions:
        return None
    return versions[-1].split("/")[3], "main"


def _pg_ctl(action: str) -> None:
    cluster = _pg_cluster()
    if cluster is None or not shutil.which("pg_ctlcluster"):
        raise ServiceMissing(
            "PostgreSQL is not installed (no cluster under /etc/postgresql). "
            "Install it with: apt-get install -y postgresql   (then run make again)"
        )
    _say(f"pg_ctlcluster {cluster[0]} {cluster[1]} {action}")
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", cluster[0], cluster[1], action],
        check=True,
        capture_output=True,
        text=True,
    )


def ensure_postgres(databases: list[str]) -> None:
    """Start PostgreSQL if needed, set logical replication (restart once), create databases."""
    try:
        _pg_connect().close()
    except psycopg.OperationalError:
        _pg_ctl("start")
        _wait(lambda: _pg_connect().close(), 60, "PostgreSQL")
    with _pg_connect() as conn:
        current = {
            k: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(k))).fetchone()[0]
            for k in PG_SETTINGS
        }
        to_change = {
            k: v
            for k, v in PG_SETTINGS.items()
            if (current[k] != v if k == "wal_level" else int(current[k]) < int(v))
        }
        for key, value in to_change.items():
            conn.execute(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(key), sql.Literal(value))
            )
    if to_change:
        _say(
            f"changing {', '.join(f'{k}={v}' for k, v in to_change.items())}:"
            " restarting PostgreSQL once"
        )
        _pg_ctl("restart")
        _wait(lambda: _pg_connect().close(), 60, "PostgreSQL")
    with _pg_connect() as conn:
        level = conn.execute("SHOW wal_level").fetchone()[0]
        if level != "logical":
            raise ServiceMissing(f"wal_level is {level!r} after restart; CDC needs 'logical'")
        existing = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        for name in databases:
            if name not in existing:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                _say(f"created PostgreSQL database {name}")
    _say(f"PostgreSQL ready (wal_level=logical; databases: {', '.join(databases)})")


def _mariadb_binary() -> str | None:
    for candidate in ("/usr/sbin/mariadbd", "/usr/sbin/mysqld"):
        if os.path.exists(candidate):
            return candidate
    return shutil.which("mariadbd") or shutil.which("mysqld")


def ensure_mysql(
    database: str, read_user: str, read_password: str, admin: MySQLAdmin | None = None
) -> None:
    """Start MariaDB if needed; create the operational database and its SELECT-only user."""
    admin = admin or MySQLAdmin()
    try:
        admin.connect().close()
    except pymysql.err.OperationalError:
        binary = _mariadb_binary()
        if binary is None:
            raise ServiceMissing(
                "MariaDB/MySQL is not installed (no mariadbd)."
                " Install it with: apt-get install -y mariadb-server"
            ) from None
        _say(f"starting {binary}")
        subprocess.run(
            ["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", binary],
            check=True,
        )
        _wait(lambda: admin.connect().close(), 60, "MariaDB")
    with admin.connect() as conn, conn.cursor() as cur:
        cur.execute(
            f"CREATE DATABASE IF NOT EXISTS `{database}`"
            " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
        grant_read_only(cur, database, read_user, read_password)
    _say(f"MariaDB ready (database {database}; SELECT-only user {read_user})")


def grant_read_only(cur, database: str, read_user: str, read_password: str) -> None:
    """Create ``read_user`` if missing and give it SELECT (and nothing else) on ``database``."""
    for host in ("localhost", "127.0.0.1", "%"):
        cur.execute(
            "CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (read_user, host, read_password)
        )
        cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (read_user, host, read_password))
        cur.execute(f"GRANT SELECT, SHOW VIEW ON `{database}`.* TO %s@%s", (read_user, host))


def dbname_of(url: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(url)["dbname"]


def _broker_address(url: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(url.replace("pyamqp://", "amqp://", 1))
    return parts.hostname or "127.0.0.1", parts.port or 5672


def ensure_rabbitmq(url: str) -> None:
    """The distributed profile's Celery broker: reachable, or started, or a clear message."""
    import socket

    host, port = _broker_address(url)

    def reachable() -> None:
        socket.create_connection((host, port), timeout=2).close()

    try:
        reachable()
    except OSError:
        server = shutil.which("rabbitmq-server")
        if server is None or host not in ("127.0.0.1", "localhost"):
            raise ServiceMissing(
                f"RabbitMQ is not reachable at {host}:{port} and not installed here: install it"
                " (Debian/Ubuntu: apt-get install rabbitmq-server) or set"
                " DAGSTER_CELERY_BROKER_URL to a running broker"
            ) from None
        _say("starting RabbitMQ")
        subprocess.run([server, "-detached"], check=False)
        _wait(reachable, 90, "RabbitMQ")
    _say(f"RabbitMQ ready at {host}:{port}")


def ensure_distributed() -> None:
    """The distributed profile beside ``ensure_all``: the instance database and the broker."""
    apply_local_defaults()
    url = os.environ["DAGSTER_PG_URL"].replace("postgresql+psycopg2://", "postgresql://", 1)
    ensure_postgres([dbname_of(url)])
    ensure_rabbitmq(os.environ["DAGSTER_CELERY_BROKER_URL"])


def ensure_all() -> None:
    """Everything ``make`` needs: both servers, the contract's databases and the reader user."""
    apply_local_defaults()
    env = os.environ
    databases = [
        dbname_of(env.get("SUPABASE_DB_URL", LOCAL_DEFAULTS["SUPABASE_DB_URL"])),
        dbname_of(env.get("GFX_SOURCE_DB_URL", LOCAL_DEFAULTS["GFX_SOURCE_DB_URL"])),
    ]
    ensure_postgres(databases)
    ensure_mysql(env["MYSQL_DATABASE"], env["MYSQL_READ_USER"], env["MYSQL_READ_PASSWORD"])
