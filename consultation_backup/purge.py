"""The only ways history leaves the backup: an explicit, logged purge.

- ``purge_retention``: versions that stopped being current before the cutoff, and the image
  objects kept under ``versions/`` for them. Current versions are never purged.
- ``erase_customer``: the right to erasure (개인정보 보호법 §36): one customer's rows, history
  rows, conflicts, quarantine entries, their entries in the sync logs' failure lists and every
  Storage object (current and versions) of the customer and their consultations.

Both are dry runs unless ``apply``; an applied purge writes one ``consultation_purge_log`` row
with counts only, never the personal data (the erasure row names the customer's 5-digit id,
a pseudonymous key whose mapping to a person is what the erasure removes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from psycopg.types.json import Jsonb

from consultation_backup.constants import BUCKET, DOMAIN
from resources.postgres import PostgresResource
from resources.supabase_storage import SupabaseStorageResource

HISTORY = (
    "consultation_customers_history",
    "consultation_records_history",
    "consultation_image_objects_history",
)


class PurgeRefused(RuntimeError):
    """A purge cannot be carried out completely (e.g. Storage is unavailable)."""


@dataclass(frozen=True)
class PurgeReport:
    """What a purge removed (or, in a dry run, would remove)."""

    kind: Literal["retention", "erasure"]
    applied: bool
    subject: str
    history_rows: int
    rows: int
    objects: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _remove_objects(storage: SupabaseStorageResource, paths: list[str]) -> int:
    if not paths:
        return 0
    if not storage.available:
        raise PurgeRefused(f"Storage is unavailable ({storage.unavailable_reason}); nothing purged")
    removed = 0
    for start in range(0, len(paths), 100):
        removed += storage.remove(BUCKET, paths[start : start + 100])
    return removed


def _walk(storage: SupabaseStorageResource, prefix: str, depth: int = 4) -> list[str]:
    """Every object under ``prefix`` (folders followed ``depth`` levels down)."""
    out: list[str] = []
    for entry in storage.list_objects(BUCKET, prefix):
        path = f"{prefix}/{entry.name}"
        if not entry.is_folder:
            out.append(path)
        elif depth > 0:
            out += _walk(storage, path, depth - 1)
    return out


def _customer_objects(
    storage: SupabaseStorageResource, customer_id: str, known: list[str]
) -> list[str]:
    """The customer's objects the backup knows of, and whatever else Storage holds under the
    customer's folders (e.g. a version copied by a run that crashed before it committed)."""
    if not storage.available:
        return known
    found = set(known)
    for prefix in (f"customers/{customer_id}", f"versions/customers/{customer_id}"):
        found.update(_walk(storage, prefix))
    return sorted(found)


def _log(db_conn: Any, report: PurgeReport, by: str, reason: str | None) -> None:
    db_conn.execute(
        "INSERT INTO public.consultation_purge_log (kind, subject, requested_by, reason,"
        " history_rows_removed, rows_removed, objects_removed, details)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            report.kind,
            report.subject,
            by,
            reason,
            report.history_rows,
            report.rows,
            report.objects,
            Jsonb({"domain": DOMAIN}),
        ),
    )


def purge_retention(
    db: PostgresResource,
    storage: SupabaseStorageResource,
    *,
    older_than: timedelta,
    apply: bool = False,
    requested_by: str = "cli",
    reason: str | None = None,
) -> PurgeReport:
    """Remove versions whose ``valid_to`` is before now minus ``older_than``, with their
    ``versions/`` image objects (objects still used by a current row are kept)."""
    cutoff = datetime.now(UTC) - older_than
    count = sum(
        db.fetch_value(f"SELECT count(*) FROM public.{t} WHERE valid_to < %s", (cutoff,))
        for t in HISTORY
    )
    paths = [
        r["version_path"]
        for r in db.fetch_all(
            "SELECT DISTINCT version_path FROM public.consultation_image_objects_history h"
            " WHERE valid_to < %s AND version_path IS NOT NULL AND NOT EXISTS (SELECT 1 FROM"
            " public.consultation_image_objects_history k WHERE k.version_path = h.version_path"
            " AND (k.valid_to IS NULL OR k.valid_to >= %s))",
            (cutoff, cutoff),
        )
    ]
    report = PurgeReport("retention", apply, cutoff.isoformat(), count, 0, len(paths))
    if not apply:
        return report
    removed = _remove_objects(storage, paths)
    with db.transaction() as conn:
        for t in HISTORY:
            conn.execute(f"DELETE FROM public.{t} WHERE valid_to < %s", (cutoff,))
        report = PurgeReport("retention", True, cutoff.isoformat(), count, 0, removed)
        _log(conn, report, requested_by, reason)
    return report


