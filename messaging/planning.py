"""Planning and rendering one execution: the template, the target SELECT, variable matching,
and every recipient's rendered message (nothing is written or sent here)."""

from __future__ import annotations

import bisect
import contextlib
import gc
import os
import pickle
import signal
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from messaging import constants as C
from messaging.catalog import TargetQuery, iter_targets, load_table_mappings, target_query
from messaging.models import (
    MatchReport,
    MessagingError,
    RenderedMessage,
    Template,
    VariableSource,
    WorkflowConfigError,
)
from messaging.progress import RunProgress
from messaging.transform import normalize_phone, placeholders, render_message
from messaging.variables import (
    BATCH_KEY,
    auto_match,
    batched_query,
    individual_mapping_source,
    is_inline_sql,
    parse_variable_sources,
    resolve_values,
)
from resources.mysql import MySQLResource
from resources.postgres import PostgresResource


def load_template(db: PostgresResource, workflow: Mapping[str, Any]) -> Template:
    """The workflow's message template, checked for what makes it unsendable.

    Raises:
        WorkflowConfigError: no template id, template missing or archived, or an Alimtalk
            template without a code or used for advertising.
    """
    cfg = workflow.get("message_config") or {}
    template_id = cfg.get("template_id")
    if not template_id:
        raise WorkflowConfigError(
            f"workflow {workflow['id']}: message_config.template_id is required"
        )
    row = db.fetch_one("SELECT * FROM public.message_templates WHERE id = %s", (template_id,))
    if row is None:
        raise WorkflowConfigError(f"workflow {workflow['id']}: template {template_id} not found")
    if row["status"] == "archived":
        raise WorkflowConfigError(f"template {row['name']!r} is archived")
    if row["message_type"] == "kakao" and not row.get("template_code"):
        raise WorkflowConfigError(f"Alimtalk template {row['name']!r} has no template_code")
    if row["message_type"] == "kakao" and row["category"] == "promotion":
        raise WorkflowConfigError(
            f"template {row['name']!r}: Alimtalk is for informational messages only; "
            "send advertising as SMS/LMS"
        )
    return Template(
        str(row["id"]),
        row["name"],
        row["category"],
        row["message_type"],
        row["content"],
        row.get("template_code"),
        list(row.get("buttons") or []),
    )


def opt_out_line(db: PostgresResource) -> str:
    value = db.fetch_value(
        "SELECT setting_value FROM public.system_settings"
        " WHERE setting_key = 'messaging.opt_out_line'"
    )
    return str(value) if isinstance(value, str) and value else C.DEFAULT_OPT_OUT_LINE


def ad_sender(db: PostgresResource) -> tuple[str, str]:
    """``system_settings`` ``messaging.ad_sender`` = ``{"name", "contact"}``: who advertises and
    how to reach them; every ``(광고)`` message carries both (Korean law).

    Raises:
        WorkflowConfigError: not configured (advertising is then not rendered at all).
    """
    value = db.fetch_value(
        "SELECT setting_value FROM public.system_settings WHERE setting_key = 'messaging.ad_sender'"
    )
    name = str(value.get("name") or "").strip() if isinstance(value, dict) else ""
    contact = str(value.get("contact") or "").strip() if isinstance(value, dict) else ""
    if not name or not contact:
        raise WorkflowConfigError(
            "advertising needs the sender's name and contact: system_settings "
            '\'messaging.ad_sender\' = {"name": ..., "contact": ...}'
        )
    return name, contact


@dataclass
class Prefetched:
    """One batch's query-variable answers (cache key -> first row or None) and what it took."""

    cache: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    queries: int = 0
    used: set[str] = field(default_factory=set)


