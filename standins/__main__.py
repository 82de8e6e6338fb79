"""``python -m standins``: serve every local stand-in on its contract port until stopped.

Each stand-in module in this package exposes ``create_app(seed: int, scale: str) -> ASGI app``
(the app already wrapped by ``with_faults``). The demo runs this in the background.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from standins.base import EmulatorServer
from resources.environment import EMULATOR_PORTS

# contract port name -> module in standins
STAND_INS = {
    "supabase": "supabase_storage",
    "notion": "notion",
    "google_drive": "google_drive",
    "solapi": "solapi",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m standins", description=__doc__)
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument(
        "--scale", default="demo", help="demo data size for stand-ins that seed themselves"
    )
    parser.add_argument("--only", nargs="*", help="serve only these stand-ins")
    args = parser.parse_args(argv)
    servers = []
    for port_name, module in STAND_INS.items():
        if args.only and port_name not in args.only:
            continue
        try:
            mod = importlib.import_module(f"standins.{module}")
        except ModuleNotFoundError as exc:
            if exc.name == f"standins.{module}":
                print(f"[emulators] {port_name}: no stand-in module yet, skipped", flush=True)
                continue
            raise
        server = EmulatorServer(
            mod.create_app(seed=args.seed, scale=args.scale), EMULATOR_PORTS[port_name], port_name
        )
        server.start()
        servers.append(server)
        print(f"[emulators] {port_name} listening on {server.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for server in servers:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
