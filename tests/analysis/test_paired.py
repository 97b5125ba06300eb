"""Paired bootstrap differences: exact weighted metrics, the degenerate cases, and coverage on simulated trial
lists whose speakers are shared across trials (where resampling trials under-covers)."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from analysis.paired import (TrialUnits, difference_replicates, paired_difference, speaker_of,
                             trial_paired_difference, trial_units)
from trainables.manifest import ManifestError, read_trials
from trainables.metrics import eer, min_dcf

TRIALS_DEV = "/work/shared/data/speechocean762/trials_dev.txt"
PHI = NormalDist().cdf


def gaussian_pair(n: int = 600, speakers: int = 20, seed: int = 0):
    """Scores of two systems (b = a plus noise) on n trials among `speakers` speakers, with their units."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    enrol = rng.integers(0, speakers, n)
    test = np.where(labels == 1, enrol, (enrol + rng.integers(1, speakers, n)) % speakers)
    a = rng.normal(2.0 * labels, 1.0)
    return a, a + rng.normal(0, 0.5, n), labels, TrialUnits(enrol, test, tuple(map(str, range(speakers))))


def test_speaker_is_the_first_folder_and_units_follow_the_real_trial_list():
    assert speaker_of("id10270/5r0dWxy17C8/00001.wav") == "id10270"
    for bad in ("00001.wav", "/data/id10270/x/1.wav", "./id1/x.wav", "~/id1/x.wav"):
        with pytest.raises(ManifestError, match="speaker folder"):
            speaker_of(bad)
    trials = read_trials(TRIALS_DEV)
    enrol, test = [t.enrol for t in trials], [t.test for t in trials]
    labels = np.array([t.label for t in trials])
    units = trial_units(enrol, test)
    assert len(units.names) == 40  # the dev speakers (README: 40 speakers)
    assert [units.names[i] for i in units.enrol[:3]] == [n.split("/")[0] for n in enrol[:3]]
    assert np.array_equal(units.enrol == units.test, labels == 1)  # targets within one speaker, non-targets across
    utterances = trial_units(enrol, test, unit="utterance")
    assert len(utterances.names) == len(set(enrol) | set(test))
    assert not (utterances.enrol == utterances.test).any()
    by_session = trial_units(enrol, test, unit=lambda name: name.rsplit("/", 1)[0])
    assert np.array_equal(by_session.enrol == by_session.test, labels == 1)  # one session per speaker
    with pytest.raises(ValueError, match="unit must be"):
        trial_units(enrol, test, unit="session")


def test_weighted_metrics_equal_those_of_the_explicitly_repeated_trials_seeds_averaged():
    rng = np.random.default_rng(1)
    labels = (rng.random(300) < 0.4).astype(int)
    a = np.round(rng.normal(labels, 1.0, (2, 300)), 1)  # two seeds, many ties
    b = np.round(rng.normal(1.3 * labels, 1.0, (3, 300)), 1)  # three seeds
    weights = rng.integers(0, 4, (25, 300))
    eers, dcfs = difference_replicates(a, b, labels, weights)
    for w, eer_diff, dcf_diff in zip(weights, eers, dcfs):
        rep = np.repeat(labels, w)
        expected_eer = np.mean([eer(np.repeat(s, w), rep) for s in b]) - np.mean([eer(np.repeat(s, w), rep) for s in a])
        expected_dcf = (np.mean([min_dcf(np.repeat(s, w), rep) for s in b])
                        - np.mean([min_dcf(np.repeat(s, w), rep) for s in a]))
        assert eer_diff == pytest.approx(expected_eer, abs=1e-12)
        assert dcf_diff == pytest.approx(expected_dcf, abs=1e-12)
    eers, dcfs = difference_replicates(a[0], b[0], labels, np.r_[weights, np.ones((1, 300), dtype=int)])
    for w, eer_diff, dcf_diff in zip(np.r_[weights, np.ones((1, 300), dtype=int)], eers, dcfs):  # one seed: exact
        rep = np.repeat(labels, w)
        assert eer_diff == eer(np.repeat(b[0], w), rep) - eer(np.repeat(a[0], w), rep)
        assert dcf_diff == min_dcf(np.repeat(b[0], w), rep) - min_dcf(np.repeat(a[0], w), rep)
    with pytest.raises(ValueError, match="no target"):
        difference_replicates(a, b, labels, labels[None] * 2)
    with pytest.raises(ValueError, match="non-negative integers"):
        difference_replicates(a, b, labels, np.full((1, 300), 0.5))


