"""MySQL side through the SELECT-only user: discovery, mappings, search, preview, errors."""

from __future__ import annotations

import pytest

from messaging.catalog import discover_schema, load_table_mappings, preview_targets, search
from messaging.models import TableMappingError
from resources.errors import QueryPermissionError, QuerySyntaxError, ReadOnlyViolation

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mappings(crm):
    return load_table_mappings()


def test_schema_discovery_catalogs_columns_and_indexes(crm, mysql_reader):
    schema = discover_schema(mysql_reader)
    assert {"customers", "subscriptions", "payments"} <= set(schema)
    cols = {c["name"]: c for c in schema["customers"]["columns"]}
    assert cols["id"]["key"] == "PRI" and cols["phone"]["data_type"] == "varchar"
    assert schema["customers"]["indexes"]["PRIMARY"] == {"unique": True, "columns": ["id"]}
    assert "idx_subscriptions_status" in schema["subscriptions"]["indexes"]
    load_table_mappings(schema=schema)  # the shipped mappings match the live schema


def test_mappings_validated_against_live_schema(crm, mysql_reader, tmp_path):
    schema = discover_schema(mysql_reader)
    bad = tmp_path / "m.json"
    bad.write_text(
        '{"customers": {"displayName": "고객", "fields": {"nickname": '
        '{"displayName": "별명", "type": "string"}}}}',
        encoding="utf-8",
    )
    with pytest.raises(TableMappingError, match="customers.nickname: no such column"):
        load_table_mappings(bad, schema=schema)


def test_keyword_search_is_parameterized_paginated_and_escapes_wildcards(
    crm, mysql_reader, mappings
):
    with crm.cursor() as cur:
        cur.execute(
            "INSERT INTO customers (name, phone, email) VALUES ('100%_할인왕', '010-5555-0001', "
            "'p@x.kr'),"
            " ('100xx할인왕', '010-5555-0002', 'q@x.kr')"
        )
    hit = search(mysql_reader, mappings, "customers", "100%_")
    assert [r["name"] for r in hit["rows"]] == ["100%_할인왕"]
    first = search(mysql_reader, mappings, "customers", "010", limit=7)
    second = search(mysql_reader, mappings, "customers", "010", limit=7, offset=7)
    assert first["total"] == second["total"] > 14 and first["has_more"]
    assert not {r["id"] for r in first["rows"]} & {r["id"] for r in second["rows"]}
    assert first["columns"]["name"] == "고객명"
    assert search(mysql_reader, mappings, "customers", "'; DROP TABLE customers; --")["total"] == 0


def test_target_preview_counts(crm, mysql_reader, mappings):
    preview = preview_targets(
        mysql_reader,
        {
            "table": "customers",
            "filters": [{"field": "grade", "op": "in", "value": ["VIP", "골드"]}],
        },
        mappings,
    )
    with crm.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM customers WHERE grade IN ('VIP', '골드')")
        expected = cur.fetchone()[0]
    assert preview["total"] == expected
    assert preview["sendable"] + preview["invalid_phone"] + preview["duplicates"] == expected
    assert len(preview["sample"]) == min(10, expected)


def test_errors_say_what_was_wrong(crm, mysql_reader):
    with pytest.raises(ReadOnlyViolation, match="only SELECT"):
        mysql_reader.query("DELETE FROM customers")
    with pytest.raises(ReadOnlyViolation, match="syntax error"):
        mysql_reader.query("SELECT name FROM customers WHERE")
    with pytest.raises(QuerySyntaxError):
        mysql_reader.query(
            "SELECT name FROM customers c WHERE c.name ILIKE 'a'"
        )  # MariaDB has no ILIKE
    with pytest.raises(ReadOnlyViolation, match="system schema mysql"):
        mysql_reader.query("SELECT User FROM mysql.user")
    with pytest.raises(QueryPermissionError):
        mysql_reader.query("SELECT 1 FROM not_granted_db.customers")


def test_plan_reads_only_the_columns_the_message_needs(supabase_db, platform_ids):
    from messaging.planning import load_template, plan_targets

    workflow = supabase_db.fetch_one(
        "SELECT * FROM public.workflows WHERE id = %s", (platform_ids["workflow:manual"],)
    )
    plan = plan_targets(supabase_db, workflow, load_template(supabase_db, workflow))
    selected = plan.query.sql.split(" FROM ")[0]
    assert all(f"t.`{c}`" in selected for c in ("id", "name", "phone", "grade"))
    assert "email" not in selected and "birth_date" not in selected
    assert "marketing_opt_in" in plan.query.sql.split(" FROM ")[1]  # still filtered on
