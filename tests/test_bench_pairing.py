"""The messaging benchmark's scaling figure compares each large run with the small runs made next
to it (issue 13): a machine that drifts between runs must not decide the figure."""

import pytest

from benchmarks.bench_messaging import median_pair, paired_ratios, phase_pairs

pytestmark = pytest.mark.unit


def test_each_large_run_is_compared_with_the_small_runs_on_both_sides():
    order = [
        ("small", 10.0),
        ("small", 12.0),
        ("large", 95.0),
        ("small", 8.0),
        ("large", 300.0),
        ("small", 32.0),
        ("large", 290.0),
        ("small", 30.0),
    ]
    assert paired_ratios(order) == [(95.0, 10.0), (300.0, 20.0), (290.0, 31.0)]


def test_a_machine_that_slows_down_midway_does_not_make_linear_runs_look_superlinear():
    """Every run costs the same per recipient, but the machine is three times slower from the
    second large run on: the medians say 30x; the pairs say 10x, 15x (the pair that straddles the
    slowdown) and 10x, so their median says 10x."""
    order = [
        ("small", 10.0),
        ("small", 10.0),
        ("large", 100.0),
        ("small", 10.0),
        ("large", 300.0),
        ("small", 30.0),
        ("large", 300.0),
        ("small", 30.0),
    ]
    large_s, near_s = median_pair(paired_ratios(order))
    assert large_s / near_s == pytest.approx(10.0)
    medians = (
        sorted(s for k, s in order if k == "large")[1]
        / sorted(s for k, s in order if k == "small")[2]
    )
    assert medians == pytest.approx(30.0)  # 300 s against 10 s


def test_a_large_run_with_a_small_run_on_one_side_is_compared_with_that_one():
    assert paired_ratios([("small", 9.0), ("large", 99.0)]) == [(99.0, 9.0)]
    assert paired_ratios([("large", 99.0), ("small", 11.0)]) == [(99.0, 11.0)]


def test_the_median_pair_is_the_middle_ratio_not_the_middle_time():
    pairs = [(200.0, 19.0), (150.0, 16.0), (100.0, 11.0)]  # 10.5x, 9.4x, 9.1x
    assert median_pair(pairs) == (150.0, 16.0)


def test_a_large_run_without_any_small_run_is_refused():
    with pytest.raises(ValueError, match="no small run"):
        paired_ratios([("large", 99.0)])


def test_each_pair_is_split_into_the_load_and_the_rest():
    """A pair at 11x whose load is linear (10x) and whose groups are 12x says so."""
    phases = [
        ("small", 5.0, 10.0),
        ("large", 50.0, 110.0),
        ("small", 5.0, 10.0),
    ]
    assert phase_pairs(phases) == ["load 10.00x, groups+close 12.00x"]


def test_the_phases_of_each_large_run_are_paired_with_its_own_neighbours():
    phases = [
        ("small", 5.0, 10.0),
        ("large", 40.0, 100.0),
        ("small", 4.0, 10.0),
        ("large", 60.0, 120.0),
        ("small", 6.0, 10.0),
    ]
    assert phase_pairs(phases) == [
        "load 8.89x, groups+close 10.91x",
        "load 12.00x, groups+close 12.00x",
    ]