class QueryVariables:
    """``query`` variables: a ``variable_query_templates`` SELECT with bound parameters, cached
    per parameters."""

    def __init__(self, db: PostgresResource, mysql: MySQLResource):
        self.mysql = mysql
        self.templates = {
            r["template_name"]: r
            for r in db.fetch_all("SELECT * FROM public.variable_query_templates")
        }
        self.cache: dict[tuple[Any, ...], Any] = {}
        self.used: set[str] = set()
        self.queries = 0  # SELECTs sent to MySQL (set-based: one per batch and variable)

    def _template(self, src: VariableSource) -> Mapping[str, Any]:
        tpl = self.templates.get(src.query_template or "")
        if tpl is None and is_inline_sql(src.query_template):
            # an individual mapping whose source_field is the SELECT itself
            tpl = {"template_name": None, "query_sql": src.query_template}
        if tpl is None:
            raise WorkflowConfigError(
                f"variable {src.name!r}: no variable_query_templates row {src.query_template!r}"
            )
        return tpl

    def fetch(self, report: MatchReport, rows: list[dict[str, Any]]) -> Prefetched:
        """Every query variable of a batch of target rows, with one SELECT per variable
        (``batched_query``), without touching this object's state: safe to run in a worker
        thread for the next batch while the current one is rendered. ``install`` makes it the
        cache ``__call__`` reads; a query that cannot be batched is run there once per distinct
        value, also cached for this batch only."""
        got = Prefetched()
        for src in report.matched.values():
            if src.source_type != "query" or len(src.params or {}) != 1:
                continue
            tpl = self._template(src)
            ((param, column),) = (src.params or {}).items()
            values = sorted({row.get(column) for row in rows} - {None}, key=str)
            if not values:
                continue
            sql = batched_query(str(tpl["query_sql"]), param, len(values))
            if sql is None:
                continue
            found: dict[str, dict[str, Any]] = {}
            bound = {f"__k{i}": v for i, v in enumerate(values)}
            for batch in self.mysql.iter_query(sql, bound):
                for r in batch:
                    found.setdefault(str(r.get(BATCH_KEY)), r)
            got.queries += 1
            if tpl["template_name"]:
                got.used.add(str(tpl["template_name"]))
            for v in values:
                hit = found.get(str(v))
                if hit is not None:
                    hit = {k: x for k, x in hit.items() if k != BATCH_KEY}
                got.cache[(src.query_template, ((param, v),))] = hit
        return got

    def install(self, got: Prefetched) -> None:
        """Make one batch's prefetched answers the cache (the previous batch's are dropped)."""
        self.cache = got.cache
        self.queries += got.queries
        self.used |= got.used

    def __call__(self, src: VariableSource, row: Mapping[str, Any]) -> Any:
        tpl = self._template(src)
        params = {p: row.get(col) for p, col in (src.params or {}).items()}
        key = (src.query_template, tuple(sorted(params.items())))
        if key not in self.cache:
            rows = self.mysql.query(tpl["query_sql"], params or None)
            self.queries += 1
            self.cache[key] = rows[0] if rows else None
            if tpl["template_name"]:
                self.used.add(tpl["template_name"])
        result = self.cache[key]
        if result is None:
            return None
        return result.get(src.column) if src.column else next(iter(result.values()), None)


@dataclass(frozen=True)
class VariableMatch:
    """How the template's variables were matched, and which individual mappings that used."""

    report: MatchReport
    used_individual: dict[str, str] = field(default_factory=dict)  # variable -> mapping id


def match_variables(
    db: PostgresResource,
    template: Template,
    workflow: Mapping[str, Any],
    columns: list[str],
    display_names: Mapping[str, str],
) -> VariableMatch:
    individual_rows = db.fetch_all("SELECT * FROM public.individual_variable_mappings")
    individual = {r["variable_name"]: individual_mapping_source(r) for r in individual_rows}
    ids = {r["variable_name"]: str(r["id"]) for r in individual_rows}
    explicit = parse_variable_sources(workflow.get("variables") or {})
    report = auto_match(
        placeholders(template.content), columns, explicit, display_names, individual
    )
    used_individual = {
        n: ids[n] for n, s in report.matched.items() if n in ids and s is individual.get(n)
    }
    return VariableMatch(report, used_individual)


@dataclass(frozen=True)
class TargetPlan:
    """The target SELECT; for a mapped table, the variables are matched up front so only the
    columns the message needs are read (``match`` is None for an SQL target)."""

    query: TargetQuery
    display: dict[str, str]
    match: VariableMatch | None


