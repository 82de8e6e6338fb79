"""Read ahead of a slow iterator in a thread of its own.

A full Notion backup reads one page of results, writes it to the database, then asks for the
next one: the write time is added to every request's wait, on top of the rate limit. With
``read_ahead`` the next request is already in flight (or waiting on the throttle) while the
current batch is written; at most ``depth`` items are held ahead, so memory stays bounded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_POLL_S = 0.05


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


class _Producer(Generic[T]):
    def __init__(self, items: Iterable[T], depth: int) -> None:
        self.items = items
        self.queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self.stop = threading.Event()

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        iterator = iter(self.items)
        try:
            for item in iterator:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Failed(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # the source's own cleanup runs in the thread that drove it


def read_ahead(items: Iterable[T], depth: int, name: str = "read-ahead") -> Iterator[T]:
    """Yield ``items`` in order while a thread pulls up to ``depth`` of them ahead.

    An exception of the source is raised here after the items before it; closing this iterator
    early stops the thread and closes the source.
    """
    producer = _Producer(items, depth)
    thread = threading.Thread(target=producer.run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = producer.queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        producer.stop.set()
        thread.join(timeout=5)  # a request in flight finishes on its own (daemon thread)
