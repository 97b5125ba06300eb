from collections import Counter

import numpy as np
import pytest

from trainables.crops import eval_segment_starts, eval_segments, two_view_starts, two_views, wrap_pad


def test_wrap_pad_repeats_from_the_start():
    np.testing.assert_array_equal(wrap_pad(np.array([1, 2, 3]), 8), [1, 2, 3, 1, 2, 3, 1, 2])
    np.testing.assert_array_equal(wrap_pad(np.array([7.0]), 4), [7.0, 7.0, 7.0, 7.0])
    long = np.arange(10)
    assert wrap_pad(long, 4) is long
    with pytest.raises(ValueError, match="zero-length"):
        wrap_pad(np.zeros(0), 5)


def test_two_views_never_overlap_for_long_utterances():
    meta = np.random.default_rng(0)
    for seed in range(2000):
        crop = int(meta.integers(1, 50))
        length = int(meta.integers(2 * crop, 2 * crop + 60))
        a, b = two_view_starts(length, crop, np.random.default_rng(seed))
        assert 0 <= a <= length - crop and 0 <= b <= length - crop
        assert abs(a - b) >= crop, (seed, length, crop, a, b)


def test_placements_are_uniform_and_order_random():
    length, crop = 7, 2  # slack 3: (3 + 1) * (3 + 2) / 2 = 10 unordered placements
    expected = {(a, b) for a in range(6) for b in range(6) if b - a >= crop}
    assert len(expected) == 10
    rng = np.random.default_rng(1)
    draws = [two_view_starts(length, crop, rng) for _ in range(20000)]
    unordered = Counter(tuple(sorted(d)) for d in draws)
    assert set(unordered) == expected
    freq = np.array(list(unordered.values())) / len(draws)
    assert np.abs(freq - 0.1).max() < 0.01
    first_is_earlier = np.mean([a < b for a, b in draws])
    assert abs(first_is_earlier - 0.5) < 0.02


def test_exactly_two_crops_long():
    assert sorted(two_view_starts(10, 5, np.random.default_rng(3))) == [0, 5]


def test_short_utterances_are_wrap_padded_halves():
    assert two_view_starts(7, 4, np.random.default_rng(0)) == (0, 4)
    views = two_views(np.arange(5.0), 3, np.random.default_rng(0))
    np.testing.assert_array_equal(views, [[0, 1, 2], [3, 4, 0]])
    views = two_views(np.array([1.0, 2.0]), 3, np.random.default_rng(0))
    np.testing.assert_array_equal(views, [[1, 2, 1], [2, 1, 2]])


def test_two_views_are_the_slices_at_the_drawn_starts():
    wave = np.arange(1000.0)
    views = two_views(wave, 100, np.random.default_rng(42))
    a, b = two_view_starts(1000, 100, np.random.default_rng(42))
    assert views.shape == (2, 100)
    np.testing.assert_array_equal(views[0], wave[a : a + 100])
    np.testing.assert_array_equal(views[1], wave[b : b + 100])


def test_eval_segment_starts_are_evenly_spaced():
    np.testing.assert_array_equal(eval_segment_starts(100, 10, 10), np.arange(0, 91, 10))
    starts = eval_segment_starts(160000, 56240, 10)
    assert starts[0] == 0 and starts[-1] == 160000 - 56240 and len(starts) == 10
    np.testing.assert_array_equal(starts, np.linspace(0, 160000 - 56240, 10).astype(np.int64))
    np.testing.assert_array_equal(eval_segment_starts(30, 40, 3), [0, 0, 0])
    np.testing.assert_array_equal(eval_segment_starts(50, 40, 1), [0])
    with pytest.raises(ValueError):
        eval_segment_starts(50, 0, 3)


def test_eval_segments():
    wave = np.arange(50.0)
    segs = eval_segments(wave, 20, 4)
    assert segs.shape == (4, 20)
    for seg, start in zip(segs, [0, 10, 20, 30]):
        np.testing.assert_array_equal(seg, wave[start : start + 20])
    short = eval_segments(np.array([1.0, 2.0, 3.0]), 5, 3)
    np.testing.assert_array_equal(short, [[1, 2, 3, 1, 2]] * 3)