def plan_targets(
    db: PostgresResource,
    workflow: Mapping[str, Any],
    template: Template,
    event_range: tuple[int, int] | None = None,
    payload: Mapping[str, Any] | None = None,
) -> TargetPlan:
    mappings = load_table_mappings()
    target_config = workflow.get("target_config") or {}
    query = target_query(target_config, mappings, event_range, payload)
    if not query.table:
        # an SQL target: a column's display name from the first mapped table that has it
        display: dict[str, str] = {}
        for mapping in mappings.values():
            for f in mapping.fields.values():
                display.setdefault(f.name, f.display_name)
        return TargetPlan(query, display, None)
    mapping = mappings[query.table]
    display = {f.name: f.display_name for f in mapping.fields.values()}
    match = match_variables(db, template, workflow, list(mapping.fields), display)
    needed = {mapping.key_field, mapping.phone_field, mapping.name_field}
    for src in match.report.matched.values():
        needed |= {src.column, src.argument, *src.params.values()}
    columns = [c for c in needed if c]
    query = target_query(target_config, mappings, event_range, payload, columns=columns)
    return TargetPlan(query, display, match)


@dataclass(frozen=True)
class RenderResult:
    """Every recipient's rendered message (duplicate phones dropped) and how it was matched."""

    messages: list[RenderedMessage]
    match: VariableMatch
    lookup: QueryVariables

    @property
    def invalid(self) -> int:
        return sum(1 for m in self.messages if not m.ok)


def _warn_unmapped(progress: RunProgress, log: Callable[[str], None], report: MatchReport) -> None:
    if report.unmapped:
        progress.log(
            log,
            "unmapped template variable(s): "
            + ", ".join(report.unmapped)
            + " — recipients without a value are logged as failed, not sent",
            "warning",
        )


SORT_RUN_ROWS = 100_000  # rows sorted in memory at once; longer audiences merge sorted runs
SORT_RUN_BYTES = 24 << 20  # ... or fewer, when the rows are wide (pickled size)
# rows per piece a sorted run is written (and read back) in: the merge holds one piece of each
# run, so a 1,000,000-row audience (10 runs) keeps 10,000 rows alive instead of 50,000, and every
# full garbage collection walks that many fewer objects
SPILL_PIECE_ROWS = 1_000
# a run at least this long is sorted and written by a forked writer process (``_RunWriter``)
FORKED_WRITER_MIN_ROWS = 20_000
SORTED_BATCH_ROWS = 5_000  # rows per batch handed out in phone order (and the shortest run)
PHONE_LAST = "~"  # sorts after every normalized number: unusable phones come last


def _phone_order(raw: object) -> str:
    try:
        return normalize_phone(raw)
    except MessagingError:
        return PHONE_LAST


Packed = tuple[list[tuple[str, ...]], list[tuple[Any, ...]]]


def pack_dicts(rows: list[dict[str, Any]]) -> Packed:
    """Dicts as (their distinct key tuples, one (shape index, values) tuple per dict): what is
    spilled to disk pickles the column names once per batch instead of once per row (half the
    bytes, a third of the time for CRM rows). ``unpack_dicts`` gives the same dicts back, keys
    in the same order."""
    shapes: dict[tuple[str, ...], int] = {}
    out = []
    for row in rows:
        keys = tuple(row)
        index = shapes.get(keys)
        if index is None:
            index = shapes[keys] = len(shapes)
        out.append((index, *row.values()))
    return list(shapes), out


def unpack_dicts(packed: Packed) -> list[dict[str, Any]]:
    shapes, rows = packed
    if len(shapes) == 1:
        (keys,) = shapes
        return [dict(zip(keys, row[1:], strict=True)) for row in rows]
    return [dict(zip(shapes[row[0]], row[1:], strict=True)) for row in rows]


