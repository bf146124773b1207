"""metrics.py: the intervals against values worked out independently of the code."""
import math

import pytest

import metrics


def test_wilson_interval_of_8_of_10_is_the_textbook_one():
    z = 1.959964
    p, n = 0.8, 10
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert metrics.wilson_ci(8, 10) == pytest.approx([centre - half, centre + half])
    assert metrics.wilson_ci(8, 10) == pytest.approx([0.4902, 0.9433], abs=1e-4)  # worked out by hand


def test_bootstrap_interval_of_a_fair_coin_is_about_two_standard_errors_wide():
    low, high = metrics.bootstrap_ci([0, 1] * 100, seed=0)
    assert low < 0.5 < high
    assert high - low == pytest.approx(2 * 1.96 * math.sqrt(0.25 / 200), rel=0.15)
    assert metrics.bootstrap_ci([0] * 50) == (0.0, 0.0)


def test_bootstrap_interval_of_a_rate_weights_items_by_their_size():
    low, high = metrics.bootstrap_ci([1, 1, 1, 1], sizes=[2, 2, 2, 2])  # every resample: 4 errors in 8 letters
    assert low == high == 0.5
