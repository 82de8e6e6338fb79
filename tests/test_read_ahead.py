"""``read_ahead``: the next Notion page is fetched while the current batch is written (the reads
waited on the database between requests, so a full backup ran at 2.7 requests/s against a 2.8/s
throttle)."""

from __future__ import annotations

import threading

import pytest

from resources.read_ahead import read_ahead

pytestmark = pytest.mark.unit


def test_items_arrive_in_order_and_complete():
    assert list(read_ahead(iter(range(1000)), depth=7)) == list(range(1000))


def test_the_producer_runs_ahead_while_the_consumer_is_busy():
    produced = threading.Event()

    def source():
        yield 1
        yield 2
        produced.set()  # reached only if someone asks for item 3 while item 1 is consumed
        yield 3

    items = read_ahead(source(), depth=2)
    assert next(items) == 1
    # a plain generator would wait for us: read_ahead already fetched items 2 and 3
    assert produced.wait(10)
    assert list(items) == [2, 3]


def test_an_error_of_the_source_arrives_after_the_items_before_it():
    def source():
        yield "a"
        yield "b"
        raise ValueError("notion said no")

    got = []
    with pytest.raises(ValueError, match="notion said no"):
        for item in read_ahead(source(), depth=4):
            got.append(item)
    assert got == ["a", "b"]


def test_a_consumer_that_stops_early_stops_the_producer():
    pulled = []
    stopped = threading.Event()

    def source():
        try:
            for i in range(10_000):
                pulled.append(i)
                yield i
        finally:
            stopped.set()

    items = read_ahead(source(), depth=3)
    assert next(items) == 0
    items.close()
    assert stopped.wait(10), "the source generator was closed"
    assert len(pulled) <= 6, "it stopped pulling, with at most a queue's worth ahead"


def test_the_source_runs_in_one_thread_and_is_never_pulled_concurrently():
    threads = set()

    def source():
        for i in range(200):
            threads.add(threading.get_ident())
            yield i

    assert sum(read_ahead(source(), depth=5)) == sum(range(200))
    assert len(threads) == 1 and threading.get_ident() not in threads
