"""The read-only guard and the SELECT-only MySQL user: two locks.

The guard alone is unit-tested (pure parsing); the reader user is tested against MariaDB.
"""

import pymysql
import pytest

from resources.errors import (
    QueryPermissionError,
    QuerySyntaxError,
    QueryTimeoutError,
    ReadOnlyViolation,
)
from resources.mysql import MySQLResource
from resources.sql_guard import check_read_only

REJECTED = [
    ("INSERT INTO customers (name) VALUES ('x')", "got INSERT"),
    ("UPDATE customers SET name = 'x'", "got UPDATE"),
    ("DELETE FROM customers", "got DELETE"),
    ("REPLACE INTO customers VALUES (1)", "got REPLACE"),
    ("DROP TABLE customers", "got DROP"),
    ("CREATE TABLE x (a int)", "got CREATE"),
    ("ALTER TABLE customers ADD COLUMN b int", "got ALTER"),
    ("TRUNCATE customers", "got TRUNCATE"),
    ("GRANT ALL ON *.* TO someone", "got GRANT"),
    ("SET @a = 1", "got SET"),
    ("CALL purge()", "got CALL"),
    ("LOAD DATA INFILE '/tmp/x' INTO TABLE customers", "got LOAD"),
    ("SELECT 1; DROP TABLE customers", "exactly one statement"),
    ("SELECT 1; SELECT 2", "exactly one statement"),
    ("SELECT * FROM customers INTO OUTFILE '/tmp/out.csv'", "INTO OUTFILE"),
    ("SELECT * FROM customers INTO DUMPFILE '/tmp/out.bin'", "INTO DUMPFILE"),
    ("SELECT id INTO @v FROM customers", "SELECT ... INTO"),
    ("SELECT * FROM customers FOR UPDATE", "locking reads"),
    ("SELECT * FROM customers LOCK IN SHARE MODE", "locking reads"),
    ("SELECT * FROM customers FOR SHARE", "locking reads"),
    ("SELECT SLEEP(10)", "SLEEP()"),
    ("SELECT id FROM customers WHERE id = (SELECT SLEEP(1))", "SLEEP()"),
    ("SELECT BENCHMARK(100000000, MD5('a'))", "BENCHMARK()"),
    ("SELECT GET_LOCK('l', 10)", "GET_LOCK()"),
    ("SELECT LOAD_FILE('/etc/passwd')", "LOAD_FILE()"),
    ("SELEC * FROM customers", "only SELECT"),
    ("/*!50000 DROP TABLE customers */ SELECT 1", "executable comments"),
    ("SELECT 1 /*M!100000 , SLEEP(3) */", "executable comments"),
    ("SELECT `sleep`(2)", "SLEEP()"),
    ("SELECT\n\tsleep (1)", "SLEEP()"),
    ("DO SLEEP(1)", "got DO"),
    ("HANDLER customers OPEN", "got HANDLER"),
    ("SELECT * FROM customers LIMIT 1 FOR UPDATE SKIP LOCKED", "locking reads"),
    ("", "empty query"),
    # system schemas (information_schema only through the catalog's own inspector queries)
    ("SELECT * FROM mysql.user", "system schema mysql"),
    ("SELECT * FROM `MySQL`.`user`", "system schema mysql"),
    ("SELECT * FROM performance_schema.threads", "system schema performance_schema"),
    ("SELECT * FROM sys.session", "system schema sys"),
    ("SELECT table_name FROM information_schema.tables", "system schema information_schema"),
    ("SELECT id FROM customers WHERE id IN (SELECT 1 FROM mysql.db)", "system schema mysql"),
    ("WITH u AS (SELECT * FROM mysql.user) SELECT count(*) FROM u", "system schema mysql"),
    # optimizer hints that change the time limit
    ("SELECT /*+ MAX_EXECUTION_TIME(3600000) */ * FROM customers", "MAX_EXECUTION_TIME"),
    ("SELECT /*+ SET_VAR(max_statement_time=0) */ * FROM customers", "SET_VAR"),
    ("SELECT id FROM customers WHERE id IN (SELECT /*+ set_var(x=1) */ 1)", "SET_VAR"),
    ("SET STATEMENT max_statement_time=0 FOR SELECT * FROM customers", "got SET"),
    # variable assignment
    ("SELECT @a := 1", "variable assignment"),
    ("SELECT id, @rn := @rn + 1 AS rn FROM customers", "variable assignment"),
    # parameters are bound only outside comments
    ("SELECT id FROM customers WHERE id = %s -- %s", "placeholder inside a comment"),
    ("SELECT id FROM customers /* %(x)s */ WHERE id = %(y)s", "placeholder inside a comment"),
    ("SELECT id FROM customers WHERE id = 1 # %s", "placeholder inside a comment"),
]

