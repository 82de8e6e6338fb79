"""Run the platform's long-lived processes together and stop all of them together.

``platform up`` (what ``make demo`` and ``make demo-distributed`` end with) starts the Dagster
UI and daemon (``dg dev``), the processes that live outside Dagster runs (the gfx CDC worker,
the gfx LISTEN listener, the webhook receivers) and, in the distributed profile, Celery
workers. Each runs in its own process group. The supervisor

- restarts a process that exits on its own, with exponential backoff (1 s doubling to 60 s),
  except the essential one (``dg dev``): when it ends, everything ends;
- writes one heartbeat row per process into ``platform.process_heartbeats`` every few seconds
  (a sensor turns a stale or stopped heartbeat into a notification);
- on Ctrl-C (SIGINT), SIGTERM or SIGHUP, and when its parent (``make``) dies, stops every
  process group it started (SIGTERM, then SIGKILL after a grace period), every descendant that
  left its group, and the processes whose pid files it adopted (the stand-ins ``make`` started
  for seeding), then exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psycopg

HEARTBEAT_EVERY_S = 5.0
MAX_BACKOFF_S = 60.0

HEARTBEAT_SQL = """
INSERT INTO platform.process_heartbeats
    (name, host, pid, status, started_at, beat_at, restarts, last_exit_code, details)
VALUES (%s, %s, %s, %s, %s, now(), %s, %s, %s::jsonb)
ON CONFLICT (name) DO UPDATE SET
    host = EXCLUDED.host, pid = EXCLUDED.pid, status = EXCLUDED.status,
    started_at = EXCLUDED.started_at, beat_at = now(), restarts = EXCLUDED.restarts,
    last_exit_code = EXCLUDED.last_exit_code, details = EXCLUDED.details
