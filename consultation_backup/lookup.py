"""Reads that survive a Notion outage: Notion first, through the circuit breaker; the Supabase
backup when Notion fails or the breaker is open. Every answer says which source served it and
how stale it is. Plus the per-record consistency report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from consultation_backup import transform as T
from consultation_backup.models import ConsistencyReport, CustomerRow, RecordRow, ResolvedSchema
from consultation_backup.notion_schema import Kind, pinned_schema, read_page
from resources.circuit_breaker import call_with_fallback, get_breaker
from resources.notion import NotionPage, NotionResource
from resources.postgres import PostgresResource

READS_BREAKER = "notion_reads"
CUSTOMER_FIELDS = list(CustomerRow.CONTENT_FIELDS)
RECORD_FIELDS = [f for f in RecordRow.CONTENT_FIELDS if f != "customer_notion_id"]
CONFLICTS_HINT = "python -m consultation_backup.cli conflicts list"

DEFAULT_LOOKUP_LIMIT = 100
MAX_OR_CONDITIONS = 100  # Notion: at most 100 filter conditions in one compound filter


@dataclass(frozen=True)
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


def customer_filter(
    customer_id: str | None,
    name: str | None,
    phone: str | None,
    schema: ResolvedSchema | None = None,
) -> dict[str, Any]:
    """Notion filter matching every given criterion (id exact, name/phone contained); with the
    pinned ``schema`` properties are named by their stable id (renames do not break it)."""

    def ref(canonical: str, default_type: str) -> tuple[str, str]:
        pinned = schema.properties.get(canonical) if schema else None
        if pinned is None:
            return canonical, default_type
        return pinned.property_id, pinned.type

    parts: list[dict[str, Any]] = []
    for canonical, default_type, value, op in (
        ("id", "title", customer_id, "equals"),
        ("고객명", "rich_text", name, "contains"),
        ("전화번호", "phone_number", phone, "contains"),
    ):
        if value:
            prop, typ = ref(canonical, default_type)
            parts.append({"property": prop, typ: {op: value}})
    if not parts:
        raise ValueError("give a customer id, a name or a phone number")
    return parts[0] if len(parts) == 1 else {"and": parts}


class ConsultationReader:
    """Look up customers and their consultations by id, name or phone."""

    def __init__(
        self,
        notion: NotionResource,
        db: PostgresResource,
        customers_database_id: str,
        consultations_database_id: str,
    ) -> None:
        self.notion, self.db = notion, db
        self.customers_db, self.consultations_db = customers_database_id, consultations_database_id
        self._schemas: dict[str, ResolvedSchema | None] = {}

    def schema(self, kind: Kind) -> ResolvedSchema | None:
        """The properties pinned by the last sync (read by id), None if there are none or the
        backup cannot be reached (then pages are read by their names)."""
        if kind not in self._schemas:
            try:
                self._schemas[kind] = pinned_schema(self.db, kind)
            except Exception:  # a lookup still works by name while Supabase is away
                self._schemas[kind] = None
        return self._schemas[kind]

    def _read(self, kind: Kind, page: NotionPage) -> NotionPage:
        return read_page(None, self.schema(kind), page)

    # -- customers from Notion --------------------------------------------------------------
    def _notion_customers(
        self, flt: dict[str, Any], limit: int, invalid: list[str]
    ) -> tuple[list[dict[str, Any]], bool]:
        """Live customers matching ``flt`` (at most ``limit``) and whether more matched."""
        out: list[dict[str, Any]] = []
        ds = self.notion.data_source_id(self.customers_db)
        # 100 pages per request: requests are the cost
        for page in self.notion.iter_pages(ds, filter=flt):
            page = self._read("customers", page)
            try:
                row = T.parse_customer(page).as_dict()
            except T.InvalidPage as exc:
                invalid.append(f"{page.id}: {exc.reason}")
                continue
            if row["is_deleted"]:  # flagged 삭제됨: the backup does not serve it either
                continue
            if len(out) == limit:
                return out, True
            row["consultations"] = []
            out.append(row)
        return out, False

    def _attach_consultations(self, customers: list[dict[str, Any]], invalid: list[str]) -> None:
        """Each customer's consultations, oldest first, from one query per 100 customers (an
        ``or`` of relation filters) rather than one per customer."""
        by_page = {row["notion_page_id"]: row for row in customers}
        ds = self.notion.data_source_id(self.consultations_db)
        ids = list(by_page)
        for i in range(0, len(ids), MAX_OR_CONDITIONS):
            schema = self.schema("consultations")
            relation = schema.id_of("고객") if schema else "고객"
            conds = [
                {"property": relation, "relation": {"contains": pid}}
                for pid in ids[i : i + MAX_OR_CONDITIONS]
            ]
            flt = conds[0] if len(conds) == 1 else {"or": conds}
            for page in self.notion.iter_pages(ds, filter=flt):
                page = self._read("consultations", page)
                try:
                    record = T.parse_consultation(page)
                except T.InvalidPage as exc:
                    invalid.append(f"{page.id}: {exc.reason}")
                    continue
                owner = by_page.get(record.customer_notion_id)
                if owner is not None:
                    owner["consultations"].append(record.as_dict())
        for row in customers:
            ordered = sorted(
                row["consultations"], key=lambda r: (r["consultation_date"], r["consultation_id"])
            )
            row["consultations"] = [_jsonable(r) for r in ordered]

    def _from_notion(
        self, flt: dict[str, Any], with_consultations: bool, limit: int
    ) -> LookupResult:
        invalid: list[str] = []
        customers, truncated = self._notion_customers(flt, limit, invalid)
        if with_consultations and customers:
            self._attach_consultations(customers, invalid)
        return LookupResult(
            "notion",
            [_jsonable(r) for r in customers],
            staleness_s=0.0,
            invalid_pages=invalid,
            truncated=truncated,
        )

    # -- customers from the backup ----------------------------------------------------------
    def _backup_consultations(self, customer_row_id: Any) -> list[dict[str, Any]]:
        rows = self.db.fetch_all(
            "SELECT * FROM public.consultation_records WHERE customer_id = %s AND NOT is_deleted"
            " ORDER BY consultation_date, consultation_id",
            (customer_row_id,),
        )
        return [_jsonable(r) for r in rows]

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
        digits = re.sub(r"[^0-9]", "", phone or "")
        if digits:
            # phones are stored as Notion has them; compared digits-only at query time
            conds.append("regexp_replace(phone, '[^0-9]', '', 'g') LIKE %s")
            params.append(f"%{digits}%")
        elif phone:
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
            consultations = self._backup_consultations(row["id"]) if with_consultations else []
            customers.append(_jsonable({**row, "consultations": consultations}))
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
        matched), from Notion or (degraded) from the backup; soft-deleted customers are left
        out."""
        flt = customer_filter(customer_id, name, phone, self.schema("customers"))
        if limit < 1:
            raise ValueError("limit must be at least 1")
        got = call_with_fallback(
            get_breaker(READS_BREAKER),
            lambda: self._from_notion(flt, with_consultations, limit),
            lambda: self._from_supabase(customer_id, name, phone, with_consultations, limit),
        )
        return replace(got.value, reason=got.reason) if got.degraded else got.value

    # -- consistency ------------------------------------------------------------------------
    def validate_consistency(
        self, *, customer_id: str | None = None, consultation_id: str | None = None
    ) -> ConsistencyReport:
        """Compare one customer or consultation in Notion and in the backup: consistent or not,
        the differing fields, what to do."""
        if bool(customer_id) == bool(consultation_id):
            raise ValueError("give exactly one of customer_id / consultation_id")
        is_customer = bool(customer_id)
        entity = "customer" if is_customer else "consultation"
        key = str(customer_id or consultation_id)
        database = self.customers_db if is_customer else self.consultations_db
        table = "consultation_customers" if is_customer else "consultation_records"
        column = "customer_id" if is_customer else "consultation_id"
        kind: Kind = "customers" if is_customer else "consultations"
        schema = self.schema(kind)
        title = schema.properties.get("id") if schema else None
        flt = {
            "property": title.property_id if title else "id",
            title.type if title else "title": {"equals": key},
        }
        ds = self.notion.data_source_id(database)
        pages = [self._read(kind, p) for p in self.notion.iter_pages(ds, filter=flt)]
        backup = self.db.fetch_one(
            f"SELECT *, (updated_at > synced_at) AS locally_edited FROM public.{table}"
            f" WHERE {column} = %s",
            (key,),
        )
        return _compare(entity, key, pages, backup)


