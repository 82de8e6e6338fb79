"""``python -m gfx_sync.cdc <command>``: the CDC stream from the command line.

Commands:
    init [--resnapshot]   create publication + slot and copy the tables (idempotent)
    resnapshot --tables   re-copy some tables online (after a restored target: all of them)
    worker                stream continuously (sub-second lag); reports materializations to the
                          Dagster instance at $DAGSTER_HOME unless --no-report
    drain                 apply what the slot holds once (what the sensor's run does)
    status                slot lag / retention / applied position as JSON
    teardown              drop the slot (and with --drop-publication the publication) and the
                          position
    debezium FILE|-       apply Debezium change-event envelopes (JSON lines) through the same
                          applier
    kafka                 consume Debezium envelopes from Kafka topics (needs kafka-python)

Every command takes --tables, --slot, --publication and --drift-policy. The databases are the
shared resource instances (``resources.shared``), resolved after the local defaults.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any

import click
import typer

from gfx_sync.cdc.models import CdcConfig
from gfx_sync.entrypoint import run

app = typer.Typer(
    name="python -m gfx_sync.cdc",
    help="The gfx CDC stream: init, resnapshot, worker, drain, status, teardown, debezium, kafka.",
    no_args_is_help=True,
    add_completion=False,
)

Tables = Annotated[
    str | None,
    typer.Option(help="comma-separated table names (default: the spec list's cdc tables)"),
]
Slot = Annotated[
    str | None,
    typer.Option(help="slot name (default gfx_cdc_<source database> or $GFX_CDC_SLOT_NAME)"),
]
Publication = Annotated[str | None, typer.Option()]
DriftPolicy = Annotated[str | None, typer.Option(click_type=click.Choice(["stop", "apply"]))]


def _dsns() -> tuple[str, str]:
    """(source, target) connection strings of the shared instances, resolved."""
    from resources.shared import gfx_source_db, supabase_db

    return (
        gfx_source_db.process_config_and_initialize().dsn,
        supabase_db.process_config_and_initialize().dsn,
    )


def _config(
    source: str,
    tables: str | None,
    slot: str | None,
    publication: str | None,
    drift_policy: str | None,
) -> CdcConfig:
    from gfx_sync.cdc.config import config_for

    names = tuple(t for t in (tables or "").split(",") if t) or None
    return config_for(
        source, tables=names, slot_name=slot, publication=publication, drift_policy=drift_policy
    )


def _setup(
    tables: str | None, slot: str | None, publication: str | None, drift_policy: str | None
) -> tuple[str, str, CdcConfig]:
    """Every command's start: the two connection strings and the stream's configuration."""
    source, target = _dsns()
    return source, target, _config(source, tables, slot, publication, drift_policy)


def _emitter(no_report: bool) -> Callable[[Any], None] | None:
    if no_report or not os.environ.get("DAGSTER_HOME"):
        return None
    import dagster as dg

    instance = dg.DagsterInstance.get()
    return instance.report_runless_asset_event


def _print_counts(result: Any) -> None:
    print(
        json.dumps(
            {
                "transactions": result.transactions,
                "changes": result.changes,
                "skipped": result.skipped_transactions,
            }
        )
    )


@app.command("init")
def init(
    tables: Tables = None,
    slot: Slot = None,
    publication: Publication = None,
    drift_policy: DriftPolicy = None,
    resnapshot: bool = typer.Option(False, "--resnapshot"),
) -> int:
    """Create publication + slot and copy the tables (idempotent)."""
    from gfx_sync.cdc.snapshot import initialize

    source, target, config = _setup(tables, slot, publication, drift_policy)
    r = initialize(source, target, config, resnapshot=resnapshot)
    summary = {
        "created": r.created,
        "slot": r.slot_name,
        "consistent_point": r.consistent_point,
        "rows": r.rows,
        "seconds": r.seconds,
        "message": r.message,
    }
    print(json.dumps(summary, ensure_ascii=False))
    return 0


@app.command("teardown")
def teardown_cmd(
    tables: Tables = None,
    slot: Slot = None,
    publication: Publication = None,
    drift_policy: DriftPolicy = None,
    drop_publication: bool = typer.Option(False, "--drop-publication"),
) -> int:
    """Drop the slot (and with --drop-publication the publication) and the position."""
    from gfx_sync.cdc.snapshot import teardown

    source, target, config = _setup(tables, slot, publication, drift_policy)
    dropped = teardown(source, target, config, drop_publication=drop_publication)
    print(json.dumps({"dropped": dropped}))
    return 0


@app.command("status")
def status(
    tables: Tables = None,
    slot: Slot = None,
    publication: Publication = None,
    drift_policy: DriftPolicy = None,
) -> int:
    """Slot lag / retention / applied position as JSON."""
    import psycopg

    from gfx_sync.cdc.health import Thresholds, evaluate, slot_health

    source, target, config = _setup(tables, slot, publication, drift_policy)
    with psycopg.connect(source) as src, psycopg.connect(target) as tgt:
        h = slot_health(src, tgt, config.slot_name)
    verdicts = [v.__dict__ for v in evaluate(h, Thresholds())]
    print(json.dumps({**h.metadata(), "verdicts": verdicts}, default=str, ensure_ascii=False))
    return 0


@app.command("drain")
def drain(
    tables: Tables = None,
    slot: Slot = None,
    publication: Publication = None,
    drift_policy: DriftPolicy = None,
    no_report: bool = typer.Option(
        False, "--no-report", help="do not report to the Dagster instance"
    ),
) -> int:
    """Apply what the slot holds once (what the sensor's run does)."""
    from gfx_sync.cdc.applier import Applier
    from gfx_sync.cdc.runner import drain_via_sql, materializations
    from gfx_sync.cdc.snapshot import initialize

    source, target, config = _setup(tables, slot, publication, drift_policy)
    initialize(source, target, config)
    with Applier(target, config) as applier:
        result = drain_via_sql(source, applier, config)
    emit = _emitter(no_report)
    if emit:
        for ev in materializations(result, config.slot_name):
            emit(ev)
    _print_counts(result)
    return 0


@app.command("worker")
def worker(
    tables: Tables = None,
    slot: Slot = None,
    publication: Publication = None,
    drift_policy: DriftPolicy = None,
    no_report: bool = typer.Option(
        False, "--no-report", help="do not report to the Dagster instance"
    ),
    report_interval: float = typer.Option(5.0, "--report-interval"),
    max_seconds: float = typer.Option(
        0, "--max-seconds", help="stop after this many seconds (0 = never)"
    ),
    copy_min_rows: int | None = typer.Option(
        None,
        "--copy-min-rows",
        help="merge runs of at least this many whole-row upserts by COPY into a staging table"
        " (0 = off; default: the configuration's)",
    ),
) -> int:
    """Stream continuously (sub-second lag); reports materializations to the Dagster instance
    at $DAGSTER_HOME unless --no-report. Refuses (exit 4) when GFX_CDC_RUNNER=debezium."""
    from gfx_sync.cdc.debezium_engine import RUNNER_ENV, selected_runner

    runner = selected_runner()
    if runner != "pgoutput":
        # one runner per target, as the Debezium engine refuses when pgoutput is selected
        print(
            f"{RUNNER_ENV} is {runner!r}: this target streams through the Debezium engine"
            f" (python -m gfx_sync.cdc.debezium_engine run); set {RUNNER_ENV}=pgoutput to run"
            " the pgoutput worker instead",
            file=sys.stderr,
        )
        return 4
    source, target, config = _setup(tables, slot, publication, drift_policy)
    if copy_min_rows is not None:
        config = dataclasses.replace(config, copy_min_rows=max(0, copy_min_rows))
    return _worker(source, target, config, _emitter(no_report), report_interval, max_seconds)


@app.command("resnapshot")
def resnapshot(
    tables: Tables = None,
    slot: Slot = None,
    publication: Publication = None,
    drift_policy: DriftPolicy = None,
) -> int:
    """Re-copy the given tables online (the slot, its position and the other tables' stream stay);
    after a restored target, name every table."""
    from gfx_sync.cdc.snapshot import resnapshot_tables

    source, target, config = _setup(None, slot, publication, drift_policy)
    names = [t for t in (tables or "").split(",") if t] or [t.name for t in config.tables]
    result = resnapshot_tables(source, target, config, names)
    print(
        json.dumps(
            {
                "message": result.message,
                "rows": result.rows,
                "quarantined": result.quarantined,
                "snapshot_lsn": result.consistent_point,
            },
            ensure_ascii=False,
        )
    )
    return 0


@app.command("debezium")
def debezium(
    file: str = typer.Argument("-", help="JSON-lines file of envelopes ('-' = stdin)"),
    tables: Tables = None,
    slot: Slot = None,
    publication: Publication = None,
    drift_policy: DriftPolicy = None,
) -> int:
    """Apply Debezium change-event envelopes (JSON lines) through the same applier."""
    from gfx_sync.cdc.debezium import iter_file

    source, target, config = _setup(tables, slot, publication, drift_policy)
    return _apply_envelopes(target, config, iter_file(file))


@app.command("kafka")
def kafka(
    tables: Tables = None,
    slot: Slot = None,
    publication: Publication = None,
    drift_policy: DriftPolicy = None,
    bootstrap_servers: str = typer.Option(
        "localhost:9092", "--bootstrap-servers", envvar="GFX_CDC_KAFKA_BOOTSTRAP"
    ),
    topic_prefix: str = typer.Option("gfx.", "--topic-prefix"),
    topics: str | None = typer.Option(
        None,
        help="comma-separated topics (default <prefix><table> per table; "
        "the README's connector routes all four into gfx.cdc)",
    ),
) -> int:
    """Consume Debezium envelopes from Kafka topics (needs kafka-python)."""
    from gfx_sync.cdc.debezium import iter_kafka

    source, target, config = _setup(tables, slot, publication, drift_policy)
    names = topics.split(",") if topics else [f"{topic_prefix}{t.name}" for t in config.tables]
    return _apply_envelopes(target, config, iter_kafka(bootstrap_servers, names))


def _apply_envelopes(target: str, config: CdcConfig, events: Any) -> int:
    from gfx_sync.cdc.applier import Applier
    from gfx_sync.cdc.debezium import apply_envelopes

    with Applier(target, config) as applier:
        result = apply_envelopes(applier, config, events)
    _print_counts(result)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code (2 for bad arguments)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return run(app, argv, "python -m gfx_sync.cdc")


def _worker(
    source: str,
    target: str,
    config: CdcConfig,
    emit: Callable[[Any], None] | None,
    report_interval: float,
    max_seconds: float,
) -> int:
    import psycopg
    import psycopg2

    from gfx_sync.cdc.applier import Applier
    from gfx_sync.cdc.errors import SchemaDriftError, SlotBusy, TargetBehindSlot
    from gfx_sync.cdc.runner import Worker
    from gfx_sync.cdc.snapshot import initialize
    from resources.errors import ServiceUnavailable

    log = logging.getLogger("gfx_sync.cdc")
    deadline = time.monotonic() + max_seconds if max_seconds else None
    stream = Worker(source, target, config, emit=emit, report_interval_s=report_interval)
    stream.install_signal_handlers()
    # Everything imported so far (Dagster among it, for the shared resources) lives as long as
    # the process: moving it out of the collector's reach keeps each full collection during a
    # high-rate drain from walking some hundred thousand start-up objects again.
    gc.freeze()
    delay = 0.2
    while not stream.stop_event.is_set():
        try:
            # idempotent: a restart after a crash finds slot + position and only checks them
            initialize(source, target, config)
            stream.run(until=(lambda _s: time.monotonic() > deadline) if deadline else None)
            break
        except SchemaDriftError as exc:
            # policy 'stop': record why, exit non-zero; restarting would only stop again
            with Applier(target, config) as applier:
                applier.record_stop(str(exc))
            log.error("%s", exc)
            return 3
        except TargetBehindSlot as exc:
            # a restored target: restarting cannot help, a resnapshot does (the error says which)
            with Applier(target, config) as applier:
                applier.record_stop(str(exc))
            log.error("%s", exc)
            return 4
        except (
            SlotBusy,
            psycopg.OperationalError,
            psycopg2.OperationalError,
            psycopg2.InterfaceError,
            ServiceUnavailable,
        ) as exc:
            # slot busy: the previous worker's walsender may not have noticed its client died yet;
            # connection errors: a source/target restart. Nothing is lost: the position is on
            # the target.
            log.warning(
                "%s, retrying in %.1fs: %s", type(exc).__name__, delay, str(exc).strip()[:300]
            )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            if deadline and time.monotonic() > deadline:
                break
    print(json.dumps(stream.stats.__dict__), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
