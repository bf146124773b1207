"""metrics.py: CER, WER and WER@k by hand, the length bins, and the intervals against values worked out
independently of the code."""
import math

import pytest

import metrics


def test_cer_and_wer_by_hand():
    cer, wer = metrics.cer_wer(["cat", "dig", "hose"], ["cat", "dog", "house"])  # 0, 1, 1 edits in 3 + 3 + 5 letters
    assert cer == pytest.approx(2 / 11) and wer == pytest.approx(2 / 3)


def test_wer_at_k_is_the_share_of_words_that_no_prediction_gets_right():
    golds = ["cat", "dog", "house"]
    samples = [["cat", "dig", "hose"], ["kat", "dog", "howse"], ["cat", "dug", "hous"]]  # house: never right
    assert metrics.wer_at_k(samples, golds) == pytest.approx(1 / 3)
    assert metrics.wer_at_k(samples[:1], golds) == pytest.approx(2 / 3)  # k = 1 is the WER


def test_words_are_binned_by_length_with_their_own_cer_and_wer():
    rows = metrics.by_length(["kat", "dogs", "hosses"], ["cat", "dogs", "horses"], [3, 4, 6])
    assert rows == [{"lengths": "1-4", "words": 2, "cer": pytest.approx(1 / 7), "wer": pytest.approx(1 / 2)},
                    {"lengths": "5-6", "words": 1, "cer": pytest.approx(1 / 6), "wer": 1.0}]


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