"""


@dataclass
class Service:
    """One supervised command line."""

    name: str
    argv: Sequence[str]
    essential: bool = False  # its exit stops everything (the UI)
    restart: bool = True
    grace_s: float = 15.0
    env: dict[str, str] = field(default_factory=dict)
    # runtime state
    proc: subprocess.Popen[bytes] | None = None
    started_wall: float = 0.0
    restarts: int = 0
    backoff_s: float = 1.0
    next_start: float = 0.0
    last_exit: int | None = None


def _children(parent: int) -> set[int]:
    out: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                out.add(int(entry.name))
    return out


def descendants(root: int) -> set[int]:
    """Every live process below ``root`` (walks /proc; children that left the group too)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in parents.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _signal(pids: set[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop_pids(pids: set[int], grace_s: float) -> None:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL whatever is left."""
    _signal(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    _signal({p for p in pids if _alive(p)}, signal.SIGKILL)


class Supervisor:
    def __init__(
        self,
        services: Sequence[Service],
        *,
        adopt_pidfiles: Sequence[Path] = (),
        log_dir: Path | None = None,
        heartbeat_url: str | None = None,
        sentinel: Path | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.sentinel = sentinel
        self.services = list(services)
        self.adopt_pidfiles = list(adopt_pidfiles)
        self.log_dir = log_dir
        self.heartbeat_url = heartbeat_url
        self.say = say
        self.stopping: str | None = None
        self.parent = os.getppid()
        self.host = socket.gethostname()
        self._logs: list[IO[bytes]] = []
        self._hb_conn: psycopg.Connection | None = None
        self._last_beat = 0.0

    # -- lifecycle -------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = self.stopping or signal.Signals(signum).name

    def _start(self, svc: Service) -> None:
        out: int | IO[bytes] | None = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.log_dir / f"{svc.name}.log", "ab")  # noqa: SIM115 (kept open)
            self._logs.append(handle)
            out = handle
        svc.proc = subprocess.Popen(
            list(svc.argv),
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: a terminal's Ctrl-C reaches us only
            env={**os.environ, **svc.env},
        )
        svc.started_wall = time.time()
        self.say(f"[up] started {svc.name} (pid {svc.proc.pid})")

    def _poll(self, svc: Service) -> None:
        now = time.monotonic()
        if svc.proc is None:
            if now >= svc.next_start:
                self._start(svc)
            return
        code = svc.proc.poll()
        if code is None:
            if time.time() - svc.started_wall > 60:
                svc.backoff_s = 1.0  # ran a minute: the next failure starts the backoff over
            return
        svc.last_exit = code
        _killpg(svc.proc.pid)  # what it left behind in its group
        svc.proc = None
        if svc.essential:
            self.stopping = self.stopping or f"{svc.name} exited with {code}"
            return
        if not svc.restart:
            self.say(f"[up] {svc.name} exited with {code}; not restarted")
            return
        svc.restarts += 1
        svc.next_start = now + svc.backoff_s
        self.say(f"[up] {svc.name} exited with {code}; restart in {svc.backoff_s:.0f} s")
        svc.backoff_s = min(svc.backoff_s * 2, MAX_BACKOFF_S)

    def _beat(self, final: bool = False) -> None:
        if not self.heartbeat_url or (
            not final and time.monotonic() - self._last_beat < HEARTBEAT_EVERY_S
        ):
            return
        self._last_beat = time.monotonic()
        try:
            if self._hb_conn is None or self._hb_conn.closed:
                self._hb_conn = psycopg.connect(
                    self.heartbeat_url, autocommit=True, connect_timeout=3
                )
            for svc in self.services:
                running = svc.proc is not None and svc.proc.poll() is None
                status = "stopped" if final else ("running" if running else "restarting")
                self._hb_conn.execute(
                    HEARTBEAT_SQL,
                    (
                        svc.name,
                        self.host,
                        svc.proc.pid if svc.proc else None,
                        status,
                        time.strftime(
                            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(svc.started_wall or time.time())
                        ),
                        svc.restarts,
                        svc.last_exit,
                        json.dumps({"argv0": Path(svc.argv[0]).name, "supervisor": os.getpid()}),
                    ),
                )
        except psycopg.Error as exc:  # heartbeats must never stop the platform
            self.say(f"[up] heartbeat not written: {type(exc).__name__}")
            self._hb_conn = None

    def run(self) -> int:
        _become_subreaper()
        if self.sentinel is not None:
            self.sentinel.parent.mkdir(parents=True, exist_ok=True)
            self.sentinel.write_text(f"{os.getpid()}\n")
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        try:
            while not self.stopping:
                for svc in self.services:
                    self._poll(svc)
                    if self.stopping:
                        break
                if os.getppid() != self.parent:
                    self.stopping = "parent process ended"
                if self.sentinel is not None and not self.sentinel.exists():
                    self.stopping = f"{self.sentinel} was deleted (make was interrupted)"
                self._beat()
                self._reap_orphans()
                time.sleep(0.2)
        finally:
            self.shutdown()
        return 0

    def _reap_orphans(self) -> None:
        """Collect exit statuses of adopted orphans (not of our own children: Popen does)."""
        own = {s.proc.pid for s in self.services if s.proc is not None}
        for pid in _children(os.getpid()) - own:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)

    def shutdown(self) -> None:
        reason = self.stopping or "shutdown"
        self.say(f"[up] stopping everything ({reason})")
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan anything
        pids: set[int] = set()
        for svc in self.services:
            pids |= descendants_of_group(svc)
        # As a subreaper, every orphan of our children is ours: nothing escapes by double-fork.
        pids |= descendants(os.getpid())
        for pidfile in self.adopt_pidfiles:
            try:
                pid = int(pidfile.read_text().strip())
            except (OSError, ValueError):
                continue
            pids |= {pid, *descendants(pid)}
            pidfile.unlink(missing_ok=True)
        grace = max((s.grace_s for s in self.services), default=10.0)
        # The UI first gets SIGINT (dagster dev's own clean shutdown of daemon and code servers).
        for svc in self.services:
            if svc.proc is not None and svc.essential:
                _signal({svc.proc.pid}, signal.SIGINT)
        deadline = time.monotonic() + min(grace, 10.0)
        while time.monotonic() < deadline and any(
            s.proc is not None and s.proc.poll() is None for s in self.services if s.essential
        ):
            time.sleep(0.1)
        stop_pids({p for p in pids if _alive(p)}, grace)
        stop_pids(descendants(os.getpid()), 2.0)
        for svc in self.services:
            if svc.proc is not None:
                svc.proc.wait()
        self._beat(final=True)
        if self.sentinel is not None:
            self.sentinel.unlink(missing_ok=True)
        for handle in self._logs:
            handle.close()
        if self._hb_conn is not None:
            self._hb_conn.close()
        self.say("[up] all processes stopped")


def descendants_of_group(svc: Service) -> set[int]:
    if svc.proc is None:
        return set()
    root = svc.proc.pid
    return ({root} if _alive(root) else set()) | descendants(root)


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _become_subreaper() -> None:
    """Linux: orphaned descendants are re-parented to us, not init (PR_SET_CHILD_SUBREAPER)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass
