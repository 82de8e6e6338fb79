"""Pure logic of the messaging domain: phone numbers, templates, message rules and rendering.
No Dagster, no clients. Variable sources live in ``messaging.variables``, table mappings and
SQL building in ``messaging.tables``."""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from messaging import constants as C
from messaging.models import (
    InvalidPhone,
    MessageTooLong,
    NotEncodable,
    RenderedMessage,
    Template,
    WorkflowConfigError,
)
from resources.pgtext import NUL, storable

PLACEHOLDER = re.compile(r"#\{\s*([^{}#]+?)\s*\}")
MOBILE = re.compile(r"^01[016789]\d{7,8}$")

# ---------------------------------------------------------------------------------------------
# phone numbers


def normalize_phone(raw: object) -> str:
    """Digits only, ``+82``/``82`` country prefix turned into a leading 0; a Korean mobile number.

    Raises:
        InvalidPhone: empty, or not ``01[016789]`` followed by 7-8 digits.
    """
    text = "" if raw is None else str(raw).strip()
    fast = text.replace("-", "")
    # the common case, 010-1234-5678, without Unicode normalization
    plain = len(fast) in (10, 11) and fast.isascii() and fast.isdigit() and fast.startswith("01")
    if plain and MOBILE.match(fast):
        return fast
    text = unicodedata.normalize(
        "NFKC", text
    )  # full-width digits and signs typed with a Korean IME
    digits = re.sub(r"[^0-9]", "", text)
    if digits.startswith("0082"):  # international call prefix 00 + country code
        digits = digits[2:]
    if (
        text.startswith("+82")
        or text.startswith("0082")
        or (digits.startswith("82") and len(digits) in (11, 12))
    ):
        digits = "0" + digits[2:].lstrip("0")
    if not digits:
        raise InvalidPhone(f"empty phone number ({raw!r})")
    if not MOBILE.match(digits):
        raise InvalidPhone(f"not a Korean mobile number: {raw!r}")
    return digits


# ---------------------------------------------------------------------------------------------
# templates


def placeholders(text: str) -> list[str]:
    """Variable names in ``text`` (``#{name}``), in first-appearance order, without duplicates."""
    return list(dict.fromkeys(m.group(1) for m in PLACEHOLDER.finditer(text or "")))


@lru_cache(maxsize=256)
def _compiled(text: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(literals, names, raw placeholders): text = lit0 + v0 + lit1 + v1 + ... + litN (parsed once
    per template)."""
    literals, names, raws, pos = [], [], [], 0
    for m in PLACEHOLDER.finditer(text or ""):
        literals.append(text[pos : m.start()])
        names.append(m.group(1))
        raws.append(m.group(0))
        pos = m.end()
    literals.append((text or "")[pos:])
    return tuple(literals), tuple(names), tuple(raws)


def render(text: str, values: Mapping[str, object]) -> tuple[str, list[str]]:
    """Replace ``#{name}`` with ``values[name]``; return the text and the names left unresolved."""
    literals, names, raws = _compiled(text)
    out = [literals[0]]
    missing: list[str] = []
    for i, name in enumerate(names):
        value = values.get(name)
        if value is None:
            missing.append(name)
            out.append(raws[i])
        else:
            out.append(value if type(value) is str else format_value(value))
        out.append(literals[i + 1])
    return "".join(out), list(dict.fromkeys(missing))


def format_value(value: object) -> str:
    if type(value) is str:
        return value
    if isinstance(value, bool):
        return "예" if value else "아니오"
    if isinstance(value, Decimal):
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    return str(value)


def euc_kr_bytes(text: str) -> int:
    """The byte length SOLAPI counts (EUC-KR).

    Raises:
        NotEncodable: a character outside EUC-KR (emoji, rare Hanja...), naming it.
    """
    try:
        return len(text.encode("euc-kr"))
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end]
        raise NotEncodable(
            f"character {bad!r} at position {exc.start} is not in EUC-KR (SOLAPI 1029)"
        ) from exc


def check_length(message_type: str, text: str) -> int:
    """Validate ``text`` for ``message_type`` (sms/lms/kakao); return its size (bytes, or chars for
    kakao).

    Raises:
        MessageTooLong: over 90 bytes (sms), 2,000 bytes (lms) or 1,000 characters (kakao).
        NotEncodable: sms/lms text outside EUC-KR.
    """
    if message_type == "kakao":
        if len(text) > C.KAKAO_MAX_CHARS:
            raise MessageTooLong(
                f"Alimtalk is {len(text)} characters; the limit is {C.KAKAO_MAX_CHARS}"
            )
        return len(text)
    size = euc_kr_bytes(text)
    limit = {"sms": C.SMS_MAX_BYTES, "lms": C.LMS_MAX_BYTES}.get(message_type)
    if limit is None:
        raise WorkflowConfigError(f"unknown message type {message_type!r}")
    if size > limit:
        hint = " (use LMS)" if message_type == "sms" and size <= C.LMS_MAX_BYTES else ""
        raise MessageTooLong(
            f"{message_type.upper()} is {size} bytes (EUC-KR); the limit is {limit}{hint}"
        )
    return size


