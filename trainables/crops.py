"""Where to cut training views and evaluation segments from an utterance (pure numpy).

Training (paper.md section 3.1): two crops of `crop` samples from the same utterance that never overlap;
an utterance shorter than two crops is wrap-padded to exactly two crops, and its two halves are the views.
Evaluation: `count` segments of `segment` samples evenly spaced over the utterance (paper: 10 x 3.515 s),
short utterances wrap-padded to one segment first.
"""

from __future__ import annotations

import numpy as np


def wrap_pad(wave: np.ndarray, length: int) -> np.ndarray:
    """Extend a 1-D `wave` to `length` samples by repeating it from its start (np.pad mode 'wrap').

    Input already that long is returned unchanged (not cut). Raises ValueError for an empty wave.
    """
    if wave.shape[0] == 0:
        raise ValueError("cannot wrap-pad a zero-length waveform")
    if wave.shape[0] >= length:
        return wave
    return np.pad(wave, (0, length - wave.shape[0]), mode="wrap")


def two_view_starts(length: int, crop: int, rng: np.random.Generator) -> tuple[int, int]:
    """Start offsets of the two views of an utterance of `length` samples.

    When length >= 2 * crop the two crops do not overlap and are drawn uniformly over all such placements,
    in random order. Otherwise the result is always (0, crop): the caller wrap-pads the utterance to
    2 * crop samples (`wrap_pad`) and takes its two halves, as `two_views` does.
    """
    if crop <= 0:
        raise ValueError(f"crop must be > 0, got {crop}")
    if length < 2 * crop:
        return 0, crop
    slack = length - 2 * crop
    # Unordered placements (x, crop + y) with 0 <= x <= y <= slack correspond one-to-one to pairs u < v of
    # distinct values in [0, slack + 1] via x = u, y = v - 1; draw such a pair uniformly.
    u = int(rng.integers(0, slack + 2))
    v = int(rng.integers(0, slack + 1))
    if v >= u:
        v += 1
    u, v = min(u, v), max(u, v)
    first, second = u, crop + v - 1
    if rng.random() < 0.5:
        return second, first
    return first, second


def two_views(wave: np.ndarray, crop: int, rng: np.random.Generator) -> np.ndarray:
    """The two training views of a 1-D `wave`: an array (2, crop), see `two_view_starts`."""
    starts = two_view_starts(wave.shape[0], crop, rng)
    if wave.shape[0] < 2 * crop:
        wave = wrap_pad(wave, 2 * crop)
    return np.stack([wave[s : s + crop] for s in starts])  # (2, crop)


def eval_segment_starts(length: int, segment: int, count: int) -> np.ndarray:
    """`count` start offsets evenly spaced from 0 to length - segment (int64, rounded down as in sslsv).

    An utterance shorter than `segment` is wrap-padded to `segment` by `eval_segments`, so all starts are 0.
    """
    if segment <= 0 or count <= 0:
        raise ValueError(f"segment and count must be > 0, got segment={segment}, count={count}")
    last = max(length, segment) - segment
    return np.linspace(0, last, count).astype(np.int64)  # (count,)


def eval_segments(wave: np.ndarray, segment: int, count: int) -> np.ndarray:
    """`count` evenly spaced segments of a 1-D `wave`: an array (count, segment)."""
    wave = wrap_pad(wave, segment)
    starts = eval_segment_starts(wave.shape[0], segment, count)
    return np.stack([wave[s : s + segment] for s in starts])  # (count, segment)
