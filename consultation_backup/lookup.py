"""Reads that survive a Notion outage (seed 004): Notion first, through the circuit breaker;
the Supabase backup when Notion fails or the breaker is open. Every answer says which source
served it and how stale it is. Plus the per-record consistency report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from consultation_backup import transform as T
from consultation_backup.models import ConsistencyReport, CustomerRow, RecordRow
from resources.circuit_breaker import call_with_fallback, get_breaker
from resources.notion import NotionResource
from resources.postgres import PostgresResource

READS_BREAKER = "notion_reads"
CUSTOMER_FIELDS = [f for f in CustomerRow.CONTENT_FIELDS]
RECORD_FIELDS = [f for f in RecordRow.CONTENT_FIELDS if f != "customer_notion_id"]


DEFAULT_LOOKUP_LIMIT = 100
MAX_OR_CONDITIONS = 100  # Notion: at most 100 filter conditions in one compound filter


@dataclass
class LookupResult:
    """Customers (each with ``consultations``) and where they came from."""

    source: str  # "notion" or "supabase"
    customers: list[dict[str, Any]]
    reason: str | None = None  # why the fallback served the answer
    staleness_s: float | None = None  # age of the backup data served (0 for Notion)
    invalid_pages: list[str] = field(default_factory=list)
    truncated: bool = False  # more customers matched than ``limit``

    @property
    def degraded(self) -> bool:
        return self.source != "notion"


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if v is None or isinstance(v, bool | int | float) else T.normalize(v)
        for k, v in row.items()
    }


class ConsultationReader:
    """Look up customers and their consultations by id, name or phone."""

    def __init__(
        self,
        notion: NotionResource,
        db: PostgresResource,
        customers_database_id: str,
        consultations_database_id: str,
    ):
        self.notion, self.db = notion, db
        self.customers_db, self.consultations_db = customers_database_id, consultations_database_id

    # -- customers ------------------------------------------------------------------------
    @staticmethod
    def _filter(customer_id: str | None, name: str | None, phone: str | None) -> dict[str, Any]:
        parts = []
        if customer_id:
            parts.append({"property": "id", "title": {"equals": customer_id}})
        if name:
            parts.append({"property": "고객명", "rich_text": {"contains": name}})
        if phone:
            parts.append({"property": "전화번호", "phone_number": {"contains": phone}})
        if not parts:
            raise ValueError("give a customer id, a name or a phone number")
        return parts[0] if len(parts) == 1 else {"and": parts}

    def _from_notion(
        self, flt: dict[str, Any], with_consultations: bool, limit: int
    ) -> LookupResult:
        cust_ds = self.notion.data_source_id(self.customers_db)
        out, invalid, truncated = [], [], False
        for page in self.notion.iter_pages(
            cust_ds, filter=flt
        ):  # 100 per request: requests are the cost
            try:
                row = T.parse_customer(page).as_dict()
            except T.InvalidPage as exc:
                invalid.append(f"{page['id']}: {exc.reason}")
                continue
            if row[
                "is_deleted"
            ]:  # flagged 삭제됨: not served (the backup does not serve it either)
                continue
            if len(out) == limit:
                truncated = True
                break
            row["consultations"] = []
            out.append(row)
        if with_consultations and out:
            by_page = {row["notion_page_id"]: row for row in out}
            cons_ds = self.notion.data_source_id(self.consultations_db)
            ids = list(by_page)
            for i in range(0, len(ids), MAX_OR_CONDITIONS):
                # one query for many customers (Notion allows 100 conditions in a compound filter)
                conds = [
                    {"property": "고객", "relation": {"contains": pid}}
                    for pid in ids[i : i + MAX_OR_CONDITIONS]
                ]
                for cpage in self.notion.iter_pages(
                    cons_ds, filter=conds[0] if len(conds) == 1 else {"or": conds}
                ):
                    try:
                        record = T.parse_consultation(cpage)
                    except T.InvalidPage as exc:
                        invalid.append(f"{cpage['id']}: {exc.reason}")
                        continue
                    owner = by_page.get(record.customer_notion_id)
                    if owner is not None:
                        owner["consultations"].append(record.as_dict())
            for row in out:
                row["consultations"] = [
                    _jsonable(r)
                    for r in sorted(
                        row["consultations"],
                        key=lambda r: (r["consultation_date"], r["consultation_id"]),
                    )
                ]
        return LookupResult(
            "notion",
            [_jsonable(r) for r in out],
            staleness_s=0.0,
            invalid_pages=invalid,
            truncated=truncated,
        )

    def _from_supabase(
        self,
        customer_id: str | None,
        name: str | None,
        phone: str | None,
        with_consultations: bool,
        limit: int,
    ) -> LookupResult:
        conds, params = ["NOT is_deleted"], []
        if customer_id:
            conds.append("customer_id = %s")
            params.append(customer_id)
        if name:
            conds.append("name LIKE %s")
            params.append(f"%{name}%")
        if phone:
            conds.append("phone LIKE %s")
            params.append(f"%{phone}%")
        rows = self.db.fetch_all(
            f"SELECT * FROM public.consultation_customers WHERE {' AND '.join(conds)}"
            " ORDER BY customer_id LIMIT %s",
            [*params, limit + 1],
        )
        truncated = len(rows) > limit
        rows = rows[:limit]
        customers = []
        for row in rows:
            row = dict(row)
            row["consultations"] = (
                [
                    _jsonable(r)
                    for r in self.db.fetch_all(
                        "SELECT * FROM public.consultation_records WHERE customer_id = %s AND NOT is_deleted"
                        " ORDER BY consultation_date, consultation_id",
                        (row["id"],),
                    )
                ]
                if with_consultations
                else []
            )
            customers.append(_jsonable(row))
        synced = [r["synced_at"] for r in rows if r.get("synced_at")]
        newest = (
            max(synced)
            if synced
            else self.db.fetch_value("SELECT max(synced_at) FROM public.consultation_customers")
        )
        staleness = (datetime.now(UTC) - newest).total_seconds() if newest else None
        return LookupResult("supabase", customers, staleness_s=staleness, truncated=truncated)

    def find_customers(
        self,
        *,
        customer_id: str | None = None,
        name: str | None = None,
        phone: str | None = None,
        with_consultations: bool = True,
        limit: int = DEFAULT_LOOKUP_LIMIT,
    ) -> LookupResult:
        """Customers matching every given criterion (at most ``limit``, ``truncated`` when more
        matched), from Notion or (degraded) from the backup; soft-deleted customers are left out."""
        flt = self._filter(customer_id, name, phone)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        got = call_with_fallback(
            get_breaker(READS_BREAKER),
            lambda: self._from_notion(flt, with_consultations, limit),
            lambda: self._from_supabase(customer_id, name, phone, with_consultations, limit),
        )
        result = got.value
        if got.degraded:
            result.reason = got.reason
        return result

    # -- consistency ------------------------------------------------------------------------
    def validate_consistency(
        self, *, customer_id: str | None = None, consultation_id: str | None = None
    ) -> ConsistencyReport:
        """Compare one customer or consultation in Notion and in the backup (seed 004
        ``validateDataConsistency``): consistent or not, the differing fields, what to do."""
        if bool(customer_id) == bool(consultation_id):
            raise ValueError("give exactly one of customer_id / consultation_id")
        entity, key = (
            ("customer", customer_id) if customer_id else ("consultation", consultation_id)
        )
        database = self.customers_db if customer_id else self.consultations_db
        table = "consultation_customers" if customer_id else "consultation_records"
        column = "customer_id" if customer_id else "consultation_id"
        ds = self.notion.data_source_id(database)
        pages = list(
            self.notion.iter_pages(ds, filter={"property": "id", "title": {"equals": key}})
        )
        backup = self.db.fetch_one(
            f"SELECT *, (updated_at > synced_at) AS locally_edited FROM public.{table}"
            f" WHERE {column} = %s",
            (key,),
        )
        differences: list[str] = []
        recs: list[str] = []
        if not pages and backup is None:
            return ConsistencyReport(
                entity,
                key,
                False,
                [f"{entity} {key} exists in neither Notion nor the backup"],
                ["check the id"],
            )
        if not pages:
            state = (
                "is soft-deleted in the backup"
                if backup.get("is_deleted")
                else "exists only in the backup"
            )
            return ConsistencyReport(
                entity,
                key,
                bool(backup.get("is_deleted")),
                [f"{entity} {key} {state}"],
                []
                if backup.get("is_deleted")
                else [
                    f"restore it: python -m consultation_backup.cli restore --customer-id "
                    f"{key.split('_')[0]} --apply"
                ],
            )
        if len(pages) > 1:
            differences.append(f"{len(pages)} Notion pages carry the id {key}")
            recs.append("remove the duplicate page in Notion; the backup keeps the first one")
        page = pages[0]
        try:
            notion_row = (
                T.parse_customer(page) if customer_id else T.parse_consultation(page)
            ).as_dict()
        except T.InvalidPage as exc:
            return ConsistencyReport(
                entity,
                key,
                False,
                differences + [f"Notion page is invalid: {exc.reason}"],
                recs + ["fix the page in Notion; the backup keeps its last good version"],
            )
        if backup is None:
            return ConsistencyReport(
                entity,
                key,
                False,
                differences + [f"{entity} {key} is missing from the backup"],
                recs
                + [
                    "run the sync: dg launch --assets "
                    + (
                        "supabase/public/consultation_customers"
                        if customer_id
                        else f"supabase/public/consultation_records --partition "
                        f"{notion_row['consultation_date']}"
                    )
                ],
            )
        fields = CUSTOMER_FIELDS if customer_id else RECORD_FIELDS
        for f in T.differing_fields(notion_row, backup, fields):
            differences.append(
                f"{f}: notion={T.normalize(notion_row.get(f))!r} supabase={T.normalize(backup.get(f))!r}"
            )
        if backup.get("notion_page_id") != page["id"]:
            differences.append(
                f"notion_page_id: notion={page['id']} supabase={backup.get('notion_page_id')}"
            )
        if differences:
            if backup.get("locally_edited"):
                recs.append(
                    "the backup was edited in Supabase: see `python -m consultation_backup.cli conflicts list`"
                )
            elif (
                backup.get("notion_updated_at")
                and backup["notion_updated_at"] < notion_row["notion_updated_at"]
            ):
                recs.append(
                    "Notion is newer: the next sensor tick or a re-sync brings the backup up to date"
                )
            else:
                recs.append("re-sync this item (Notion is the primary)")
        return ConsistencyReport(entity, key, not differences, differences, recs)


def reader_from_env(max_attempts: int = 2) -> ConsultationReader:
    """A reader built from the environment contract (CLI use; few retries so a fallback is quick)."""
    import os

    from resources.environment import apply_local_defaults

    apply_local_defaults()
    notion = NotionResource(
        token=os.environ["NOTION_TOKEN"],
        base_url=os.environ["NOTION_BASE_URL"],
        max_attempts=max_attempts,
    )
    db = PostgresResource(dsn=os.environ["SUPABASE_DB_URL"], application_name="consultation-cli")
    return ConsultationReader(
        notion,
        db,
        os.environ["NOTION_CUSTOMERS_DATABASE_ID"],
        os.environ["NOTION_CONSULTATIONS_DATABASE_ID"],
    )
