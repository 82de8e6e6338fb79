"""``python -m gfx_sync.cdc <command>``: the CDC stream from the command line.

Commands:
    init [--resnapshot]   create publication + slot and copy the tables (idempotent)
    worker                stream continuously (sub-second lag); reports materializations to the
                          Dagster instance at $DAGSTER_HOME unless --no-report
    drain                 apply what the slot holds once (what the sensor's run does)
    status                slot lag / retention / applied position as JSON
    teardown              drop the slot (and with --drop-publication the publication) and the position
    debezium FILE|-       apply Debezium change-event envelopes (JSON lines) through the same applier
    kafka                 consume Debezium envelopes from Kafka topics (needs kafka-python)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from resources.environment import apply_local_defaults


def _config(args):
    from gfx_sync.cdc.config import config_for

    tables = tuple(t for t in (args.tables or "").split(",") if t) or None
    return config_for(
        os.environ["GFX_SOURCE_DB_URL"],
        tables=tables,
        slot_name=args.slot,
        publication=args.publication,
        drift_policy=args.drift_policy,
    )


def _emitter(args):
    if args.no_report or not os.environ.get("DAGSTER_HOME"):
        return None
    import dagster as dg

    instance = dg.DagsterInstance.get()
    return instance.report_runless_asset_event


def main(argv=None) -> int:
    apply_local_defaults()
    parser = argparse.ArgumentParser(
        prog="python -m gfx_sync.cdc",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command", choices=["init", "worker", "drain", "status", "teardown", "debezium", "kafka"]
    )
    parser.add_argument(
        "file", nargs="?", help="debezium: JSON-lines file of envelopes ('-' = stdin)"
    )
    parser.add_argument(
        "--tables", help="comma-separated table names (default: the spec list's cdc tables)"
    )
    parser.add_argument(
        "--slot", help="slot name (default gfx_cdc_<source database> or $GFX_CDC_SLOT_NAME)"
    )
    parser.add_argument("--publication")
    parser.add_argument("--drift-policy", choices=["stop", "apply"])
    parser.add_argument("--resnapshot", action="store_true")
    parser.add_argument("--drop-publication", action="store_true")
    parser.add_argument(
        "--no-report", action="store_true", help="worker: do not report to the Dagster instance"
    )
    parser.add_argument("--report-interval", type=float, default=5.0)
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=0,
        help="worker: stop after this many seconds (0 = never)",
    )
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("GFX_CDC_KAFKA_BOOTSTRAP", "localhost:9092")
    )
    parser.add_argument("--topic-prefix", default="gfx.")
    parser.add_argument(
        "--topics",
        help="kafka: comma-separated topics (default <prefix><table> per table; "
        "the README's connector routes all four into gfx.cdc)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    source, target = os.environ["GFX_SOURCE_DB_URL"], os.environ["SUPABASE_DB_URL"]
    config = _config(args)

    if args.command == "init":
        from gfx_sync.cdc.snapshot import initialize

        r = initialize(source, target, config, resnapshot=args.resnapshot)
        print(
            json.dumps(
                {
                    "created": r.created,
                    "slot": r.slot_name,
                    "consistent_point": r.consistent_point,
                    "rows": r.rows,
                    "seconds": r.seconds,
                    "message": r.message,
                },
                ensure_ascii=False,
            )
        )
        return 0
    if args.command == "teardown":
        from gfx_sync.cdc.snapshot import teardown

        print(
            json.dumps(
                {
                    "dropped": teardown(
                        source, target, config, drop_publication=args.drop_publication
                    )
                }
            )
        )
        return 0
    if args.command == "status":
        import psycopg

        from gfx_sync.cdc.health import Thresholds, evaluate, slot_health

        with psycopg.connect(source) as src, psycopg.connect(target) as tgt:
            h = slot_health(src, tgt, config.slot_name)
        print(
            json.dumps(
                {**h.metadata(), "verdicts": [v.__dict__ for v in evaluate(h, Thresholds())]},
                default=str,
                ensure_ascii=False,
            )
        )
        return 0
    if args.command == "drain":
        from gfx_sync.cdc.applier import Applier
        from gfx_sync.cdc.runner import drain_via_sql, materializations
        from gfx_sync.cdc.snapshot import initialize

        initialize(source, target, config)
        with Applier(target, config) as applier:
            result = drain_via_sql(source, applier, config)
        emit = _emitter(args)
        if emit:
            for ev in materializations(result, config.slot_name):
                emit(ev)
        print(
            json.dumps(
                {
                    "transactions": result.transactions,
                    "changes": result.changes,
                    "skipped": result.skipped_transactions,
                }
            )
        )
        return 0
    if args.command == "worker":
        return _worker(source, target, config, args)
    if args.command in ("debezium", "kafka"):
        from gfx_sync.cdc.applier import Applier
        from gfx_sync.cdc.debezium import apply_envelopes, iter_file, iter_kafka

        topics = (
            args.topics.split(",")
            if args.topics
            else [f"{args.topic_prefix}{t.name}" for t in config.tables]
        )
        events = (
            iter_file(args.file or "-")
            if args.command == "debezium"
            else iter_kafka(args.bootstrap_servers, topics)
        )
        with Applier(target, config) as applier:
            result = apply_envelopes(applier, config, events)
        print(
            json.dumps(
                {
                    "transactions": result.transactions,
                    "changes": result.changes,
                    "skipped": result.skipped_transactions,
                }
            )
        )
        return 0
    return 2


def _worker(source: str, target: str, config, args) -> int:
    import psycopg
    import psycopg2

    from gfx_sync.cdc.applier import Applier
    from gfx_sync.cdc.errors import SchemaDriftError, SlotBusy
    from gfx_sync.cdc.runner import Worker
    from gfx_sync.cdc.snapshot import initialize
    from resources.errors import ServiceUnavailable

    log = logging.getLogger("gfx_sync.cdc")
    deadline = time.monotonic() + args.max_seconds if args.max_seconds else None
    worker = Worker(
        source, target, config, emit=_emitter(args), report_interval_s=args.report_interval
    )
    worker.install_signal_handlers()
    delay = 0.2
    while not worker.stop_event.is_set():
        try:
            # idempotent: a restart after a crash finds slot + position and only checks them
            initialize(source, target, config)
            worker.run(until=(lambda _s: time.monotonic() > deadline) if deadline else None)
            break
        except SchemaDriftError as exc:
            # policy 'stop': record why, exit non-zero; restarting would only stop again
            with Applier(target, config) as applier:
                applier.record_stop(str(exc))
            log.error("%s", exc)
            return 3
        except (
            SlotBusy,
            psycopg.OperationalError,
            psycopg2.OperationalError,
            psycopg2.InterfaceError,
            ServiceUnavailable,
        ) as exc:
            # slot busy: the previous worker's walsender may not have noticed its client died yet;
            # connection errors: a source/target restart. Nothing is lost: the position is on the target.
            log.warning(
                "%s, retrying in %.1fs: %s", type(exc).__name__, delay, str(exc).strip()[:300]
            )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            if deadline and time.monotonic() > deadline:
                break
    print(json.dumps(worker.stats.__dict__), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