def spooled(batches: Iterator[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
    """Read the whole target stream into a temporary file first, then hand out its batches.

    The target SELECT is one statement under MySQL's time limit; rendering, variable queries
    and logging 1,000,000 recipients take longer than that, so the statement must not stay open
    while they run. Memory stays at one batch (the rows wait on disk, packed).
    """
    with tempfile.TemporaryFile() as spool:
        count = 0
        for batch in batches:
            pickle.dump(pack_dicts(batch), spool, protocol=pickle.HIGHEST_PROTOCOL)
            count += 1
        spool.seek(0)
        for _ in range(count):
            yield unpack_dicts(pickle.load(spool))  # noqa: S301 - our own file, written above


Columns = tuple[list[Any], ...]


def _sorted_by_key(keys: list[str], columns: Columns) -> tuple[list[str], Columns]:
    order = sorted(range(len(keys)), key=keys.__getitem__)  # stable: CRM order among equals
    return [keys[i] for i in order], tuple([col[i] for i in order] for col in columns)


Prepare = Callable[[Columns], Columns]


def _prepared(columns: Columns, prepare: Prepare | None) -> Columns:
    return columns if prepare is None else prepare(columns)


def _write_sorted_run(
    spool: IO[bytes],
    keys: list[str],
    columns: Columns,
    piece_rows: int,
    prepare: Prepare | None = None,
) -> None:
    """Sort one run and write it in pieces of ``piece_rows``, each prepared first (plain pickle,
    written and read in C: the rows' dicts share their key strings, which pickle writes once per
    piece)."""
    run_keys, run_columns = _sorted_by_key(keys, columns)
    for i in range(0, len(run_keys), piece_rows):
        piece = _prepared(tuple(c[i : i + piece_rows] for c in run_columns), prepare)
        pickle.dump((run_keys[i : i + piece_rows], *piece), spool, protocol=pickle.HIGHEST_PROTOCOL)
    spool.flush()


class _RunWriter:
    """Sorts and writes full runs in a forked child process, one at a time, while this process
    reads on.

    While the targets stream in, a run is the only CPU work waiting: this process is busy
    reading rows and resolving their variables, PostgreSQL waits for the COPY's first row and
    the second CPU is idle. Sorting and pickling a 100,000-row run took 0.45-0.5 s of that
    loop (4.2-4.6 s of a 1,000,000-recipient run, measured); a forked child does it on the
    idle CPU with the rows it inherited, nothing is copied to it. The child writes to the run's
    temporary file (the descriptor is shared) and leaves with ``os._exit``: none of this
    process's exit handlers, buffers or connections are touched. It collects no garbage (a
    collection would walk, and so copy, every page of the inherited heap): what it shares with
    this process stays shared, what it touches is the run's rows (its own memory peaked at
    101-104 MB for a 100,000-row run, sampled from ``/proc``, beside the run process's 230-271
    MB). Linux only in practice (``os.fork``); Python 3.12 warns about forking a process with
    threads, which this one has (the variable-query worker): the child runs no other thread's
    code and takes none of their locks.

    A child that fails (the disk full, a value that cannot be pickled) is an ``OSError`` here
    with its exit status; its message went to stderr. A writer still running when the sort is
    abandoned (an error, a cancel) is killed and reaped."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.rows = 0

    def start(
        self,
        spool: IO[bytes],
        keys: list[str],
        columns: Columns,
        piece_rows: int,
        prepare: Prepare | None = None,
    ) -> None:
        self.wait()
        spool.flush()
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                gc.disable()
                for signum in (signal.SIGINT, signal.SIGTERM):  # a stop ends it at once
                    signal.signal(signum, signal.SIG_DFL)
                with open(spool.fileno(), "wb", closefd=False, buffering=1 << 20) as out:
                    _write_sorted_run(out, keys, columns, piece_rows, prepare)
                code = 0
            except BaseException as exc:  # noqa: BLE001 - reported by the exit status
                with contextlib.suppress(BaseException):
                    os.write(2, f"sorted run writer: {type(exc).__name__}: {exc}\n".encode())
            finally:
                os._exit(code)
        self.pid, self.rows = pid, len(keys)

    def wait(self) -> None:
        """Wait for the run being written (its failure is raised here)."""
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise OSError(
                f"writing a sorted run of {self.rows} rows to a temporary file failed in its "
                f"writer process (exit status {code}; its error is on stderr)"
            )

    def abandon(self) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = None


def phone_ordered_columns(
    batches: Iterator[Columns],
    phone_of: Callable[[Any], object],
    batch_size: int = SORTED_BATCH_ROWS,
    run_rows: int = SORT_RUN_ROWS,
    piece_rows: int = SPILL_PIECE_ROWS,
    forked_min_rows: int | None = FORKED_WRITER_MIN_ROWS,
    prepare: Prepare | None = None,
) -> Iterator[Columns]:
    """Batches of rows given as columns (equal-length lists: target rows, and each row's
    variable values) handed out again as such batches, the rows in phone order (``phone_of``
    gives the raw number from an item of the first column).

    Phone order (the normalized number; unusable ones last): the run's ``message_logs`` rows are
    bulk loaded, claimed and settled in this order, so the indexes on the phone and on the
    idempotency key (which ascends with the phone) receive each batch's entries at one place
    instead of at a random page per row (measured: the settle of 1,000,000 rows went from 78 s
    to 48 s). The sort is stable: among rows with the same phone the CRM's order is kept, so the
    first of them still wins the deduplication.

    Memory stays bounded: up to ``run_rows`` rows (fewer when wide) are sorted in memory and,
    when more rows follow, written to a temporary file as one sorted run, in pieces of
    ``piece_rows``; the runs are merged holding one piece of each and the last run, which stays
    in memory (``_merge_runs``). An audience that fits one run never touches the disk. A run of
    ``forked_min_rows`` or more is sorted and written by a forked process while the next one is
    read (``_RunWriter``; ``None``: always here, as where ``os.fork`` is missing). Columns,
    not a tuple per row: a tuple that holds a dict stays tracked by the garbage collector, and
    each full collection walked all of them (a 1,000,000-recipient sort rebuilds its 100,000-row
    run ten times); dicts of plain values are not tracked.

    ``prepare`` is per-row work done once per row on its way out: it takes a slice of sorted
    columns and gives the columns handed out instead (as many rows, in the same order; the
    engine renders each recipient's message there). A run written to disk is prepared by its
    writer, piece by piece before pickling, so a forked writer does that work on the idle CPU
    too; the run that stays in memory is prepared here, a piece (or a batch) at a time.
    """
    runs: list[_SortedRun] = []
    keys: list[str] = []  # the phones of the rows waiting to be sorted
    columns: list[list[Any]] = []
    limit = run_rows
    writer = _RunWriter()
    forking = forked_min_rows is not None and hasattr(os, "fork")

    def sorted_chunk() -> tuple[list[str], Columns]:
        return _sorted_by_key(keys, tuple(columns))

    def write_run() -> None:
        spool = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 - closed by the stack
        if forking and len(keys) >= (forked_min_rows or 0):
            writer.start(spool, keys, tuple(columns), piece_rows, prepare)
        else:
            _write_sorted_run(spool, keys, tuple(columns), piece_rows, prepare)
        runs.append(_SortedRun(spool, -(-len(keys) // piece_rows), len(columns)))
        keys.clear()
        for col in columns:
            col.clear()

    with contextlib.ExitStack() as stack:
        stack.callback(writer.abandon)
        for batch in batches:
            if not columns:
                columns = [[] for _ in batch]
            if len(keys) >= limit:  # a full run, and more rows come: it goes to disk
                write_run()
            if not runs and not keys and batch[0]:
                # wide rows sort in shorter runs
                width = len(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)) / len(batch[0])
                limit = max(batch_size, min(run_rows, int(SORT_RUN_BYTES / max(width, 1.0))))
            keys.extend([_phone_order(phone_of(item)) for item in batch[0]])
            for col, values in zip(columns, batch, strict=True):
                col.extend(values)
        ordered: Iterable[Columns]
        if runs:
            written = list(runs)
            if keys:  # the last run is merged from memory: writing it would only read it back
                runs.append(_SortedRun.held(*sorted_chunk(), piece_rows, prepare))
                keys.clear()
                columns.clear()
            writer.wait()  # (it wrote while the last run was read and sorted)
            for run in written:
                assert run.spool is not None
                run.spool.seek(0)
            ordered = _merge_runs(runs)
        else:
            chunk = sorted_chunk()[1] if keys else ()
            keys.clear()
            columns.clear()
            ordered = (
                _prepared(tuple(c[i : i + batch_size] for c in chunk), prepare)
                for i in range(0, len(chunk[0]) if chunk else 0, batch_size)
            )
        out: list[list[Any]] = []
        for block in ordered:
            if not out:
                out = [[] for _ in block]
            for col, values in zip(out, block, strict=True):
                col.extend(values)
            while len(out[0]) >= batch_size:
                yield tuple(col[:batch_size] for col in out)
                for col in out:
                    del col[:batch_size]
        if out and out[0]:
            yield tuple(out)


def first_per_phone(
    messages: Iterable[RenderedMessage], progress: RunProgress
) -> Iterator[RenderedMessage]:
    """The first message per normalized phone (later ones are counted in
    ``progress.duplicates_dropped``); messages without a usable phone all pass.

    ``messages`` come in phone order (``phone_ordered_columns``, whose key is the same
    ``normalize_phone`` that sets ``RenderedMessage.phone``), so equal phones are adjacent and
    comparing with the previous one is enough: no set of every phone of the audience (for
    1,000,000 recipients about 100 MB of the run process, filled and probed at random)."""
    last: str | None = None
    for msg in messages:
        if msg.phone is not None:
            if msg.phone == last:
                progress.duplicates_dropped += 1
                continue
            last = msg.phone
        yield msg


class _SortedRun:
    """One sorted run on disk, read a piece at a time: ``keys`` / ``columns`` from ``at`` on
    are the piece's rows not yet handed out. A ``held`` run is in memory whole (sorted, not yet
    prepared) and handed out a piece at a time too, each prepared when it is taken."""

    def __init__(self, spool: IO[bytes] | None, pieces: int, width: int):
        self.spool, self.pieces = spool, pieces
        self.keys: list[str] = []
        self.columns: Columns = tuple([] for _ in range(width))
        self.at = 0
        self._held: tuple[list[str], Columns] = ([], ())
        self._piece_rows = self._taken = 0
        self._prepare: Prepare | None = None

    @classmethod
    def held(
        cls, keys: list[str], columns: Columns, piece_rows: int, prepare: Prepare | None
    ) -> _SortedRun:
        run = cls(None, -(-len(keys) // piece_rows), len(columns))
        run._held, run._piece_rows, run._prepare = (keys, columns), piece_rows, prepare
        return run

    def refill(self) -> bool:
        """Take the next piece once this one is handed out; False: the run is done."""
        if self.at < len(self.keys):
            return True
        if not self.pieces:
            return False
        if self.spool is not None:
            self.keys, *columns = pickle.load(self.spool)  # noqa: S301 - our own file
            self.columns = tuple(columns)
        else:
            keys, held = self._held
            start, end = self._taken, self._taken + self._piece_rows
            self.keys = keys[start:end]
            self.columns = _prepared(tuple(c[start:end] for c in held), self._prepare)
            self._taken = end
        self.pieces -= 1
        self.at = 0
        return True


def _merge_runs(runs: list[_SortedRun]) -> Iterator[Columns]:
    """The rows of sorted ``runs`` (in CRM order: run 0 holds the first rows), merged stably a
    block at a time instead of one row at a time.

    Order is (phone, run, position). Each round, the run whose piece ends lowest in that order
    (the bound) hands out its whole piece, and every other run hands out what sorts before the
    bound: below its phone, or equal to it in an earlier run. No row still on disk can sort
    before that: a run's next piece starts at or after its current piece's end, which is at or
    after the bound. The handed-out slices are concatenated in run order and sorted by phone in
    C (stable: equal phones keep the run order); the bound run reads its next piece."""
    live = [run for run in runs if run.refill()]
    width = len(live[0].columns) if live else 0  # the prepared width
    while live:
        bound_no, bound = min(enumerate(live), key=lambda nr: nr[1].keys[-1])
        last = bound.keys[-1]
        keys: list[str] = []
        columns: Columns = tuple([] for _ in range(width))
        for no, run in enumerate(live):
            if no == bound_no:
                cut = len(run.keys)
            elif no < bound_no:
                cut = bisect.bisect_right(run.keys, last, run.at)
            else:
                cut = bisect.bisect_left(run.keys, last, run.at)
            keys += run.keys[run.at : cut]
            for col, values in zip(columns, run.columns, strict=True):
                col += values[run.at : cut]
            run.at = cut
        order = sorted(range(len(keys)), key=keys.__getitem__)
        yield tuple([col[i] for i in order] for col in columns)
        live = [run for run in live if run.refill()]


class RenderStream:
    """Targets streamed from MySQL and rendered batch by batch in phone order (in memory at
    once: one sorted run of up to ``SORT_RUN_ROWS`` rows, the rest waits on disk; duplicates are
    dropped by comparing neighbours, ``first_per_phone``): iterate ``messages()`` once; ``match``,
    ``invalid``, ``bad`` (the messages that failed validation, for quarantine) are filled as it
    goes."""

    def __init__(
        self,
        db: PostgresResource,
        mysql: MySQLResource,
        workflow: Mapping[str, Any],
        template: Template,
        plan: TargetPlan,
        now: datetime | None,
        progress: RunProgress,
        log: Callable[[str], None],
    ):
        self.db, self.mysql, self.workflow, self.template = db, mysql, workflow, template
        self.plan, self.progress, self.log = plan, progress, log
        self.now = now or datetime.now(UTC)
        self.match = plan.match
        self.lookup = QueryVariables(db, mysql)
        self.invalid = 0
        self.count = 0
        self.bad: list[RenderedMessage] = []

    def messages(self) -> Iterator[RenderedMessage]:
        """Each recipient's rendered message; the first message per phone wins."""
        plan, template, progress = self.plan, self.template, self.progress
        if self.match is not None:
            _warn_unmapped(progress, self.log, self.match.report)
        line = opt_out_line(self.db)
        sender = ad_sender(self.db) if template.category == "promotion" else ("", "")
        phone, name = plan.query.phone_column, plan.query.name_column

        def render(columns: Columns) -> Columns:
            # a pure function of the row and its values: a run written to disk is rendered by
            # its forked writer, on the CPU the reading leaves idle, and the merge hands out
            # messages; only the run kept in memory is rendered here. Measured (issue 13
            # benchmark, one machine): the 1,000,000-recipient load took 134.5-152.1 s over four
            # runs rendering everything here, 121.4-127.3 s over seven runs this way (141.2 s once
            # the machine had slowed); the 100,000 one never writes a run
            rows, values_of_rows = columns
            return (
                [
                    render_message(
                        template,
                        row,
                        values,
                        phone_column=phone,
                        name_column=name,
                        opt_out_line=line,
                        sender=sender,
                    )
                    for row, values in zip(rows, values_of_rows, strict=True)
                ],
            )

        rendered = (
            msg
            for (messages,) in phone_ordered_columns(
                self._resolved(),
                lambda row: row.get(phone),
                batch_size=SORTED_BATCH_ROWS,  # (read now: the tests shorten them)
                run_rows=SORT_RUN_ROWS,
                forked_min_rows=FORKED_WRITER_MIN_ROWS,
                prepare=render,
            )
            for msg in messages
        )
        for msg in first_per_phone(rendered, progress):
            if not msg.ok:
                self.invalid += 1
                self.bad.append(msg)
            self.count += 1
            yield msg
        if self.match is None:
            self.match = match_variables(self.db, template, self.workflow, [], plan.display)

    def _resolved(self) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        """Each batch of target rows with their variables' values (two columns), in the CRM's
        order: the query variables are looked up batch by batch in that order (one SELECT per
        variable and batch), where the CRM's own keys cluster; the rows are put in phone order
        afterwards. The next batch's SELECTs run in a worker thread while this one is resolved
        (MySQL works while Python does: 200 batches of a 1,000,000-recipient run spent about
        20 s waiting on them)."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="query-variables") as worker:
            ahead: tuple[list[dict[str, Any]], Future[Prefetched]] | None = None
            for batch in spooled(iter_targets(self.mysql, self.plan.query)):
                if self.match is None:  # an SQL target: match on the columns it returns
                    self.match = match_variables(
                        self.db, self.template, self.workflow, list(batch[0]), self.plan.display
                    )
                    _warn_unmapped(self.progress, self.log, self.match.report)
                fetching = worker.submit(self.lookup.fetch, self.match.report, batch)
                if ahead is not None:
                    yield self._resolve(*ahead)
                ahead = (batch, fetching)
            if ahead is not None:
                yield self._resolve(*ahead)

    def _resolve(
        self, batch: list[dict[str, Any]], fetched: Future[Prefetched]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        assert self.match is not None
        report = self.match.report
        self.lookup.install(fetched.result())  # its SELECTs' errors are raised here
        self.progress.rows_read += len(batch)
        return batch, [resolve_values(report, row, self.now, self.lookup) for row in batch]


def render_targets(
    db: PostgresResource,
    mysql: MySQLResource,
    workflow: Mapping[str, Any],
    template: Template,
    plan: TargetPlan,
    now: datetime | None,
    progress: RunProgress,
    log: Callable[[str], None],
) -> RenderResult:
    """Every recipient's rendered message in memory (previews, benchmarks; the engine streams
    with ``RenderStream``)."""
    stream = RenderStream(db, mysql, workflow, template, plan, now, progress, log)
    out = list(stream.messages())
    assert stream.match is not None
    return RenderResult(out, stream.match, stream.lookup)