def _only_in_backup(entity: str, key: str, backup: dict[str, Any] | None) -> ConsistencyReport:
    if backup is None:
        return ConsistencyReport(
            entity,
            key,
            False,
            [f"{entity} {key} exists in neither Notion nor the backup"],
            ["check the id"],
        )
    deleted = bool(backup.get("is_deleted"))
    state = "is soft-deleted in the backup" if deleted else "exists only in the backup"
    restore_hint = (
        "restore it: python -m consultation_backup.cli restore --customer-id "
        f"{key.split('_')[0]} --apply"
    )
    return ConsistencyReport(
        entity, key, deleted, [f"{entity} {key} {state}"], [] if deleted else [restore_hint]
    )


def _sync_hint(entity: str, notion_row: dict[str, Any]) -> str:
    if entity == "customer":
        return "run the sync: dg launch --assets supabase/public/consultation_customers"
    return (
        "run the sync: dg launch --assets supabase/public/consultation_records --partition "
        f"{notion_row['consultation_date']}"
    )


def _field_differences(
    notion_row: dict[str, Any], backup: dict[str, Any], fields: list[str], page_id: str
) -> list[str]:
    out = [
        f"{f}: notion={T.normalize(notion_row.get(f))!r} supabase={T.normalize(backup.get(f))!r}"
        for f in T.differing_fields(notion_row, backup, fields)
    ]
    if backup.get("notion_page_id") != page_id:
        out.append(f"notion_page_id: notion={page_id} supabase={backup.get('notion_page_id')}")
    return out


