"""Benchmark harness: every figure is a ratio against a physical reference measured in the same run.

A benchmark module ``benchmarks/bench_<name>.py`` defines ``bench(ctx: BenchContext) ->
list[Figure]``.
The harness gives it private databases (created fresh, migrated, dropped afterwards) and the
scale; the module measures its path and the reference (e.g. raw ``COPY … TO STDOUT | COPY …
FROM STDIN`` between the same two databases) and returns both. The machine is shared and noisy,
so ratios, not absolute times, are what the README quotes.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Figure:
    benchmark: str
    metric: str  # e.g. "rows/s", "p99 lag ms"
    value: float
    reference: float | None  # the same metric for the reference, measured in the same run
    reference_name: str = ""
    higher_is_better: bool = True
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if not self.reference:
            return None
        return self.value / self.reference


@dataclass
class BenchContext:
    supabase_url: str
    gfx_source_url: str
    mysql_database: str
    scale: str
    repeats: int = 3
    extra: dict = field(default_factory=dict)


def median_time(
    fn: Callable[[], object], repeats: int = 3, setup: Callable[[], object] | None = None
) -> float:
    """Median wall seconds of ``fn`` over ``repeats`` runs (``setup`` runs untimed before each)."""
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
