"""``make chaos`` / ``python -m tooling.chaos``: every sync path killed at random, then verified.

Each path runs its real command line against private databases, is SIGKILLed ``--kills`` times
(``CHAOS_KILLS``, default 50) at random moments while faults are injected (connections cut by a
TCP proxy in front of the databases; 429 storms, 5xx and timeouts at the stand-ins), then runs
once untouched; the harness then compares target and source from the outside and prints one
row per path. Exit status 1 on any loss, duplicate, difference or unnamed quarantine.
"""

from __future__ import annotations

import importlib
import os
import time
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from resources.environment import apply_local_defaults
from tooling.chaos.core import ChaosContext, PathResult

# path name -> module in tooling.chaos with run(ctx, log_dir) -> PathResult
PATHS = {
    "gfx-batch": "gfx_batch",
    "consultation-backup": "consultation",
    "gfx-cdc": "gfx_cdc",
    "gfx-debezium": "gfx_debezium",
    "messaging": "messaging",
}

app = typer.Typer(add_completion=False, help=__doc__)
console = Console()


def render(results: list[PathResult], kills: int, seed: int) -> str:
    lines = [
        f"chaos run: seed {seed}, {kills} kills per path,"
        f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "| path | kills | faults | compared | lost | duplicated | differing"
        " | quarantined (named) | wall s | verdict |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r.path} | {r.kills} | {r.faults} | {r.compared} | {r.lost} | {r.duplicated}"
            f" | {r.differing} | {r.quarantined} ({r.quarantined - r.unnamed_quarantine})"
            f" | {r.wall_s:.0f} | {'ok' if r.ok else 'FAIL'} |"
        )
    return "\n".join(lines)


@app.command()
def main(
    kills: Annotated[int, typer.Option(help="kills per path")] = int(
        os.environ.get("CHAOS_KILLS", "50")
    ),
    only: Annotated[list[str] | None, typer.Option(help="only these paths (repeatable)")] = None,
    seed: Annotated[int, typer.Option(help="random seed (replay a failing run)")] = int(
        os.environ.get("CHAOS_SEED", "0")
    )
    or int(time.time()),
    out: Annotated[Path, typer.Option(help="where the table is written")] = Path(
        "benchmarks/results/chaos.md"
    ),
) -> None:
    apply_local_defaults(os.environ)
    names = only or list(PATHS)
    unknown = sorted(set(names) - set(PATHS))
    if unknown:
        raise typer.BadParameter(f"unknown paths {unknown}; known: {sorted(PATHS)}")
    results: list[PathResult] = []
    log_dir = Path(os.environ.get("DAGSTER_HOME", ".dagster_home")) / "chaos"
    log_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        ctx = ChaosContext(seed=seed, kills=kills, log=console.print)
        console.print(f"[bold]{name}[/bold]: {kills} kills (seed {seed}, logs in {log_dir})")
        ctx.create()
        try:
            module = importlib.import_module(f"tooling.chaos.{PATHS[name]}")
            result = module.run(ctx, log_dir)
        except Exception as exc:  # a path that cannot finish is a failure, not a crash
            result = PathResult(name, notes=[f"{type(exc).__name__}: {exc}"])
            console.print(traceback.format_exc())
        finally:
            ctx.drop()
        results.append(result)
        for note in result.notes:
            console.print(f"  {name}: {note}")
    table = Table(
        "path", "kills", "faults", "compared", "lost", "dup", "diff", "quarantined", "s", ""
    )
    for r in results:
        table.add_row(
            r.path,
            str(r.kills),
            str(r.faults),
            str(r.compared),
            str(r.lost),
            str(r.duplicated),
            str(r.differing),
            str(r.quarantined),
            f"{r.wall_s:.0f}",
            "ok" if r.ok else "[red]FAIL[/red]",
        )
    console.print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(results, kills, seed) + "\n")
    if not all(r.ok for r in results):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
