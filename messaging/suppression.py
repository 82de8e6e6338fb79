"""The advertising suppression list (``public.messaging_suppressions``): numbers that opted out
by the 080 line, by a reply or by hand. Every add and remove is logged with who and when
(``public.messaging_suppression_log``). ``sending`` checks it at send time, for every
advertising message of every batch."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from messaging import constants as C
from messaging.models import InvalidPhone
from messaging.transform import normalize_phone
from resources.postgres import PostgresResource

Source = Literal["080", "reply", "manual"]
SOURCES: tuple[Source, ...] = ("080", "reply", "manual")


def _phone(raw: str) -> str:
    """A Korean mobile as digits (ValueError when it is not one)."""
    try:
        return normalize_phone(raw)
    except InvalidPhone as exc:
        raise ValueError(f"not a Korean mobile number: {exc}") from exc


def add_suppression(
    db: PostgresResource, phone: str, *, source: Source, actor: str, reason: str | None = None
) -> str:
    """Suppress advertising to ``phone`` (idempotent: the first add's who/when is kept).
    Returns the normalized number."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if not actor.strip():
        raise ValueError("who adds the number is required")
    number = _phone(phone)
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO public.messaging_suppressions (phone, source, reason, added_by)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (phone) DO NOTHING",
            (number, source, reason, actor),
        )
        conn.execute(
            "INSERT INTO public.messaging_suppression_log (phone, action, source, reason, actor)"
            " VALUES (%s, 'add', %s, %s, %s)",
            (number, source, reason, actor),
        )
    return number


def remove_suppression(
    db: PostgresResource, phone: str, *, actor: str, reason: str | None = None
) -> bool:
    """Take ``phone`` off the list (it may get advertising again). Returns whether it was on."""
    if not actor.strip():
        raise ValueError("who removes the number is required")
    number = _phone(phone)
    with db.transaction() as conn:
        removed = conn.execute(
            "DELETE FROM public.messaging_suppressions WHERE phone = %s", (number,)
        ).rowcount
        if removed:
            conn.execute(
                "INSERT INTO public.messaging_suppression_log (phone, action, reason, actor)"
                " VALUES (%s, 'remove', %s, %s)",
                (number, reason, actor),
            )
    return bool(removed)


def is_suppressed(db: PostgresResource, phone: str) -> bool:
    return bool(
        db.fetch_value(
            "SELECT EXISTS (SELECT 1 FROM public.messaging_suppressions WHERE phone = %s)",
            (_phone(phone),),
        )
    )


def list_suppressions(db: PostgresResource, limit: int = 100) -> list[dict[str, Any]]:
    return db.fetch_all(
        "SELECT phone, source, reason, added_by, added_at FROM public.messaging_suppressions"
        " ORDER BY added_at DESC LIMIT %s",
        (limit,),
    )


def frequency_cap(db: PostgresResource) -> int | None:
    """``system_settings`` ``messaging.frequency_cap`` = ``{"advertising_per_day": N}``: at most
    N advertising messages per recipient per day (Asia/Seoul), across workflows; None = no cap."""
    value = db.fetch_value(
        "SELECT setting_value FROM public.system_settings"
        " WHERE setting_key = 'messaging.frequency_cap'"
    )
    if not isinstance(value, dict):
        return None
    n = value.get("advertising_per_day")
    return int(n) if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else None


def cancel_unwanted(
    db: PostgresResource, keys: list[str], cap: int | None, day_start: datetime
) -> set[str]:
    """At send time, for one batch of advertising rows: cancel those whose number is on the
    suppression list (``SUPPRESSED``) or already got ``cap`` advertising messages since
    ``day_start`` from any workflow (``FREQUENCY_CAP``). Returns the cancelled keys."""
    cancelled: set[str] = set()
    with db.transaction() as conn:
        # lock the list rows the batch reads, so an opt-out committed now is either seen here or
        # waits for this batch's decision
        rows = conn.execute(
            """UPDATE public.message_logs m SET status = 'cancelled', error_code = %s,
                      error_message = 'number is on the advertising suppression list'
               FROM public.messaging_suppressions s
               WHERE m.idempotency_key = ANY(%s) AND m.status = 'pending'
                 AND s.phone = m.recipient_phone
               RETURNING m.idempotency_key""",
            (C.ERR_SUPPRESSED, keys),
        ).fetchall()
        cancelled |= {r[0] for r in rows}
        if cap is not None:
            rows = conn.execute(
                """WITH sent AS (
                       SELECT o.recipient_phone, count(*) AS n
                       FROM public.message_logs o
                       JOIN public.message_templates t ON t.id = o.template_id
                       WHERE o.recipient_phone IN (SELECT recipient_phone FROM public.message_logs
                                                   WHERE idempotency_key = ANY(%s))
                         AND o.status IN ('sent', 'delivered') AND t.category = 'promotion'
                         AND o.sent_at >= %s
                       GROUP BY o.recipient_phone)
                   UPDATE public.message_logs m SET status = 'cancelled', error_code = %s,
                          error_message = %s
                   FROM sent
                   WHERE m.idempotency_key = ANY(%s) AND m.status = 'pending'
                     AND sent.recipient_phone = m.recipient_phone AND sent.n >= %s
                   RETURNING m.idempotency_key""",
                (
                    keys,
                    day_start,
                    C.ERR_FREQUENCY_CAP,
                    f"at most {cap} advertising message(s) per recipient per day",
                    keys,
                    cap,
                ),
            ).fetchall()
            cancelled |= {r[0] for r in rows}
    return cancelled
