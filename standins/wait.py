"""``python -m standins.wait``: block until every local stand-in answers its health check."""

from __future__ import annotations

import sys
import time

import httpx

from resources.environment import EMULATOR_PORTS


def wait_for(ports: dict[str, int], timeout_s: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    pending = dict(ports)
    while pending and time.monotonic() < deadline:
        for name, port in list(pending.items()):
            try:
                if (
                    httpx.get(f"http://127.0.0.1:{port}/_emulator/health", timeout=1).status_code
                    == 200
                ):
                    pending.pop(name)
            except httpx.HTTPError:
                pass
        if pending:
            time.sleep(0.2)
    return sorted(pending)


if __name__ == "__main__":
    from standins.__main__ import STAND_INS
    import importlib.util

    wanted = {
        n: p
        for n, p in EMULATOR_PORTS.items()
        if importlib.util.find_spec(f"standins.{STAND_INS[n]}") is not None
    }
    missing = wait_for(wanted)
    if missing:
        print(
            f"stand-ins not answering: {', '.join(missing)} (see $DAGSTER_HOME/emulators.log)",
            file=sys.stderr,
        )
        sys.exit(1)
    print(f"stand-ins up: {', '.join(sorted(wanted)) or 'none'}")