def test_identical_score_sets_differ_by_exactly_zero_with_zero_width():
    a, _, labels, units = gaussian_pair()
    seeds = np.stack([a, a[::-1]])
    for difference in (paired_difference(a, a.copy(), labels, units, resamples=200),
                       paired_difference(seeds, seeds.copy(), labels, units, resamples=200),
                       trial_paired_difference(a, a.copy(), labels, resamples=200)):
        for interval in (difference.eer, difference.min_dcf):
            assert (interval.estimate, interval.low, interval.high, interval.width) == (0.0, 0.0, 0.0, 0.0)


def test_a_strictly_better_separation_gives_an_interval_below_zero():
    a, _, labels, units = gaussian_pair()
    better = a + 1.5 * labels  # every target scores higher, every non-target the same
    for difference in (paired_difference(a, better, labels, units, resamples=300),
                       trial_paired_difference(a, better, labels, resamples=300)):
        assert difference.eer.estimate < 0 and difference.eer.high < 0, difference.eer
        assert difference.min_dcf.estimate < 0 and difference.min_dcf.high < 0, difference.min_dcf


def test_estimate_is_the_seed_mean_difference_and_every_seed_gets_the_same_resample():
    a, b, labels, units = gaussian_pair(seed=2)
    rng = np.random.default_rng(3)
    seeds_a, seeds_b = np.stack([a, a + rng.normal(0, 0.3, a.size)]), np.stack([b, b + rng.normal(0, 0.3, a.size)])
    combined = paired_difference(seeds_a, seeds_b, labels, units, resamples=200, seed=5)
    assert combined.eer.estimate == pytest.approx(
        np.mean([eer(s, labels) for s in seeds_b]) - np.mean([eer(s, labels) for s in seeds_a]), abs=1e-12)
    assert combined.min_dcf.estimate == pytest.approx(
        np.mean([min_dcf(s, labels) for s in seeds_b]) - np.mean([min_dcf(s, labels) for s in seeds_a]), abs=1e-12)
    single = paired_difference(a, b, labels, units, resamples=200, seed=5)
    repeated = paired_difference(np.stack([a, a]), np.stack([b, b, b]), labels, units, resamples=200, seed=5)
    assert repeated == single  # the same weights for every seed: copies of a seed change nothing
    assert single == paired_difference(a, b, labels, units, resamples=200, seed=5)
    assert single != paired_difference(a, b, labels, units, resamples=200, seed=6)


def test_refuses_misaligned_inputs_and_too_few_units():
    a, b, labels, units = gaussian_pair()
    with pytest.raises(ValueError, match="scores must be"):
        paired_difference(a[:-1], b, labels, units)
    with pytest.raises(ValueError, match="units cover"):
        paired_difference(a, b, labels[:-1], units)
    with pytest.raises(ValueError, match="level"):
        paired_difference(a, b, labels, units, level=95)
    one = TrialUnits(np.zeros(a.size, dtype=np.int64), np.zeros(a.size, dtype=np.int64), ("s",))
    with pytest.raises(ValueError, match="at least 2 units"):
        paired_difference(a, b, labels, one)


# A simulated trial list: speakers with utterances, targets = all utterance pairs within a speaker, non-targets =
# random pairs across speakers. Scores carry speaker effects (target level, impostor attraction) and utterance
# effects shared by every trial of that speaker/utterance; system b improves each speaker's targets by DELTA plus
# a speaker-specific amount, so the difference varies with the sample of speakers. Every effect is Gaussian, so
# each system's population scores are Gaussian per class and its population EER is Phi(-mean / (sd_t + sd_n)).
MU, SPEAKER, UTTERANCE, IMPOSTOR, GAIN, NOISE_B, DELTA = 2.0, 0.5, 0.3, 0.3, 1.0, 0.3, 0.5


