"""Pure messaging rules: phones, placeholders, byte limits, advertising law, variables, mappings."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from messaging import constants as C
from messaging.models import (
    InvalidPhone,
    MessageTooLong,
    NotEncodable,
    TableMappingError,
    Template,
    VariableSource,
    WorkflowConfigError,
)
from messaging.tables import build_search_sql, escape_like, parse_table_mappings
from messaging.transform import (
    apply_ad_rules,
    check_length,
    dedupe,
    euc_kr_bytes,
    idempotency_key,
    in_ad_quiet_hours,
    next_cron_tick,
    normalize_phone,
    placeholders,
    render,
    render_message,
)
from messaging.variables import auto_match, evaluate_function, parse_variable_sources

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("010-1234-5678", "01012345678"),
        ("010 1234 5678", "01012345678"),
        ("+82 10-1234-5678", "01012345678"),
        ("821012345678", "01012345678"),
        ("011-123-4567", "0111234567"),
        ("(010)1234.5678", "01012345678"),
    ],
)
def test_normalize_phone(raw, expected):
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw", [None, "", "02-123-4567", "010-123", "1588-0000", "abc", "010-1234-56789"]
)
def test_invalid_phone(raw):
    with pytest.raises(InvalidPhone):
        normalize_phone(raw)


def test_placeholders_and_render():
    text = "#{name}님 #{ plan }, 다시 #{name}"
    assert placeholders(text) == ["name", "plan"]
    out, missing = render(text, {"name": "김민준"})
    assert out == "김민준님 #{ plan }, 다시 김민준" and missing == ["plan"]
    assert render("#{amount}원", {"amount": 39000})[0] == "39,000원"


@pytest.mark.parametrize(
    "mtype, text, ok",
    [
        ("sms", "가" * 45, True),
        ("sms", "가" * 46, False),
        ("sms", "a" * 90, True),
        ("sms", "a" * 91, False),
        ("lms", "가" * 1000, True),
        ("lms", "가" * 1001, False),
        ("kakao", "가" * 1000, True),
        ("kakao", "가" * 1001, False),
    ],
)
def test_length_limits_are_errors_not_cuts(mtype, text, ok):
    if ok:
        assert check_length(mtype, text) in (len(text), euc_kr_bytes(text))
    else:
        with pytest.raises(MessageTooLong):
            check_length(mtype, text)


def test_euc_kr_rejects_emoji():
    assert euc_kr_bytes("안녕 hi") == 7
    with pytest.raises(NotEncodable, match="1029"):
        check_length("sms", "안녕 😀")


def test_ad_rules_prefix_and_opt_out_line():
    out = apply_ad_rules("할인 행사", "promotion", "무료수신거부 080-000-0000")
    assert out.startswith("(광고)") and out.endswith("무료수신거부 080-000-0000")
    assert apply_ad_rules("(광고)할인", "promotion", "X").count("(광고)") == 1
    assert apply_ad_rules("알림", "notification", "X") == "알림"


@pytest.mark.parametrize(
    "utc_hour, quiet", [(11, False), (12, True), (22, True), (23, False), (0, False), (3, False)]
)
def test_ad_quiet_hours_asia_seoul(utc_hour, quiet):
    # 12:00 UTC = 21:00 KST (quiet), 23:00 UTC = 08:00 KST (allowed), 22:00 UTC = 07:00 KST (quiet)
    assert in_ad_quiet_hours(datetime(2026, 11, 20, utc_hour, 0, tzinfo=UTC)) is quiet


def test_auto_match_reports_unmapped():
    individual = {"company": VariableSource("company", "static", value="건강구독")}
    report = auto_match(
        ["NAME", "고객명", "company", "coupon"],
        ["id", "name", "phone"],
        display_names={"name": "고객명", "phone": "휴대폰번호"},
        individual=individual,
    )
    assert report.matched["NAME"].column == "name" and report.matched["고객명"].column == "name"
    assert report.matched["company"].value == "건강구독"
    assert report.unmapped == ["coupon"] and not report.complete and report.completeness == 0.75


def test_variable_sources_and_functions():
    src = parse_variable_sources(
        {
            "a": "col",
            "b": {"type": "static", "value": "x"},
            "c": {"type": "function", "function": "format_date", "argument": "d"},
            "d": {"type": "query", "template": "t", "params": {"p": "id"}},
        }
    )
    assert [s.source_type for s in src.values()] == ["column", "static", "function", "query"]
    with pytest.raises(WorkflowConfigError):
        parse_variable_sources({"x": {"type": "function", "function": "rm_rf"}})
    now = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)  # 2026-11-21 01:00 KST
    assert evaluate_function("today", None, {}, now) == "2026-11-21"
    assert evaluate_function("format_date", "d", {"d": date(2026, 12, 3)}, now) == "2026년 12월 3일"
    assert evaluate_function("days_until", "d", {"d": date(2026, 12, 1)}, now) == "10"
    assert evaluate_function("format_phone", "p", {"p": "01012345678"}, now) == "010-1234-5678"
    assert evaluate_function("format_number", "n", {"n": 1234567}, now) == "1,234,567"


def test_render_message_outcomes():
    tpl = Template("t", "x", "notification", "sms", "#{name}님 #{plan} 안내")
    ok = render_message(
        tpl,
        {"phone": "010-1111-2222", "name": "김"},
        {"name": "김", "plan": "A"},
        phone_column="phone",
        name_column="name",
        opt_out_line="",
    )
    assert ok.ok and ok.phone == "01011112222" and ok.content == "김님 A 안내"
    missing = render_message(
        tpl,
        {"phone": "010-1111-2222"},
        {"name": "김"},
        phone_column="phone",
        name_column=None,
        opt_out_line="",
    )
    assert missing.error_code == C.ERR_UNRESOLVED and "#{plan}" in missing.error_message
    bad = render_message(
        tpl,
        {"phone": "02-1"},
        {"name": "김", "plan": "A"},
        phone_column="phone",
        name_column=None,
        opt_out_line="",
    )
    assert bad.error_code == C.ERR_PHONE
    long = render_message(
        tpl,
        {"phone": "01011112222"},
        {"name": "김" * 50, "plan": "A"},
        phone_column="phone",
        name_column=None,
        opt_out_line="",
    )
    assert long.error_code == C.ERR_TOO_LONG and "use LMS" in long.error_message
    kept, dropped = dedupe([ok, ok, missing, bad])
    assert dropped == 2 and len(kept) == 2  # missing/ok share a phone; bad has none


def test_idempotency_key_is_stable_and_short():
    assert (
        idempotency_key("k", "010") == idempotency_key("k", "010") != idempotency_key("k2", "010")
    )
    assert len(idempotency_key("k", "010")) <= 100


def test_escape_like_and_search_sql_binds_parameters():
    assert escape_like("50%_off\\") == "50\\%\\_off\\\\"
    mappings = parse_table_mappings(
        {
            "customers": {
                "displayName": "고객",
                "fields": {
                    "id": {"displayName": "ID", "type": "number", "filterable": True},
                    "name": {"displayName": "이름", "type": "string", "filterable": True},
                },
            }
        }
    )
    page, count, params = build_search_sql(
        mappings["customers"], "a%'; DROP TABLE x", limit=5, offset=10
    )
    assert "DROP" not in page and params["term"] == "%a\\%'; DROP TABLE x%"
    assert page.endswith("LIMIT 5 OFFSET 10") and "COUNT(*)" in count
    with pytest.raises(WorkflowConfigError):
        build_search_sql(mappings["customers"], "x", limit=5000)


def test_table_mapping_validation_lists_every_problem():
    with pytest.raises(TableMappingError) as err:
        parse_table_mappings(
            {
                "customers": {
                    "displayName": "",
                    "fields": {
                        "name": {"displayName": "이름", "type": "text"},
                        "ghost": {"displayName": "유령", "type": "string"},
                    },
                },
                "bad-name": {},
            },
            catalog={"customers": ["id", "name"]},
        )
    text = str(err.value)
    for fragment in (
        "customers: displayName is required",
        "customers.name: type must be",
        "customers.ghost: no such column",
        "bad-name: not a valid table name",
    ):
        assert fragment in text


def test_repository_table_mappings_file_is_valid():
    from messaging.catalog import load_table_mappings

    mappings = load_table_mappings()
    assert set(mappings) == {"customers", "subscriptions", "payments"}
    assert mappings["customers"].fields["name"].display_name == "고객명"


def test_next_cron_tick_in_seoul():
    after = datetime(2026, 11, 20, 0, 1, tzinfo=UTC)  # 09:01 KST
    tick = next_cron_tick("0 9 * * *", "Asia/Seoul", after)
    assert tick.astimezone(UTC) == datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
    with pytest.raises(WorkflowConfigError):
        next_cron_tick("not a cron", "Asia/Seoul", after)


def test_a_message_that_still_contains_a_placeholder_is_not_sendable():
    """The rule is about the final text: a value that itself carries ``#{…}`` leaves one in the
    message."""
    tpl = Template("t", "x", "notification", "lms", "#{name}님 #{plan} 안내")
    msg = render_message(
        tpl,
        {"phone": "010-1111-2222"},
        {"name": "#{쿠폰코드}", "plan": "A"},
        phone_column="phone",
        name_column=None,
        opt_out_line="",
    )
    assert not msg.ok and msg.error_code == C.ERR_UNRESOLVED and "#{쿠폰코드}" in msg.error_message
    opt_out = render_message(
        Template("t", "x", "promotion", "lms", "#{name}님 할인"),
        {"phone": "010-1111-2222"},
        {"name": "김"},
        phone_column="phone",
        name_column=None,
        opt_out_line="수신거부 #{번호}",
    )
    assert opt_out.error_code == C.ERR_UNRESOLVED


@pytest.mark.parametrize(
    "raw",
    ["0082-10-1234-5678", "０１０-１２３４-５６７８", "+82 (0)10-1234-5678", "８２-10-1234-5678"],
)
def test_normalize_phone_international_prefix_and_full_width_digits(raw):
    assert normalize_phone(raw) == "01012345678"


def test_ordered_uuids_ascend_in_load_order_and_are_version_7():
    from messaging.transform import ordered_uuid

    ids = [ordered_uuid(1_764_000_000_000, n) for n in (0, 1, 2, 262_143, 262_144, 1_000_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(u.version == 7 and u.variant == "specified in RFC 4122" for u in ids)
    later = ordered_uuid(1_764_000_000_001, 0)
    assert later > ids[-1]  # a later load sorts after every row of an earlier one
    with pytest.raises(ValueError):
        ordered_uuid(1_764_000_000_000, 1 << 30)
