"""``python -m standins.wait``: block until every local stand-in answers its health check."""

from __future__ import annotations

import time
from typing import Annotated

import httpx
import typer

from resources.environment import EMULATOR_PORTS
from standins.base import ADMIN_PREFIX

app = typer.Typer(add_completion=False, help=__doc__)


def _healthy(port: int) -> bool:
    try:
        url = f"http://127.0.0.1:{port}{ADMIN_PREFIX}/health"
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(ports: dict[str, int], timeout_s: float = 30.0) -> list[str]:
    """Poll each stand-in's health endpoint; return the names still not answering at timeout."""
    deadline = time.monotonic() + timeout_s
    pending = dict(ports)
    while pending and time.monotonic() < deadline:
        for name, port in list(pending.items()):
            if _healthy(port):
                pending.pop(name)
        if pending:
            time.sleep(0.2)
    return sorted(pending)


@app.command()
def wait(
    timeout: Annotated[float, typer.Option(help="seconds to wait before giving up")] = 30.0,
) -> None:
    """Exit 0 once every stand-in answers, 1 if some still do not after ``--timeout``."""
    missing = wait_for(EMULATOR_PORTS, timeout)
    if missing:
        typer.echo(
            f"stand-ins not answering: {', '.join(missing)} (see $DAGSTER_HOME/standins.log)",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"stand-ins up: {', '.join(sorted(EMULATOR_PORTS))}")


def main(argv: list[str] | None = None) -> None:
    """Run the command line (``argv`` defaults to ``sys.argv[1:]``)."""
    app(args=argv, prog_name="python -m standins.wait")


if __name__ == "__main__":
    main()