def apply_ad_rules(
    text: str,
    category: str | None,
    opt_out_line: str = C.DEFAULT_OPT_OUT_LINE,
    sender_name: str = "",
    sender_contact: str = "",
) -> str:
    """Promotion messages (Information and Communications Network Act art. 50): ``(광고)`` and the
    sender's name first, the sender's contact and the free opt-out line last."""
    if category != "promotion":
        return text
    body = text[len(C.AD_PREFIX) :].lstrip() if text.startswith(C.AD_PREFIX) else text
    if sender_name and not body.startswith(sender_name):
        body = f"{sender_name}\n{body}"
    body = f"{C.AD_PREFIX}{body}"
    if sender_contact and sender_contact not in body:
        body = f"{body}\n{sender_contact}"
    if opt_out_line and opt_out_line not in body:
        body = f"{body}\n{opt_out_line}"
    return body


def in_ad_quiet_hours(now: datetime) -> bool:
    """True between 21:00 and 08:00 Asia/Seoul, when advertising messages must not be sent."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    hour = now.astimezone(C.SEOUL).hour
    return hour >= C.AD_QUIET_START_HOUR or hour < C.AD_QUIET_END_HOUR


def sms_fallback(text: str) -> tuple[str | None, str, str | None]:
    """The SMS/LMS text SOLAPI substitutes when an Alimtalk is not delivered: the rendered text
    as SMS (<= 90 bytes EUC-KR) or LMS (<= 2,000 bytes). Returns (text, "sms"|"lms", None), or
    (None, "", reason) when it cannot be sent as SMS/LMS (then no substitution is allowed)."""
    try:
        size = euc_kr_bytes(text)
    except NotEncodable as exc:
        return None, "", f"fallback not possible: {exc}"
    if size <= C.SMS_MAX_BYTES:
        return text, "sms", None
    if size <= C.LMS_MAX_BYTES:
        return text, "lms", None
    return None, "", f"fallback not possible: {size} bytes (EUC-KR) > LMS limit {C.LMS_MAX_BYTES}"


def quiet_hours_end(now: datetime) -> datetime:
    """The next 08:00 Asia/Seoul at or after ``now`` (when held advertising may go out), in UTC."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(C.SEOUL)
    end = local.replace(hour=C.AD_QUIET_END_HOUR, minute=0, second=0, microsecond=0)
    if end < local:
        end += timedelta(days=1)
    return end.astimezone(UTC)


def unit_cost(message_type: str) -> float:
    return C.UNIT_COST_KRW[message_type]


ORDERED_UUID_COUNTER_BITS = 30  # rows per bulk load (1,073,741,824)


def ordered_uuid(unix_ms: int, n: int) -> uuid.UUID:
    """A version-7 UUID (RFC 9562): 48-bit Unix milliseconds, then ``n`` (the row's position in
    its load) in the 30 bits after the version and variant, then 44 random bits. A load's ids
    ascend in load order and loads ascend in time, so the primary key (and every index on ``id``)
    receives a run's rows at one place instead of at random ones.

    The random bits only keep two loads of the same millisecond apart (an id is a key, not a
    secret): they come from the process's seeded generator, not from the kernel per row (a
    ``getrandom`` call per id was 8.5 s of a 1,000,000-row load)."""
    if not 0 <= n < 1 << ORDERED_UUID_COUNTER_BITS:
        raise ValueError(f"row position {n} out of range")
    value = (unix_ms & (1 << 48) - 1) << 80
    value |= 0x7 << 76  # version
    value |= (n >> 18) << 64  # counter, high 12 bits
    value |= 0b10 << 62  # variant
    value |= (n & (1 << 18) - 1) << 44  # counter, low 18 bits
    value |= random.getrandbits(44)  # noqa: S311 - uniqueness, not secrecy (docstring)
    return uuid.UUID(int=value)


