"""Chaos path: the consultation backup (Notion pages and Drive images into Supabase).

The Notion, Google Drive and Supabase Storage stand-ins run in this process on random free ports
(never the contract ports: a demo may be running), seeded at a small scale, with the vendor's
limits on. The real backup command lines (``dg launch`` of the customers, records-and-images
range, edits and reconcile jobs, in a private ``DAGSTER_HOME``) run in a child process and are
SIGKILLed at random; the Supabase connections go through the cutting proxy. Between kills the
stand-ins get new faults (429 bursts with Retry-After, a 5xx rate, slow answers) and Notion is
edited through the real notion-client (a property changed, a page trashed, a page created, text
with leading/trailing whitespace), and a Drive image is replaced.

Afterwards, faults off, the full backup runs untouched; then the verdict, from the outside:
every live Notion page in Supabase with equal key values (byte-exact text), trashed pages
soft-deleted, every image in Storage with the Drive file's bytes (md5), every quarantined item
named with a reason.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
from notion_client import Client
from notion_client.errors import HTTPResponseError

from tooling.chaos.core import ChaosContext, PathResult, run_to_completion

SEOUL = ZoneInfo("Asia/Seoul")
SCALE = 12  # customers (about five consultations each, some with images, a few broken items)
STANDIN_SEED = 20261203
TOKEN = "ntn_chaos_harness_token"
BUCKET = "consultation-images"
DEFS = ["-m", "consultation_backup.definitions", "-a", "defs"]
CUSTOMER_TEXT = {
    "고객명": "name",
    "전화번호": "phone",
    "주소": "address",
    "특이사항": "special_note",
}
RECORD_TEXT = {
    "호소증상": "symptoms",
    "환자상태": "patient_condition",
    "설진분석": "tongue_analysis",
    "특이사항": "special_note",
    "처방약": "prescription",
    "결과": "result",
}
# A kill lands uniformly in [0.05, MAX_DELAY_S] after the start: the command line's start-up
# (several seconds here), the Notion reads, the writes or the image copies. A run that ends
# first is started again, so the first runs also fill the backup.
MAX_DELAY_S = 20.0
# client timeouts during the chaos (the injected latency goes beyond them)
NOTION_TIMEOUT_S = 3.0
DRIVE_TIMEOUT_S = 4.0
WHITESPACE_TEXTS = ["  앞뒤 공백  ", "\t탭으로 시작", "줄바꿈 끝\n", " 혼합 \t 공백 ", "trailing "]


def _dg() -> str:
    return str(Path(".venv/bin/dg"))


def _plain(prop: dict[str, Any]) -> str:
    typ = prop.get("type")
    if typ in ("title", "rich_text"):
        return "".join(
            i.get("plain_text") or i.get("text", {}).get("content", "") for i in prop.get(typ) or []
        )
    if typ == "phone_number":
        return prop.get("phone_number") or ""
    return ""


def _seoul_today() -> date:
    return datetime.now(SEOUL).date()


class Stand:
    """The three stand-ins, in-process, on free ports."""

    def __init__(self, key_dir: Path) -> None:
        from standins import google_drive as drive_emu
        from standins import notion as notion_emu
        from standins import supabase_storage as storage_emu
        from standins.base import EmulatorServer, FaultInjector

        self.notion_emu = notion_emu
        self.injectors = {k: FaultInjector() for k in ("notion", "drive", "storage")}
        self.notion_app: Any = notion_emu.create_app(
            STANDIN_SEED, SCALE, injector=self.injectors["notion"]
        )
        self.drive_app: Any = drive_emu.create_app(
            STANDIN_SEED, SCALE, injector=self.injectors["drive"]
        )
        self.storage_app: Any = storage_emu.create_app(injector=self.injectors["storage"])
        self.servers = [
            EmulatorServer(app, name=name).start()
            for app, name in (
                (self.notion_app, "notion"),
                (self.drive_app, "google_drive"),
                (self.storage_app, "supabase"),
            )
        ]
        self.notion_url, self.drive_url, self.storage_url = (s.url for s in self.servers)
        self.key = drive_emu.write_local_service_account(
            key_dir / "google-service-account.json", token_uri=f"{self.drive_url}/token"
        )

    def env(self) -> dict[str, str]:
        return {
            "NOTION_BASE_URL": self.notion_url,
            "NOTION_TOKEN": TOKEN,
            "GOOGLE_DRIVE_BASE_URL": self.drive_url,
            "GOOGLE_SERVICE_ACCOUNT_JSON": str(self.key),
            "SUPABASE_URL": self.storage_url,
        }

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    @property
    def workspace(self) -> Any:
        return self.notion_app.workspace

    def pages(self, which: str) -> dict[str, dict[str, Any]]:
        ds = (
            self.notion_emu.CUSTOMERS_DS_LOCAL
            if which == "customers"
            else self.notion_emu.CONSULTATIONS_DS_LOCAL
        )
        return dict(self.workspace.data_sources[ds].pages)

    # -- faults through the admin API (what a test or an operator would do) ---------------
    def urls(self) -> dict[str, str]:
        return {"notion": self.notion_url, "drive": self.drive_url, "storage": self.storage_url}

    def set_faults(self, which: str, **faults: Any) -> None:
        url = self.urls()[which]
        httpx.put(f"{url}/_emulator/faults", json=faults, timeout=10).raise_for_status()

    def reset_faults(self) -> None:
        for url in self.urls().values():
            httpx.put(
                f"{url}/_emulator/faults",
                json={"latency_ms": 0, "error_rate": 0.0, "burst_429": 0, "down": False},
                timeout=10,
            ).raise_for_status()

    def injected(self) -> int:
        total = 0
        for url in self.urls().values():
            got = httpx.get(f"{url}/_emulator/faults", timeout=10).json()["injected"]
            total += got["429"] + got["error"] + got["down"] + got["delayed"]
        return total


def _call(fn: Any, **kwargs: Any) -> Any:
    """A notion-client call by a "user", retried on 429 (the rate limit, a burst) and 5xx (an
    injected error answers before the stand-in applies anything)."""
    for attempt in range(20):
        try:
            return fn(**kwargs)
        except HTTPResponseError as exc:
            if exc.status not in (429, 500, 502, 503) or attempt == 19:
                raise
            time.sleep(0.4)
    return None


class Mutator:
    """Edits "by users": Notion through the real client, Drive in place. ``shared`` (the
    counters) is shared by the mutator working between the runs and the one editing while a
    run reads."""

    def __init__(self, stand: Stand, rng: random.Random, shared: dict[str, int]) -> None:
        self.stand, self.rng, self.shared = stand, rng, shared
        self.client = Client(auth=TOKEN, base_url=stand.notion_url, timeout_ms=20_000)
        self.lock = threading.Lock()

    @property
    def edits(self) -> int:
        return self.shared["edits"]

    def mutate(self) -> None:
        with self.lock:
            self._mutate()
            self.shared["edits"] += 1

    def _live(self, which: str) -> list[dict[str, Any]]:
        return [p for p in self.stand.pages(which).values() if not p["in_trash"]]

    def _mutate(self) -> None:
        rng = self.rng
        op = rng.random()
        consultations = self._live("consultations")
        customers = self._live("customers")
        if op < 0.35 and consultations:
            page = rng.choice(consultations)
            prop = rng.choice(["환자상태", "처방약", "결과", "특이사항", "설진분석"])
            text = rng.choice([*WHITESPACE_TEXTS, f"변경 {rng.randrange(10**6)}"])
            _call(
                self.client.pages.update,
                page_id=page["id"],
                properties={prop: {"rich_text": [{"text": {"content": text}}]}},
            )
        elif op < 0.55 and customers:
            page = rng.choice(customers)
            props: dict[str, Any]
            if rng.random() < 0.5:
                props = {
                    "주소": {"rich_text": [{"text": {"content": rng.choice(WHITESPACE_TEXTS)}}]}
                }
            else:
                phone = f"010-{rng.randrange(10**4):04d}-{rng.randrange(10**4):04d}"
                props = {"전화번호": {"phone_number": phone}}
            _call(self.client.pages.update, page_id=page["id"], properties=props)
        elif op < 0.65 and self.shared["trashed"] < 4:
            self.shared["trashed"] += 1
            _call(self.client.pages.update, page_id=rng.choice(consultations)["id"], in_trash=True)
        elif op < 0.85 and customers:
            self._create(rng.choice(customers))
        else:
            self._replace_image()

    def _create(self, customer: dict[str, Any]) -> None:
        from standins.notion import CONSULTATIONS_DS_LOCAL

        self.shared["created"] += 1
        cid = _plain(customer["properties"]["id"])
        day = _seoul_today() - timedelta(days=self.rng.randint(0, 20))
        _call(
            self.client.pages.create,
            parent={"type": "data_source_id", "data_source_id": CONSULTATIONS_DS_LOCAL},
            properties={
                "id": {
                    "title": [{"text": {"content": f"{cid}_{700 + self.shared['created']:03d}"}}]
                },
                "상담일자": {"date": {"start": day.isoformat()}},
                "고객": {"relation": [{"id": customer["id"]}]},
                "호소증상": {
                    "rich_text": [{"text": {"content": self.rng.choice(WHITESPACE_TEXTS)}}]
                },
                "처방약": {"rich_text": [{"text": {"content": "쌍화탕"}}]},
            },
        )

    def _replace_image(self) -> None:
        drive = self.stand.drive_app.drive
        images = [
            f
            for f in drive.files.values()
            if f.mime_type in ("image/png", "image/jpeg", "image/webp")
            and (f.spec is None or f.spec.kind in ("jpeg", "png", "webp"))
        ]
        if not images:
            return
        target = self.rng.choice(images)
        from tooling.demo_data import DemoData

        kind = {"image/png": "png", "image/webp": "webp"}.get(target.mime_type, "jpeg")
        body = DemoData(seed=self.rng.randrange(1 << 30), scale="tiny").image_bytes(kind)
        with drive.lock:
            drive.replace_content(target.id, body)


def _inject(stand: Stand, ctx: ChaosContext) -> None:
    """A new random fault at one stand-in (the previous ones cleared)."""
    rng = ctx.rng
    stand.reset_faults()
    which = rng.choice(["notion", "notion", "drive", "storage"])
    kind = rng.random()
    if kind < 0.4:
        stand.set_faults(which, burst_429=rng.randint(2, 8), retry_after_s=1)
    elif kind < 0.75:
        stand.set_faults(
            which,
            error_rate=rng.choice([0.05, 0.1, 0.2]),
            error_status=rng.choice([500, 502, 503]),
            seed=rng.randrange(1000),
        )
    elif kind < 0.9:
        # slow answers; one time in three beyond the client's timeout (the call times out and
        # is retried, and the stand-in may still apply a write the client gave up on)
        timeout_s = {"notion": NOTION_TIMEOUT_S, "drive": DRIVE_TIMEOUT_S}.get(which, 0.0)
        timeout_ms = int(1000 * timeout_s) if timeout_s else 1500
        stand.set_faults(which, latency_ms=rng.choice([300, 1000, timeout_ms + 500]))
    # else: a quiet round


def _env(name: str) -> dict[str, str]:
    return {"env": name}


def run_config(short_timeouts: bool) -> dict[str, Any]:
    """In-process execution (no step subprocesses: on this small machine one costs seconds of
    start-up); the Notion breaker half-opens after 5 s (the default 300 s would keep the runs
    after a fault storm failing for minutes); during the chaos, client timeouts short enough
    that the stand-ins' injected latency goes beyond them. Values by env var reference, as
    the shared resources read them (no secret on a command line)."""
    notion: dict[str, Any] = {
        "token": _env("NOTION_TOKEN"),
        "base_url": _env("NOTION_BASE_URL"),
        "shared_state_dsn": _env("SUPABASE_DB_URL"),
        "breaker_reset_timeout_s": 5.0,
    }
    resources: dict[str, Any] = {"notion": {"config": notion}}
    if short_timeouts:
        notion["timeout_s"] = NOTION_TIMEOUT_S
        resources["google_drive"] = {
            "config": {
                "service_account_json": _env("GOOGLE_SERVICE_ACCOUNT_JSON"),
                "base_url": _env("GOOGLE_DRIVE_BASE_URL"),
                "root_folder_id": _env("GOOGLE_DRIVE_ROOT_FOLDER_ID"),
                "timeout_s": DRIVE_TIMEOUT_S,
            }
        }
    return {"execution": {"config": {"in_process": {}}}, "resources": resources}


def _commands(first: date, last: date, since: str, *, short_timeouts: bool) -> dict[str, list[str]]:
    """The real command lines of the backup."""
    base = run_config(short_timeouts)
    edits = {**base, "ops": {"apply_notion_edits": {"config": {"consultations_since": since}}}}

    def launch(*args: str, config: dict[str, Any] = base) -> list[str]:
        return [_dg(), "launch", *DEFS, *args, "--config-json", json.dumps(config)]

    return {
        "customers": launch("--job", "consultation_customers_job"),
        "records": launch(
            "--job",
            "consultation_records_job",
            "--partition-range",
            f"{first.isoformat()}...{last.isoformat()}",
        ),
        "edits": launch("--job", "consultation_edits_job", config=edits),
        "reconcile": launch("--job", "consultation_reconcile_job"),
    }


# -- the verdict ---------------------------------------------------------------------------
def _quarantine(url: str) -> tuple[dict[str, str], int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT item_id, reason FROM public.data_quarantine"
            " WHERE domain = 'consultation_backup' AND resolved_at IS NULL"
        ).fetchall()
        logs = conn.execute(
            "SELECT count(*) FROM public.consultation_sync_logs WHERE status = 'failed'"
            " AND coalesce(error_message, '') = ''"
        ).fetchone()
    named = {str(r[0]): r[1] or "" for r in rows}
    unnamed = sum(1 for r in rows if not (r[1] or "").strip()) + int(logs[0] if logs else 0)
    return named, unnamed


def _is_quarantined(q: dict[str, str], *ids: str) -> bool:
    return any(
        i and (i in q or any(k.startswith(f"{i}#") or k.endswith(f":{i}") for k in q)) for i in ids
    )


def _note(result: PathResult, text: str) -> None:
    if len(result.notes) < 12:
        result.notes.append(text)


def compare_pages(
    which: str,
    pages: dict[str, dict[str, Any]],
    rows: dict[str, tuple[Any, ...]],
    quarantine: dict[str, str],
    result: PathResult,
) -> None:
    """Notion pages (by id) against the backup's rows (by notion_page_id; the columns of
    ``verify``'s queries): a live page must have its row with byte-equal key values (or be
    quarantined), a trashed page's row must be soft-deleted, a row without a page is counted
    as duplicated."""
    customers = which == "customers"
    table = "consultation_customers" if customers else "consultation_records"
    fields = CUSTOMER_TEXT if customers else RECORD_TEXT
    deleted_at = 6 if customers else 9
    for page_id, page in pages.items():
        props = page["properties"]
        title = _plain(props["id"])
        result.compared += 1
        row = rows.get(page_id)
        if page["in_trash"]:
            if row is not None and not row[deleted_at]:
                result.differing += 1
                _note(result, f"{table} {title}: trashed in Notion, not soft-deleted")
            continue
        if _is_quarantined(quarantine, page_id, title):
            continue
        if row is None:
            result.lost += 1
            _note(result, f"{table} {title}: lost")
            continue
        expected = [title] + [_plain(props.get(p) or {}) or None for p in fields]
        got = [row[1], *(row[2 : 2 + len(fields)] if customers else row[3 : 3 + len(fields)])]
        if not customers:
            start = ((props.get("상담일자") or {}).get("date") or {}).get("start") or ""
            expected.append(start[:10])
            got.append(row[2])
        deleted = row[deleted_at]
        # an empty text may be stored as '' or NULL: both mean "empty"; anything else byte-exact
        if [e or None for e in expected] != [g or None for g in got] or deleted:
            result.differing += 1
            _note(result, f"{table} {title}: differs (deleted={deleted})")
    extra = [k for k in rows if k not in pages]
    result.duplicated += len(extra)
    for k in extra[:3]:
        _note(result, f"{table} {k}: in Supabase only")


def verify(stand: Stand, url: str, result: PathResult) -> None:
    quarantine, unnamed = _quarantine(url)
    result.quarantined = len(quarantine)
    result.unnamed_quarantine = unnamed
    with psycopg.connect(url) as conn:
        customers = {
            r[0]: r
            for r in conn.execute(
                "SELECT notion_page_id, customer_id, name, phone, address, special_note,"
                " coalesce(is_deleted, false) FROM public.consultation_customers"
            ).fetchall()
        }
        records = {
            r[0]: r
            for r in conn.execute(
                "SELECT notion_page_id, consultation_id, consultation_date::text, symptoms,"
                " patient_condition, tongue_analysis, special_note, prescription, result,"
                " coalesce(is_deleted, false), customer_notion_id FROM public.consultation_records"
            ).fetchall()
        }
        images = {
            (r[0], r[1]): r
            for r in conn.execute(
                "SELECT consultation_id, image_index, drive_file_id, storage_path"
                " FROM public.consultation_image_objects"
            ).fetchall()
        }
        dup_customers = conn.execute(
            "SELECT count(*) - count(DISTINCT customer_id) FROM public.consultation_customers"
        ).fetchone()
        dup_records = conn.execute(
            "SELECT count(*) - count(DISTINCT consultation_id) FROM public.consultation_records"
        ).fetchone()
    result.duplicated += int(dup_customers[0] if dup_customers else 0)
    result.duplicated += int(dup_records[0] if dup_records else 0)

    def note(text: str) -> None:
        _note(result, text)

    compare_pages("customers", stand.pages("customers"), customers, quarantine, result)
    compare_pages("consultations", stand.pages("consultations"), records, quarantine, result)
    _verify_images(stand, quarantine, records, images, result, note)


def _verify_images(
    stand: Stand,
    quarantine: dict[str, str],
    records: dict[str, Any],
    images: dict[tuple[str, int], Any],
    result: PathResult,
    note: Any,
) -> None:
    drive = stand.drive_app.drive
    bucket = stand.storage_app.storage.buckets.get(BUCKET)
    objects = bucket.objects if bucket is not None else {}
    for page_id, page in stand.pages("consultations").items():
        if page["in_trash"]:
            continue
        props = page["properties"]
        title = _plain(props["id"])
        if _is_quarantined(quarantine, page_id, title) or page_id not in records:
            continue
        for index, item in enumerate((props.get("증상이미지") or {}).get("files") or [], start=1):
            if _is_quarantined(quarantine, f"{title}#{index}"):
                continue
            result.compared += 1
            link = (item.get("external") or {}).get("url", "")
            fid = link.split("/d/")[-1].split("/")[0]
            row = images.get((title, index))
            source = drive.files.get(fid)
            if row is None:
                result.lost += 1
                note(f"image {title}#{index} ({fid}): not backed up, not quarantined")
                continue
            stored = objects.get(row[3])
            if stored is None:
                result.lost += 1
                note(f"image {title}#{index}: row without object {row[3]}")
            elif (
                source is None
                or hashlib.md5(stored.data).digest() != hashlib.md5(source.data()).digest()
            ):
                result.differing += 1
                note(f"image {title}#{index}: bytes differ from Drive")


def run(ctx: ChaosContext, log_dir: Path) -> PathResult:
    result = PathResult("consultation backup")
    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="chaos-consultation-", dir=log_dir)).resolve()
    stand = Stand(home)
    try:
        today = _seoul_today()
        first, last = today - timedelta(days=30), today
        since = (datetime.now(SEOUL) - timedelta(days=1)).isoformat()
        cmds = _commands(first, last, since, short_timeouts=True)
        final = _commands(first, last, since, short_timeouts=False)
        base = {**stand.env(), "DAGSTER_HOME": str(home)}
        direct = {**base, "SUPABASE_DB_URL": ctx.supabase_url}
        ctx.log(f"  stand-ins up ({time.monotonic() - started:.0f} s)")
        sb_url, sb_proxy = ctx.proxied(ctx.supabase_url, cut_rate=0.1)
        chaos_env = {**base, "SUPABASE_DB_URL": sb_url}
        shared = {"created": 0, "trashed": 0, "edits": 0}
        mutator = Mutator(stand, ctx.rng, shared)
        # a second "user" edits while a run reads (an edit racing the run's cursor)
        racer = Mutator(stand, random.Random(ctx.rng.randrange(1 << 30)), shared)
        order = ["customers", "records", "edits", "reconcile"]
        log_file = log_dir / "consultation.log"

        def between(_done: int) -> None:
            stand.reset_faults()
            for _ in range(ctx.rng.randint(1, 3)):
                mutator.mutate()
            _inject(stand, ctx)

        crashes_seen = 0
        for i in range(ctx.kills):
            name = order[i % len(order)] if i < len(order) else ctx.rng.choice(order)
            between(i)
            race = threading.Timer(ctx.rng.uniform(0.5, MAX_DELAY_S * 0.7), racer.mutate)
            race.start()
            try:
                kills, _completed = ctx.kill_loop(
                    cmds[name],
                    env=chaos_env,
                    kills=1,
                    max_delay_s=MAX_DELAY_S,
                    log_file=log_file,
                )
            except RuntimeError:
                # the run failed on its own more than three times in a row under the faults:
                # allowed (a fault beyond the client's retries fails the run, the next heals)
                crashes_seen += 1
                kills = 0
                stand.reset_faults()
            race.join()
            result.kills += kills
        stand.reset_faults()
        result.faults = stand.injected() + sb_proxy.cuts
        sb_proxy.cut_rate = 0.0
        if crashes_seen:
            result.notes.append(f"{crashes_seen} rounds ended with runs failing under faults")
        ctx.log(f"  {result.kills} kills done ({time.monotonic() - started:.0f} s)")
        # the full backup, untouched: customers with reconcile, every partition, images
        run_to_completion(final["reconcile"], direct)
        run_to_completion(final["records"], direct)
        ctx.log(f"  final untouched runs done ({time.monotonic() - started:.0f} s)")
        verify(stand, ctx.supabase_url, result)
        result.notes.append(f"{mutator.edits} Notion/Drive edits between kills")
    finally:
        stand.stop()
    result.wall_s = time.monotonic() - started
    return result
