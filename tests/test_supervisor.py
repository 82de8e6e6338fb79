"""`platform up`'s supervisor: everything it started stops on Ctrl-C, SIGTERM or parent death.

The processes here are small shell trees built to escape the usual ways: a grandchild in its
own session (setsid), a double fork, a process that ignores SIGTERM.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from tooling.supervisor import _alive

pytestmark = pytest.mark.e2e

TREE = textwrap.dedent(
    """\
    echo $$ >> {pids}
    setsid bash -c 'echo $$ >> {pids}; exec sleep 300' &
    ( bash -c 'echo $$ >> {pids}; trap "" TERM; while true; do sleep 0.2; done' & ) &
    sleep 300 &
    echo $! >> {pids}
    wait
    """
)


def _script(tmp_path: Path, *, heartbeat_url: str | None = None, flaky: bool = False) -> Path:
    pids = tmp_path / "pids"
    tree = tmp_path / "tree.sh"
    tree.write_text(TREE.format(pids=pids))
    adopted = tmp_path / "adopted.pid"
    lone = subprocess.Popen(["sleep", "300"], start_new_session=True)
    adopted.write_text(str(lone.pid))
    services = [
        {"name": "ui", "argv": ["bash", str(tree)], "essential": True, "grace_s": 2},
        {"name": "other", "argv": ["bash", str(tree)], "grace_s": 2},
    ]
    if flaky:
        services.append({"name": "flaky", "argv": ["bash", "-c", "exit 3"], "grace_s": 1})
    script = tmp_path / "sup.py"
    script.write_text(
        textwrap.dedent(
            f"""\
            import json, sys
            from pathlib import Path
            from tooling.supervisor import Service, Supervisor
            services = [Service(**s) for s in json.loads({json.dumps(json.dumps(services))})]
            sup = Supervisor(services, adopt_pidfiles=[Path({str(adopted)!r})],
                             heartbeat_url={heartbeat_url!r}, say=lambda m: print(m, flush=True))
            sys.exit(sup.run())
            """
        )
    )
    return script


def _pids(tmp_path: Path, want: int) -> set[int]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = (
            {int(x) for x in (tmp_path / "pids").read_text().split()}
            if (tmp_path / "pids").exists()
            else set()
        )
        if len(found) >= want:
            return found
        time.sleep(0.1)
    raise AssertionError(f"the process trees did not start: {found}")


def _gone(pids: set[int], timeout: float = 30) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    return {p for p in pids if _alive(p)}


def _adopted(tmp_path: Path) -> int:
    return (
        int((tmp_path / "adopted.pid").read_text()) if (tmp_path / "adopted.pid").exists() else -1
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_every_process_it_started_and_adopted(tmp_path, sig):
    adopted_before = None
    script = _script(tmp_path)
    adopted_before = _adopted(tmp_path)
    sup = subprocess.Popen([sys.executable, str(script)], cwd=os.getcwd())
    pids = _pids(tmp_path, 8)  # two trees of four
    assert _alive(adopted_before)
    sup.send_signal(sig)
    sup.wait(timeout=60)
    assert _gone(pids | {adopted_before}) == set()


def test_parent_death_stops_everything(tmp_path):
    """SIGKILL of `make` (the supervisor's parent) must not leave the platform running."""
    script = _script(tmp_path)
    adopted = _adopted(tmp_path)
    parent = subprocess.Popen(
        ["bash", "-c", f"{sys.executable} {script} & wait"], start_new_session=True
    )
    pids = _pids(tmp_path, 8)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    assert _gone(pids | {adopted}) == set()


def test_a_crashing_process_is_restarted_with_backoff_and_heartbeats(tmp_path, test_databases):
    url = test_databases.supabase_url
    script = _script(tmp_path, heartbeat_url=url, flaky=True)
    sup = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pids = _pids(tmp_path, 8)
    deadline = time.monotonic() + 40
    row = None
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT restarts, last_exit_code FROM platform.process_heartbeats"
                " WHERE name = 'flaky'"
            ).fetchone()
            if row and row[0] >= 2:
                break
            time.sleep(0.5)
        sup.send_signal(signal.SIGTERM)
        out, _ = sup.communicate(timeout=60)
        statuses = dict(
            conn.execute(
                "SELECT name, status FROM platform.process_heartbeats"
                " WHERE name IN ('ui', 'other', 'flaky')"
            ).fetchall()
        )
    assert row is not None and row[0] >= 2 and row[1] == 3, row
    assert "restart in 1 s" in out and "restart in 2 s" in out
    assert statuses == {"ui": "stopped", "other": "stopped", "flaky": "stopped"}
    assert _gone(pids) == set()
    json.dumps(statuses)