def _customer_footprint(db: PostgresResource, customer_id: str) -> dict[str, list[str]]:
    """Every key and object path of one customer, from the rows and the history."""
    keys = [
        r["k"]
        for r in db.fetch_all(
            "SELECT id::text AS k FROM public.consultation_customers WHERE customer_id = %s"
            " UNION SELECT entity_key FROM public.consultation_customers_history"
            " WHERE business_id = %s",
            (customer_id, customer_id),
        )
    ]
    records = db.fetch_all(
        "SELECT id::text AS k, consultation_id AS c, notion_page_id AS p"
        " FROM public.consultation_records WHERE customer_id::text = ANY(%(k)s)"
        " UNION SELECT entity_key, business_id, notion_page_id"
        " FROM public.consultation_records_history WHERE parent_key = ANY(%(k)s)",
        {"k": keys},
    )
    consultations = sorted({r["c"] for r in records})
    pages = {r["p"] for r in records} | {
        r["p"]
        for r in db.fetch_all(
            "SELECT notion_page_id AS p FROM public.consultation_customers_history"
            " WHERE entity_key = ANY(%s)",
            (keys,),
        )
    }
    paths = {
        r["p"]
        for r in db.fetch_all(
            "SELECT storage_path AS p FROM public.consultation_image_objects"
            " WHERE consultation_id = ANY(%(c)s)"
            " UNION SELECT row_data->>'storage_path' FROM public.consultation_image_objects_history"
            " WHERE business_id = ANY(%(c)s)"
            " UNION SELECT version_path FROM public.consultation_image_objects_history"
            " WHERE business_id = ANY(%(c)s) AND version_path IS NOT NULL",
            {"c": consultations},
        )
    }
    return {
        "customer_ids": [customer_id],
        "keys": keys,
        "records": sorted({r["k"] for r in records}),
        "consultations": consultations,
        "pages": sorted(p for p in pages if p),
        "paths": sorted(p for p in paths if p),
    }


SCRUB_FAILURES = """
UPDATE public.consultation_sync_logs l
   SET details = jsonb_set(l.details, '{failures}', coalesce((
         SELECT jsonb_agg(f) FROM jsonb_array_elements(l.details->'failures') f
          WHERE NOT (f->>'page_id' = ANY(%(pages)s) OR f->>'id' = ANY(%(ids)s)
                     OR split_part(f->>'page_id', '#', 1) = ANY(%(ids)s))), '[]'::jsonb))
 WHERE jsonb_typeof(l.details->'failures') = 'array'
   AND EXISTS (SELECT 1 FROM jsonb_array_elements(l.details->'failures') f
                WHERE f->>'page_id' = ANY(%(pages)s) OR f->>'id' = ANY(%(ids)s)
                   OR split_part(f->>'page_id', '#', 1) = ANY(%(ids)s))
"""


def _scrub_sync_logs(conn: Any, fp: dict[str, list[str]]) -> int:
    """Drop the customer's entries from the sync logs' per-item failures (their reasons may
    quote values); returns how many log rows changed."""
    ids = fp["customer_ids"] + fp["consultations"]
    return int(conn.execute(SCRUB_FAILURES, {"pages": fp["pages"], "ids": ids}).rowcount)


def _erase_rows(conn: Any, fp: dict[str, list[str]]) -> tuple[int, int]:
    """Delete the customer's rows, then their history (the delete trigger closes versions
    first). Returns (history rows, other rows) removed."""
    rows = 0
    items = fp["pages"] + [f"{c}#%" for c in fp["consultations"]]
    rows += conn.execute(
        "DELETE FROM public.data_quarantine WHERE domain = %s AND (item_id = ANY(%s)"
        " OR item_id LIKE ANY(%s))",
        (DOMAIN, fp["pages"], items),
    ).rowcount
    rows += conn.execute(
        "DELETE FROM public.consultation_sync_conflicts WHERE notion_page_id = ANY(%s)",
        (fp["pages"],),
    ).rowcount
    for sql, arg in (
        ("DELETE FROM public.consultation_image_objects WHERE consultation_id = ANY(%s)", "c"),
        ("DELETE FROM public.consultation_records WHERE id::text = ANY(%s)", "r"),
        ("DELETE FROM public.consultation_customers WHERE id::text = ANY(%s)", "k"),
    ):
        key = {"c": "consultations", "r": "records", "k": "keys"}[arg]
        rows += conn.execute(sql, (fp[key],)).rowcount
    rows += _scrub_sync_logs(conn, fp)
    history = 0
    for table, column, key in (
        ("consultation_image_objects_history", "business_id", "consultations"),
        ("consultation_records_history", "entity_key", "records"),
        ("consultation_customers_history", "entity_key", "keys"),
    ):
        history += conn.execute(
            f"DELETE FROM public.{table} WHERE {column} = ANY(%s)", (fp[key],)
        ).rowcount
    return history, rows


def erase_customer(
    db: PostgresResource,
    storage: SupabaseStorageResource,
    *,
    customer_id: str,
    apply: bool = False,
    requested_by: str = "cli",
    reason: str | None = None,
) -> PurgeReport:
    """Erase one customer from the backup: rows, history, conflicts, quarantine entries and
    Storage objects of the customer and their consultations.

    Raises:
        LookupError: the backup has nothing of this customer.
        PurgeRefused: Storage is unavailable while objects exist (nothing is removed).
    """
    fp = _customer_footprint(db, customer_id)
    if not fp["keys"]:
        raise LookupError(f"customer {customer_id} is not in the backup")
    fp["paths"] = _customer_objects(storage, customer_id, fp["paths"])
    counted = sum(
        db.fetch_value(f"SELECT count(*) FROM public.{t} WHERE {c} = ANY(%s)", (fp[k],))
        for t, c, k in (
            ("consultation_customers_history", "entity_key", "keys"),
            ("consultation_records_history", "entity_key", "records"),
            ("consultation_image_objects_history", "business_id", "consultations"),
        )
    )
    planned = PurgeReport(
        "erasure", False, customer_id, counted, 1 + len(fp["records"]), len(fp["paths"])
    )
    if not apply:
        return planned
    objects = _remove_objects(storage, fp["paths"])
    with db.transaction() as conn:
        history, rows = _erase_rows(conn, fp)
        report = PurgeReport("erasure", True, customer_id, history, rows, objects)
        _log(conn, report, requested_by, reason)
    return report