ACCEPTED = [
    "SELECT * FROM customers WHERE id = %s",
    "SELECT name FROM customers WHERE name LIKE %(kw)s ESCAPE '\\\\' LIMIT 20",
    "WITH recent AS (SELECT * FROM subscriptions) SELECT count(*) FROM recent",
    "(SELECT 1) UNION ALL (SELECT 2)",
    "SELECT 'INSERT INTO x; DROP TABLE y' AS harmless_text",
    "select * from customers -- ; drop table customers",
    "SELECT /*+ NO_INDEX_MERGE(customers) */ id FROM customers",
    "SELECT @@max_statement_time",
    "SELECT id FROM customers WHERE note = '-- %%s' AND id = %s",
    "SELECT id FROM customers WHERE phone = %(p)s /* the caller's phone */",
    "SELECT sys_id FROM customers_sys",
]


@pytest.mark.unit
@pytest.mark.parametrize(("query", "reason"), REJECTED)
def test_guard_rejects_with_a_reason(query, reason):
    with pytest.raises(ReadOnlyViolation) as info:
        check_read_only(query)
    assert reason in info.value.reason, f"reason {info.value.reason!r} should mention {reason!r}"


@pytest.mark.unit
@pytest.mark.parametrize("query", ACCEPTED)
def test_guard_accepts_plain_selects(query):
    check_read_only(query)


CROSS_5 = ", ".join(f"guard_digits {t}" for t in "abcde")
CROSS_9 = ", ".join(f"guard_digits {t}" for t in "abcdefghi")


@pytest.fixture(scope="module")
def seeded(mysql_admin):
    with mysql_admin.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS guard_people (id INT PRIMARY KEY, name VARCHAR(50))"
        )
        cur.execute("DELETE FROM guard_people")
        cur.executemany(
            "INSERT INTO guard_people VALUES (%s, %s)",
            [(1, "김민준"), (2, "이서연"), (3, "100%_kim")],
        )
        cur.execute("CREATE TABLE IF NOT EXISTS guard_digits (d INT PRIMARY KEY)")
        cur.execute("DELETE FROM guard_digits")
        cur.executemany("INSERT INTO guard_digits VALUES (%s)", [(d,) for d in range(10)])
    return mysql_admin


@pytest.mark.integration
def test_reader_runs_bound_parameters(seeded, mysql_reader):
    rows = mysql_reader.query("SELECT id, name FROM guard_people WHERE name = %s", ("이서연",))
    assert rows == [{"id": 2, "name": "이서연"}]
    # an injection attempt stays a value: no row, no error
    assert (
        mysql_reader.query("SELECT id FROM guard_people WHERE name = %s", ("x' OR '1'='1",)) == []
    )
    assert [
        b
        for batch in mysql_reader.iter_query(
            "SELECT id FROM guard_people ORDER BY id", batch_size=2
        )
        for b in batch
    ] == [{"id": 1}, {"id": 2}, {"id": 3}]


@pytest.mark.integration
def test_guard_rejects_before_anything_reaches_the_server(seeded, mysql_reader):
    with pytest.raises(ReadOnlyViolation, match="got DELETE"):
        mysql_reader.query("DELETE FROM guard_people")
    assert mysql_reader.scalar("SELECT count(*) FROM guard_people") == 3


@pytest.mark.integration
def test_the_reader_user_itself_cannot_write(seeded, test_databases):
    """Bypass the guard entirely: the server still refuses (second lock)."""
    import os

    conn = pymysql.connect(
        host=os.environ["MYSQL_HOST"],
        port=int(os.environ["MYSQL_PORT"]),
        user=os.environ["MYSQL_READ_USER"],
        password=os.environ["MYSQL_READ_PASSWORD"],
        database=test_databases.mysql_database,
    )
    try:
        for stmt in (
            "INSERT INTO guard_people VALUES (9, 'x')",
            "UPDATE guard_people SET name='x'",
            "DELETE FROM guard_people",
            "DROP TABLE guard_people",
            "CREATE TABLE evil (a int)",
        ):
            with conn.cursor() as cur, pytest.raises(pymysql.err.OperationalError) as info:
                cur.execute(stmt)
            assert info.value.args[0] in (1142, 1044, 1227), stmt
    finally:
        conn.close()


@pytest.mark.integration
def test_server_errors_are_named(seeded, mysql_reader):
    with pytest.raises(ReadOnlyViolation, match="system schema"):
        mysql_reader.query("SELECT * FROM mysql.user")
    with pytest.raises(QueryPermissionError):
        # the guard does not know every grant: the server's refusal is named too
        mysql_reader.query("SELECT * FROM not_granted_db.t")
    with pytest.raises((QuerySyntaxError, ReadOnlyViolation)):
        mysql_reader.query("SELECT FROM WHERE")
    with pytest.raises(QuerySyntaxError):
        # parses as a SELECT for sqlglot, but the server does not know the function
        mysql_reader.query(
            "SELECT id FROM guard_people WHERE id IN (SELECT 1 FROM DUAL LIMIT 1 OFFSET %s)", ("x",)
        )