def population_eer_difference() -> float:
    """EER(b) - EER(a) in points on the infinite population of speakers and utterances."""
    sd_n = (2 * IMPOSTOR ** 2 + 2 * UTTERANCE ** 2 + 1) ** 0.5
    sd_t = (SPEAKER ** 2 + 2 * UTTERANCE ** 2 + 1) ** 0.5
    sd_n_b, sd_t_b = (sd_n ** 2 + NOISE_B ** 2) ** 0.5, (sd_t ** 2 + GAIN ** 2 + NOISE_B ** 2) ** 0.5
    return 100 * (PHI(-(MU + DELTA) / (sd_t_b + sd_n_b)) - PHI(-MU / (sd_t + sd_n)))


def simulated_list(rng: np.random.Generator, speakers: int = 40, utterances: int = 6):
    speaker = np.repeat(np.arange(speakers), utterances)  # (u,) speaker of each utterance
    i, j = np.triu_indices(utterances, 1)
    first = np.arange(speakers)[:, None] * utterances
    target_enrol, target_test = (first + i).ravel(), (first + j).ravel()
    n_non = 2 * target_enrol.size
    non_enrol = rng.integers(0, speaker.size, n_non)
    non_test = (speaker[non_enrol] + rng.integers(1, speakers, n_non)) % speakers * utterances + rng.integers(
        0, utterances, n_non)
    enrol, test = np.r_[target_enrol, non_enrol], np.r_[target_test, non_test]  # (n,) utterance ids
    labels = np.r_[np.ones(target_enrol.size, dtype=int), np.zeros(n_non, dtype=int)]
    level, attraction, gain = (rng.normal(0, s, speakers) for s in (SPEAKER, IMPOSTOR, GAIN))
    utt_t, utt_n = rng.normal(0, UTTERANCE, speaker.size), rng.normal(0, UTTERANCE, speaker.size)
    se, st = speaker[enrol], speaker[test]
    a = np.where(labels == 1, MU + level[se] + utt_t[enrol] + utt_t[test],
                 attraction[se] + attraction[st] + utt_n[enrol] + utt_n[test]) + rng.normal(0, 1, labels.size)
    b = a + rng.normal(0, NOISE_B, labels.size) + labels * (DELTA + gain[se])
    return a, b, labels, TrialUnits(se, st, tuple(map(str, range(speakers))))


def test_speaker_bootstrap_covers_the_population_difference_and_the_trial_bootstrap_under_covers():
    truth = population_eer_difference()  # -1.33 points
    repetitions, speaker_hits, trial_hits, estimates, widths = 150, 0, 0, [], []
    for r in range(repetitions):
        a, b, labels, units = simulated_list(np.random.default_rng(1000 + r))
        by_speaker = paired_difference(a, b, labels, units, resamples=200, seed=r).eer
        by_trial = trial_paired_difference(a, b, labels, resamples=200, seed=r).eer
        speaker_hits += by_speaker.low <= truth <= by_speaker.high
        trial_hits += by_trial.low <= truth <= by_trial.high
        estimates.append(by_speaker.estimate)
        widths.append(by_speaker.width)
    speaker_rate, trial_rate = speaker_hits / repetitions, trial_hits / repetitions
    print(f"coverage of {truth:.3f}: speakers {speaker_rate:.3f}, trials {trial_rate:.3f}; mean width "
          f"{np.mean(widths):.2f} vs 3.92 sd of estimates {3.92 * np.std(estimates):.2f}")
    # 95 % nominal; 150 repetitions give a binomial sd of 1.8 points, so 0.88 is ~4 sd below. The pigeonhole
    # weights are mildly conservative (Owen 2007), so up to all-but-one covering is accepted, and the width is
    # checked against the spread of the estimates so that a uselessly wide interval cannot pass.
    assert 0.88 <= speaker_rate <= 149 / 150, speaker_rate
    assert 0.8 < np.mean(widths) / (3.92 * np.std(estimates)) < 1.4
    assert trial_rate <= 0.85 and trial_rate <= speaker_rate - 0.15, (trial_rate, speaker_rate)  # observed ~0.65