def _recommendation(notion_row: dict[str, Any], backup: dict[str, Any]) -> str:
    if backup.get("locally_edited"):
        return f"the backup was edited in Supabase: see `{CONFLICTS_HINT}`"
    backed_up_at = backup.get("notion_updated_at")
    if backed_up_at and backed_up_at < notion_row["notion_updated_at"]:
        return "Notion is newer: the next sensor tick or a re-sync brings the backup up to date"
    return "re-sync this item (Notion is the primary)"


def _compare(
    entity: str, key: str, pages: list[NotionPage], backup: dict[str, Any] | None
) -> ConsistencyReport:
    """The consistency report of one item from its Notion pages and its backup row."""
    if not pages:
        return _only_in_backup(entity, key, backup)
    differences: list[str] = []
    recs: list[str] = []
    if len(pages) > 1:
        differences.append(f"{len(pages)} Notion pages carry the id {key}")
        recs.append("remove the duplicate page in Notion; the backup keeps the first one")
    page = pages[0]
    parse = T.parse_customer if entity == "customer" else T.parse_consultation
    try:
        notion_row = parse(page).as_dict()
    except T.InvalidPage as exc:
        differences.append(f"Notion page is invalid: {exc.reason}")
        recs.append("fix the page in Notion; the backup keeps its last good version")
        return ConsistencyReport(entity, key, False, differences, recs)
    if backup is None:
        differences.append(f"{entity} {key} is missing from the backup")
        recs.append(_sync_hint(entity, notion_row))
        return ConsistencyReport(entity, key, False, differences, recs)
    fields = CUSTOMER_FIELDS if entity == "customer" else RECORD_FIELDS
    differences += _field_differences(notion_row, backup, fields, page.id)
    if differences:
        recs.append(_recommendation(notion_row, backup))
    return ConsistencyReport(entity, key, not differences, differences, recs)
