"""Issue 13 (1,000,000 recipients in linear time): the targets are handed to rendering in phone
order, bounded in memory (sorted runs on disk, merged), and the first row per phone in the
CRM's order still wins; idempotency keys of one execution ascend with the phone."""

from __future__ import annotations

import os
import random

import pytest

from messaging.planning import phone_ordered_columns
from messaging.transform import idempotency_key, normalize_phone

pytestmark = pytest.mark.unit


def phone_ordered(batches, phone_of, **kwargs):
    """The sort with one column: batches of items in, batches of items out."""
    for (items,) in phone_ordered_columns(((b,) for b in batches), phone_of, **kwargs):
        yield items


def _crm(n: int, seed: int) -> list[dict[str, object]]:
    rnd = random.Random(seed)
    formats = ["010-{a}-{b}", "010{a}{b}", "+82 10-{a}-{b}", "８２１０{a}{b}"]
    rows = []
    for i in range(n):
        a, b = f"{rnd.randrange(10_000):04d}", f"{rnd.randrange(40):04d}"  # duplicates
        phone = rnd.choice(formats).format(a=a, b=b) if rnd.random() > 0.05 else "not a phone"
        rows.append({"id": i, "phone": phone})
    return rows


def _expected(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    def key(row: dict[str, object]) -> str:
        try:
            return normalize_phone(row["phone"])
        except Exception:  # noqa: BLE001
            return "~"

    return sorted(rows, key=key)  # stable: the CRM's order among equal phones


@pytest.mark.parametrize("run_rows", [7, 100, 10_000])
def test_targets_come_in_phone_order_with_the_crms_order_kept_among_equal_phones(run_rows):
    rows = _crm(2_000, seed=run_rows)
    batches = [rows[i : i + 333] for i in range(0, len(rows), 333)]
    out = list(
        phone_ordered(iter(batches), lambda r: r["phone"], batch_size=250, run_rows=run_rows)
    )
    assert all(0 < len(b) <= 250 for b in out)
    assert [r["id"] for b in out for r in b] == [r["id"] for r in _expected(rows)]


def test_no_targets_give_no_batches():
    assert list(phone_ordered(iter([]), lambda r: r["phone"])) == []


def test_keys_of_one_execution_ascend_with_the_phone_and_differ_across_executions():
    phones = sorted(f"010{n:08d}" for n in random.Random(3).sample(range(10**8), 500))
    keys = [idempotency_key("exec-1", p) for p in phones]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert not set(keys) & {idempotency_key("exec-2", p) for p in phones}
    assert all(len(k) <= 100 for k in keys)  # SOLAPI customFields values
    assert idempotency_key("exec-1", phones[0]) == keys[0]


def test_packed_spill_gives_back_the_same_dicts_with_their_keys_in_order():
    from decimal import Decimal

    from messaging.planning import pack_dicts, unpack_dicts

    rows = [
        {"id": 1, "phone": "01012345678", "amount": Decimal("39000.00"), "name": None},
        {"phone": "01000000000", "id": 2},  # another shape, keys in another order
        {},
        {"id": 3, "phone": "x", "amount": Decimal("1"), "name": "김"},
    ]
    back = unpack_dicts(pack_dicts(rows))
    assert back == rows
    assert [list(r) for r in back] == [list(r) for r in rows]
    same = [{"a": i, "b": str(i)} for i in range(5)]
    assert unpack_dicts(pack_dicts(same)) == same


@pytest.mark.parametrize("run_rows", [7, 10_000])
def test_rows_with_their_values_spilled_come_back_whole_in_phone_order(run_rows):
    rows = _crm(1_000, seed=5)
    values = [{"name": f"n{r['id']}", "grade": None} for r in rows]
    out = list(
        phone_ordered_columns(
            iter([(rows[i : i + 300], values[i : i + 300]) for i in range(0, len(rows), 300)]),
            lambda row: row["phone"],
            batch_size=128,
            run_rows=run_rows,
        )
    )
    assert all(len(r) == len(v) <= 128 for r, v in out)
    got = [(r, v) for rs, vs in out for r, v in zip(rs, vs, strict=True)]
    assert [r["id"] for r, _ in got] == [r["id"] for r in _expected(rows)]
    assert all(v == {"name": f"n{r['id']}", "grade": None} for r, v in got)


@pytest.mark.parametrize(("run_rows", "piece_rows"), [(50, 3), (50, 7), (200, 1), (97, 13)])
def test_equal_phones_spread_over_runs_and_pieces_keep_the_crms_order(run_rows, piece_rows):
    """The merge hands out blocks: a phone repeated across sorted runs, and across the pieces
    one run is read back in, still comes in the CRM's order (the first row per phone wins)."""
    rnd = random.Random(run_rows * 31 + piece_rows)
    phones = ["010-1111-0000", "010-1111-0001", "010-2222-0000", "not a phone", "010-9999-9999"]
    rows = [{"id": i, "phone": rnd.choice(phones)} for i in range(1_500)]
    out = list(
        phone_ordered(
            iter([rows[i : i + 64] for i in range(0, len(rows), 64)]),
            lambda r: r["phone"],
            batch_size=100,
            run_rows=run_rows,
            piece_rows=piece_rows,
        )
    )
    assert all(0 < len(b) <= 100 for b in out[:-1]) and sum(map(len, out)) == len(rows)
    assert [r["id"] for b in out for r in b] == [r["id"] for r in _expected(rows)]


@pytest.mark.parametrize("rendered_by_the_sort", [False, True])
@pytest.mark.parametrize("run_rows", [7, 100, 10_000])
def test_the_first_row_per_phone_wins_however_the_number_is_written(run_rows, rendered_by_the_sort):
    """Duplicates are dropped by comparing neighbours in the sorted stream: that holds only if
    every spelling of one number (dashes, +82, full-width digits, a NUL typed into the CRM)
    sorts next to the others. The result must equal keeping the first row per normalized phone
    in the CRM's order."""
    from messaging.models import Template
    from messaging.planning import first_per_phone
    from messaging.progress import RunProgress
    from messaging.transform import render_message

    rnd = random.Random(run_rows)
    spellings = [
        "010-{a}-{b}",
        "010{a}{b}",
        "+82 10-{a}-{b}",
        "82-10-{a}-{b}",
        "８２１０{a}{b}",
        "0{a}{b}",  # not a mobile number: never deduplicated
        "010\x00{a}{b}",
        " 010 {a} {b} ",
    ]
    rows = []
    for i in range(3_000):
        a, b = f"{rnd.randrange(30):04d}", f"{rnd.randrange(30):04d}"
        rows.append({"id": i, "phone": rnd.choice(spellings).format(a=a, b=b), "name": f"n{i}"})
    tpl = Template("t", "x", "notification", "sms", "#{name}님 안내")
    batches = [
        ([r for r in rows[i : i + 333]], [{"name": r["name"]} for r in rows[i : i + 333]])
        for i in range(0, len(rows), 333)
    ]

    def render(row, values):
        return render_message(
            tpl, row, values, phone_column="phone", name_column="name", opt_out_line=""
        )

    progress = RunProgress("t", "running")
    if rendered_by_the_sort:  # as the engine does: rendered (and pickled) by the run writers
        ordered = (
            m
            for (messages,) in phone_ordered_columns(
                iter(batches),
                lambda r: r["phone"],
                batch_size=250,
                run_rows=run_rows,
                piece_rows=50,
                forked_min_rows=0,
                prepare=lambda cols: ([render(r, v) for r, v in zip(*cols, strict=True)],),
            )
            for m in messages
        )
    else:
        ordered = (
            render(row, values)
            for rows_, values_ in phone_ordered_columns(
                iter(batches), lambda r: r["phone"], batch_size=250, run_rows=run_rows
            )
            for row, values in zip(rows_, values_, strict=True)
        )
    kept = [m.source_id for m in first_per_phone(ordered, progress)]

    seen: set[str] = set()
    expected = []
    for row in rows:  # the CRM's order: the first row per normalized phone
        msg = render(row, {"name": row["name"]})
        if msg.phone is not None:
            if msg.phone in seen:
                continue
            seen.add(msg.phone)
        expected.append(msg.source_id)
    assert sorted(kept, key=int) == sorted(expected, key=int)
    assert progress.duplicates_dropped == len(rows) - len(expected) > 1_000


@pytest.mark.parametrize(("rows", "written"), [(100, 0), (150, 1), (250, 2), (301, 3)])
def test_only_runs_followed_by_more_rows_go_to_disk(monkeypatch, rows, written):
    """A run is written to disk only when more rows follow it; the last one is merged from
    memory, so an audience that fills exactly one run (the last batch reaching the limit) is
    sorted without touching the disk, and the order is the same either way."""
    import tempfile

    import messaging.planning as planning

    real = tempfile.TemporaryFile
    opened = []

    def counting(*args, **kwargs):
        opened.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(planning.tempfile, "TemporaryFile", counting)
    crm = _crm(rows, seed=rows)
    out = list(
        phone_ordered(
            iter([crm[i : i + 50] for i in range(0, len(crm), 50)]),
            lambda r: r["phone"],
            batch_size=40,
            run_rows=100,
            piece_rows=30,
        )
    )
    assert [r["id"] for b in out for r in b] == [r["id"] for r in _expected(crm)]
    assert len(opened) == written


class PidStamp:
    """A column value that notes which process pickles it (``pickled_in`` names the file)."""

    pickled_in = ""

    def __init__(self, value: int):
        self.value = value

    def __reduce__(self):
        if PidStamp.pickled_in:
            with open(PidStamp.pickled_in, "a") as f:
                f.write(f"{os.getpid()}\n")
        return (PidStamp, (self.value,))


def _columns(rows, size):
    return iter(
        [
            (rows[i : i + size], [PidStamp(r["id"]) for r in rows[i : i + size]])
            for i in range(0, len(rows), size)
        ]
    )


@pytest.mark.parametrize(("run_rows", "batch", "piece_rows"), [(100, 50, 7), (333, 37, 1_000)])
def test_full_runs_are_sorted_and_written_by_a_forked_writer_in_the_same_order(
    tmp_path, monkeypatch, run_rows, batch, piece_rows
):
    """Issue 13: while the targets stream in, full runs are sorted and pickled by a forked
    process (the idle CPU), not by the process reading them; the merged order is the same."""
    stamps = tmp_path / "pickled_in"
    monkeypatch.setattr(PidStamp, "pickled_in", str(stamps))
    rows = _crm(1_000, seed=run_rows)
    out = list(
        phone_ordered_columns(
            _columns(rows, batch),
            lambda r: r["phone"],
            batch_size=90,
            run_rows=run_rows,
            piece_rows=piece_rows,
            forked_min_rows=0,
        )
    )
    got = [(r, v) for rs, vs in out for r, v in zip(rs, vs, strict=True)]
    assert [r["id"] for r, _ in got] == [r["id"] for r in _expected(rows)]
    assert all(v.value == r["id"] for r, v in got)
    pids = [int(p) for p in stamps.read_text().split()]
    here = [p for p in pids if p == os.getpid()]
    written = [p for p in pids if p != os.getpid()]
    assert len(here) == batch  # only the first batch, pickled here to measure the rows' width
    full_runs = (len(rows) - 1) // run_rows  # the last run stays in memory
    assert len(written) == full_runs * run_rows  # every row of every written run, once
    assert len(set(written)) == full_runs  # one writer process per run


@pytest.mark.parametrize(
    ("n", "run_rows", "piece_rows", "written_runs"),
    [(1_000, 100, 7, 9), (1_000, 350, 1_000, 2), (90, 100, 30, 0)],
)
def test_each_row_is_prepared_once_by_the_process_that_sorts_its_run(
    n, run_rows, piece_rows, written_runs
):
    """Issue 13: the per-row work handed in as ``prepare`` (the engine renders each message
    there) is done by the forked writer for every row of a run it writes, on the idle CPU, and
    in this process only for the run that stays in memory; what comes out is the prepared rows
    in phone order, each prepared once."""
    rows = _crm(n, seed=run_rows + piece_rows)

    def prepare(columns):
        (items,) = columns
        return ([(item["id"], os.getpid()) for item in items],)

    out = list(
        phone_ordered_columns(
            iter([(rows[i : i + 50],) for i in range(0, n, 50)]),
            lambda r: r["phone"],
            batch_size=90,
            run_rows=run_rows,
            piece_rows=piece_rows,
            forked_min_rows=0,
            prepare=prepare,
        )
    )
    assert all(0 < len(items) <= 90 for (items,) in out)
    got = [x for (items,) in out for x in items]
    assert [i for i, _ in got] == [r["id"] for r in _expected(rows)]  # once each, in order
    writers = [pid for _, pid in got if pid != os.getpid()]
    assert len(writers) == written_runs * run_rows  # every row of every written run
    assert len(set(writers)) == written_runs  # by its run's writer
    assert len(got) - len(writers) == n - written_runs * run_rows  # the last run: here


def _recording_forks(monkeypatch):
    import messaging.planning as planning

    forked: list[int] = []
    real = planning.os.fork

    def fork():
        pid = real()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(planning.os, "fork", fork)
    return forked


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_a_failing_writer_is_a_clear_error_and_leaves_no_process(monkeypatch):
    forked = _recording_forks(monkeypatch)
    rows = _crm(300, seed=1)
    # the first batch pickles (the width probe), the second cannot: the first run's writer fails
    values = [[0] * 50] + [[lambda: None] * 50 for _ in range(5)]
    batches = iter([(rows[i : i + 50], values[i // 50]) for i in range(0, 300, 50)])
    with pytest.raises(OSError, match=r"sorted run of 100 rows .* writer process \(exit status 1"):
        list(
            phone_ordered_columns(
                batches, lambda r: r["phone"], batch_size=50, run_rows=100, forked_min_rows=0
            )
        )
    assert forked and all(_reaped(pid) for pid in forked)


def test_a_writer_still_running_when_the_sort_is_abandoned_is_stopped(monkeypatch):
    forked = _recording_forks(monkeypatch)
    rows = _crm(20_000, seed=2)

    def batches():
        for i in range(0, len(rows), 500):
            yield (rows[i : i + 500],)
            if i >= 10_000:
                raise RuntimeError("the target stream broke")

    with pytest.raises(RuntimeError, match="the target stream broke"):
        list(
            phone_ordered_columns(
                batches(), lambda r: r["phone"], batch_size=500, run_rows=5_000, forked_min_rows=0
            )
        )
    assert len(forked) == 2 and all(_reaped(pid) for pid in forked)