def idempotency_key(execution_key: str, phone: str) -> str:
    """Stable per (execution, recipient), at most 57 characters (SOLAPI customFields values
    take 100): a hash of the execution key, then the normalized number itself, so one
    execution's keys ascend with its recipients' numbers (its rows are loaded, claimed and
    settled in phone order: the unique index gets each batch's keys at one place). Anything that
    is not a normalized number (an unusable row's placeholder) is hashed instead. The key sits
    only where the number already is: ``message_logs`` and the send groups (service_role only)
    and the SOLAPI message addressed to that number."""
    execution = hashlib.sha256(execution_key.encode()).hexdigest()[:24]
    if phone.isascii() and phone.isdigit() and len(phone) <= 20:
        return f"{execution}:{phone}"
    return f"{execution}#{hashlib.sha256(phone.encode()).hexdigest()[:32]}"


# ---------------------------------------------------------------------------------------------
# rendering


def _nul_fields(
    raw_phone: str, name: str | None, used: Mapping[str, str], name_column: str | None
) -> list[str]:
    """Which of a recipient's values carry a NUL character (phone, name column, variables)."""
    found = [f"variable #{{{k}}}" for k, v in used.items() if NUL in v]
    if name is not None and NUL in name:
        found.insert(0, f"{name_column} column")
    if NUL in raw_phone:
        found.insert(0, "phone column")
    return found


def render_message(
    template: Template,
    row: Mapping[str, Any],
    values: Mapping[str, object],
    *,
    phone_column: str,
    name_column: str | None,
    opt_out_line: str,
    sender: tuple[str, str] = ("", ""),
) -> RenderedMessage:
    """Render one recipient's message and validate it; errors are recorded, never raised."""
    raw_phone = "" if row.get(phone_column) is None else str(row.get(phone_column))
    name = None if not name_column or row.get(name_column) is None else str(row.get(name_column))
    used = {k: format_value(v) for k, v in values.items()}
    with_nul = _nul_fields(raw_phone, name, used, name_column)
    if with_nul:  # stored with U+FFFD in its place, and failed below (unless the phone fails first)
        raw_phone, name, used = storable(raw_phone), storable(name), storable(used)
    text, missing = render(template.content, used)
    text = apply_ad_rules(text, template.category, opt_out_line, *sender)
    if not missing and "#{" in text:
        missing = placeholders(
            text
        )  # a value or the opt-out line carried one: the final text decides
    msg = RenderedMessage(
        phone=None,
        raw_phone=raw_phone,
        name=name,
        content=text,
        variables=used,
        message_type=template.message_type,
        source_id=None if row.get("id") is None else storable(str(row.get("id"))),
    )
    try:
        msg.phone = normalize_phone(raw_phone)
    except InvalidPhone as exc:
        msg.error_code, msg.error_message = C.ERR_PHONE, str(exc)
        return msg
    if with_nul:
        msg.error_code = C.ERR_CHARACTER
        msg.error_message = (
            f"NUL character (U+0000) in {', '.join(with_nul)}: neither SMS nor the message log"
            " can carry it (fix the CRM value)"
        )
        return msg
    if missing:
        msg.error_code = C.ERR_UNRESOLVED
        msg.error_message = "unresolved variable(s): " + ", ".join(f"#{{{m}}}" for m in missing)
        return msg
    try:
        check_length(template.message_type, text)
    except MessageTooLong as exc:
        msg.error_code, msg.error_message = C.ERR_TOO_LONG, str(exc)
    except NotEncodable as exc:
        msg.error_code, msg.error_message = C.ERR_CHARSET, str(exc)
    return msg


def dedupe(messages: Iterable[RenderedMessage]) -> tuple[list[RenderedMessage], int]:
    """Keep the first message per normalized phone (invalid ones are all kept, for the log)."""
    seen: set[str] = set()
    out: list[RenderedMessage] = []
    dropped = 0
    for m in messages:
        if m.phone is not None:
            if m.phone in seen:
                dropped += 1
                continue
            seen.add(m.phone)
        out.append(m)
    return out, dropped


# ---------------------------------------------------------------------------------------------
# cron


def next_cron_tick(cron: str, timezone: str, after: datetime) -> datetime:
    """The first tick of ``cron`` (in ``timezone``) strictly after ``after``."""
    # Dagster's own cron iterator (croniter is not a dependency); it handles DST as schedules do.
    from dagster._utils.schedules import cron_string_iterator, is_valid_cron_string

    if not is_valid_cron_string(cron):
        raise WorkflowConfigError(f"invalid cron expression {cron!r}")
    for tick in cron_string_iterator(after.timestamp(), cron, timezone):
        if tick.timestamp() > after.timestamp():
            return tick
    raise WorkflowConfigError(f"cron {cron!r} has no future tick")  # pragma: no cover
