"""`make serve` (the end of `make demo`) stops everything on Ctrl-C and on SIGTERM to make.

Before the supervisor, SIGINT and SIGTERM left `dg dev`, its code servers and the daemon
running. Here the real `make serve` serves the real workspace; the test collects every process
below make once the UI answers, signals, and requires all of them gone.
"""

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tooling.supervisor import _alive, descendants

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ours(home: str) -> dict[int, bytes]:
    """Every live process whose environment carries this test's DAGSTER_HOME (all descend
    from make; a process started after any snapshot of the tree is still found)."""
    needle = f"DAGSTER_HOME={home}".encode() + b"\0"
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle in (proc / "environ").read_bytes() + b"\0" and _alive(int(proc.name)):
                found[int(proc.name)] = (proc / "cmdline").read_bytes()[:120]
        except OSError:
            continue
    return found


def _serving(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _terminal_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def _kill_leftovers(make: subprocess.Popen, home: str) -> None:
    """A failed attempt (the UI too slow to answer on a loaded machine, a process that did not
    stop) must not leave a whole ``dg dev`` stack running to slow every later test down."""
    pids = (
        {make.pid, *descendants(make.pid), *_ours(home)}
        if make.poll() is None
        else set(_ours(home))
    )
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if make.poll() is None:
        make.wait(timeout=30)


@pytest.mark.parametrize(
    "how",
    ["sigterm_to_make", "sigint_to_make", "ctrl_c"],
    ids=["SIGTERM to make", "SIGINT to make alone", "Ctrl-C (SIGINT to the group)"],
)
def test_make_serve_stops_every_process(test_databases, tmp_path, how):
    port = _free_port()
    home = str(tmp_path / "home")
    env = {
        **os.environ,
        "DAGSTER_HOME": home,
        "PORT": str(port),
        "MESSAGING_WEBHOOK_PORT": str(_free_port()),
        "NOTION_WEBHOOK_PORT": str(_free_port()),
        "UP_ARGS": "--no-cdc-worker",
    }
    make = subprocess.Popen(
        ["make", "--no-print-directory", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group, as a terminal's foreground job
        # a terminal's job gets the default signal handling; a test run started in the
        # background of a non-interactive shell (CI) inherits SIGINT and SIGQUIT ignored, and
        # make would then never see the Ctrl-C this test sends it
        preexec_fn=_terminal_signals,
    )
    try:
        deadline = time.monotonic() + 240
        while not _serving(port):
            assert make.poll() is None, "make serve ended before the UI answered"
            assert time.monotonic() < deadline, "the UI did not answer within 240 s"
            time.sleep(1)
        time.sleep(3)  # let the daemon and code servers settle
        tree = descendants(make.pid)
        assert len(tree) >= 4, f"expected make, the supervisor, dg dev and its children: {tree}"
        if how == "ctrl_c":
            os.killpg(make.pid, signal.SIGINT)
        else:
            os.kill(make.pid, signal.SIGINT if how == "sigint_to_make" else signal.SIGTERM)
        make.wait(timeout=120)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (any(_alive(p) for p in tree) or _ours(home)):
            time.sleep(0.5)
        left = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:120] for p in tree if _alive(p)}
        assert not left, f"still running after {how}: {left}"
        assert not _ours(home), f"started later, still running after {how}: {_ours(home)}"
        assert not _serving(port)
    finally:
        _kill_leftovers(make, home)
