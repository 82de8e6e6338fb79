"""A small TCP proxy that cuts connections at random (chaos for database connections).

Put it between a sync process and PostgreSQL or MariaDB: every connection is forwarded byte for
byte, and while ``cut_rate`` is above zero each live connection is cut (both sides closed,
mid-stream) with that probability per second. Counts what it cut.
"""

from __future__ import annotations

import contextlib
import random
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class CuttingProxy:
    target_host: str
    target_port: int
    cut_rate: float = 0.0  # probability per connection per second
    seed: int = 0
    listen_port: int = 0
    cuts: int = 0
    connections: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pairs: list[tuple[socket.socket, socket.socket]] = field(default_factory=list)

    def start(self) -> CuttingProxy:
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", self.listen_port))
        self._server.listen(128)
        self.listen_port = self._server.getsockname()[1]
        self._rng = random.Random(self.seed)
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()
        threading.Thread(target=self._cutter, daemon=True, name="proxy-cutter").start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.close()
        with self._lock:
            for a, b in self._pairs:
                a.close()
                b.close()
            self._pairs.clear()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((self.target_host, self.target_port), 5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
                self.connections += 1
            threading.Thread(
                target=self._pump, args=(client, upstream), daemon=True, name="proxy-pump"
            ).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.5):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            a.close()
            b.close()
            with self._lock:
                if (a, b) in self._pairs:
                    self._pairs.remove((a, b))

    def _cutter(self) -> None:
        while not self._stop.wait(0.1):
            if self.cut_rate <= 0:
                continue
            with self._lock:
                for pair in list(self._pairs):
                    if self._rng.random() < self.cut_rate * 0.1:
                        for s in pair:
                            with contextlib.suppress(OSError):
                                s.shutdown(socket.SHUT_RDWR)
                            s.close()
                        self._pairs.remove(pair)
                        self.cuts += 1


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} not listening")
