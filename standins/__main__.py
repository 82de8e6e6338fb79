"""``python -m standins``: serve every local stand-in on its contract port until stopped.

Each stand-in subpackage exposes ``create_app(seed: int, scale: str) -> ASGI app`` (the app
already wrapped by ``with_faults``). ``make standins`` runs this in the background.
"""

from __future__ import annotations

import importlib
import signal
import threading
from typing import Annotated

import typer

from resources.environment import EMULATOR_PORTS
from standins.base import EmulatorServer

# contract port name -> subpackage of standins
STAND_INS = {
    "supabase": "supabase_storage",
    "notion": "notion",
    "google_drive": "google_drive",
    "solapi": "solapi",
    "slack": "slack",
}
DEFAULT_SEED = 20261121

app = typer.Typer(add_completion=False, help=__doc__)


def start_all(seed: int, scale: str, only: set[str] | None = None) -> list[EmulatorServer]:
    """Start the stand-ins (all, or those named in ``only``) and return their servers."""
    servers = []
    for port_name, module in STAND_INS.items():
        if only and port_name not in only:
            continue
        mod = importlib.import_module(f"standins.{module}")
        server = EmulatorServer(
            mod.create_app(seed=seed, scale=scale), EMULATOR_PORTS[port_name], port_name
        )
        server.start()
        servers.append(server)
        print(f"[standins] {port_name} listening on {server.url}", flush=True)
    return servers


@app.command()
def serve(
    seed: Annotated[int, typer.Option(help="seed of the demo data")] = DEFAULT_SEED,
    scale: Annotated[
        str, typer.Option(help="demo data size for stand-ins that seed themselves")
    ] = "demo",
    only: Annotated[
        list[str] | None,
        typer.Option(help=f"serve only this stand-in (repeatable; one of {', '.join(STAND_INS)})"),
    ] = None,
) -> None:
    """Serve the stand-ins until SIGTERM or SIGINT."""
    unknown = set(only or ()) - set(STAND_INS)
    if unknown:
        raise typer.BadParameter(
            f"unknown stand-ins: {', '.join(sorted(unknown))}", param_hint="--only"
        )
    servers = start_all(seed, scale, set(only) if only else None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for server in servers:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the command line (``argv`` defaults to ``sys.argv[1:]``)."""
    app(args=argv, prog_name="python -m standins")


if __name__ == "__main__":
    main()