@pytest.mark.integration
def test_statement_time_limit_stops_a_slow_select(seeded, mysql_reader):
    slow = f"SELECT count(*) FROM {CROSS_9}"  # 10^9 rows
    with pytest.raises(QueryTimeoutError):
        mysql_reader.model_copy(update={"statement_timeout_s": 0.3}).query(slow)


@pytest.mark.integration
def test_query_streams_and_refuses_past_max_rows_before_rows_pile_up(seeded, mysql_reader):
    """100,000 rows of 1 KB: a buffered cursor would hold ~100 MB before max_rows is looked at."""
    import tracemalloc

    wide = f"SELECT a.d, REPEAT('x', 1000) AS pad FROM {CROSS_5}"  # 10^5 rows
    small = mysql_reader.model_copy(update={"max_rows": 100})
    small.scalar("SELECT 1")  # the pool's first connection is not part of the measurement
    tracemalloc.start()
    try:
        with pytest.raises(ReadOnlyViolation, match="max_rows=100"):
            small.query(wide)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000, f"peak {peak / 1e6:.1f} MB: rows were buffered"
    assert small.scalar("SELECT count(*) FROM guard_people") == 3  # the pool is still usable


@pytest.mark.integration
def test_one_pooled_connection_serves_many_queries(seeded, mysql_reader):
    """A query variable resolved per recipient must not open a connection per query."""
    ids = {mysql_reader.scalar("SELECT CONNECTION_ID()") for _ in range(20)}
    assert len(ids) == 1, f"{len(ids)} connections for 20 sequential queries"


@pytest.mark.integration
def test_pool_pre_ping_replaces_a_connection_the_server_dropped(seeded, mysql_reader):
    first = mysql_reader.scalar("SELECT CONNECTION_ID()")
    with seeded.cursor() as cur:
        cur.execute(f"KILL {int(first)}")
    second = mysql_reader.scalar("SELECT CONNECTION_ID()")
    assert second != first
    assert mysql_reader.query("SELECT id FROM guard_people WHERE id = %s", (2,)) == [{"id": 2}]


@pytest.mark.integration
def test_pooled_session_stays_read_only_and_time_limited(seeded, mysql_reader):
    """The pool hands back a connection that a previous query used: every query still runs in a
    read-only transaction with its own time limit."""
    from resources.mysql import engine_for

    mysql_reader.scalar("SELECT 1")
    raw = engine_for(mysql_reader).raw_connection()
    try:
        with raw.cursor() as cur:  # a stranger changes the pooled session's limit
            cur.execute("SET SESSION max_statement_time = 0")
    finally:
        raw.close()
    slow = f"SELECT count(*) FROM {CROSS_9}"  # 10^9 rows
    with pytest.raises(QueryTimeoutError):
        mysql_reader.model_copy(update={"statement_timeout_s": 0.3}).query(slow)


@pytest.mark.unit
def test_tls_is_optional_and_passed_to_the_driver(monkeypatch):
    from resources.mysql import MySQLResource, connect_args

    monkeypatch.delenv("MYSQL_SSL_CA", raising=False)
    monkeypatch.delenv("MYSQL_SSL_VERIFY_IDENTITY", raising=False)
    plain = MySQLResource(host="h", user="u", password="p", database="d")
    assert "ssl" not in connect_args(plain)
    tls = plain.model_copy(update={"ssl_ca": "/etc/ca.pem", "ssl_verify_identity": True})
    assert connect_args(tls)["ssl"] == {"ca": "/etc/ca.pem", "check_hostname": True}
    monkeypatch.setenv("MYSQL_SSL_CA", "/run/secrets/mysql-ca.pem")
    monkeypatch.setenv("MYSQL_SSL_VERIFY_IDENTITY", "true")
    assert connect_args(plain)["ssl"] == {"ca": "/run/secrets/mysql-ca.pem", "check_hostname": True}


@pytest.mark.integration
def test_pooled_transaction_is_read_only_even_for_a_login_that_may_write(seeded, test_databases):
    """The second lock without the first: a login with write grants, a statement that reaches
    the server inside the resource's transaction, and the server refuses it (READ ONLY)."""
    from tooling.services import MySQLAdmin

    admin = MySQLAdmin()
    writer = MySQLResource(
        host=admin.host,
        port=admin.port,
        user=admin.user,
        password=admin.password,
        database=test_databases.mysql_database,
    )
    for _attempt in range(2):  # the second time on the pooled connection the first one used
        with (
            pytest.raises(QueryPermissionError, match="1792"),
            writer.read_only_cursor("SELECT 1") as cur,
        ):
            cur.execute("INSERT INTO guard_people VALUES (99, 'x')")
    assert writer.scalar("SELECT count(*) FROM guard_people") == 3
