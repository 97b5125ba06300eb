"""Floors: the trivial statistic against an independent numpy reference, the untrained encoder, the cache (hit,
new key, damaged file) and the loop logging them with every evaluated epoch; the speechocean762 figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import trainables.floors as floors_module
from trainables.config import TrainConfig
from trainables.evaluation import TrialSet, evaluate, score_trials
from trainables.features import LogMel
from trainables.floors import FLOOR_SEED, floors_path, floor_key, trial_floors, trivial_vectors, untrained_floor
from trainables.loop import Runtime, train
from trainables.metrics import FLOOR_METRICS, eer
from trainables.parts import build_framework

SPEECHOCEAN = Path(__file__).resolve().parents[3] / "shared" / "data" / "speechocean762"


def reference_log_mel(wave: np.ndarray, sample_rate: int = 16000, n_mels: int = 40) -> np.ndarray:
    """(n_mels, frames) log mel band energies in numpy: centred reflect-padded STFT (n_fft 512, periodic Hamming
    window of 25 ms centred in it, 10 ms hop), power spectrum, HTK triangular filters from 0 to Nyquist."""
    n_fft, win, hop = 512, int(0.025 * sample_rate), int(0.010 * sample_rate)
    n = np.arange(win)
    window = np.zeros(n_fft)
    window[(n_fft - win) // 2:(n_fft - win) // 2 + win] = 0.54 - 0.46 * np.cos(2 * np.pi * n / win)
    padded = np.pad(wave.astype(np.float64), n_fft // 2, mode="reflect")
    frames = 1 + wave.shape[0] // hop
    starts = np.arange(frames) * hop
    power = np.abs(np.fft.rfft(np.stack([padded[s:s + n_fft] for s in starts]) * window, axis=1)) ** 2  # (F, 257)
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
    hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)
    edges = hz(np.linspace(mel(0.0), mel(sample_rate / 2), n_mels + 2))  # (n_mels + 2,)
    freqs = np.linspace(0, sample_rate // 2, n_fft // 2 + 1)  # (257,)
    rising = (freqs[:, None] - edges[None, :-2]) / (edges[1:-1] - edges[:-2])
    falling = (edges[None, 2:] - freqs[:, None]) / (edges[2:] - edges[1:-1])
    bank = np.maximum(0.0, np.minimum(rising, falling))  # (257, n_mels)
    return np.log(power @ bank + 1e-6).T


def reference_vectors(waves: list[np.ndarray]) -> np.ndarray:
    stats = []
    for wave in waves:
        energies = reference_log_mel(wave.astype(np.float64) / 32768.0)
        stats.append(np.concatenate([energies.mean(axis=1), energies.std(axis=1)]))
    stats = np.stack(stats)
    z = (stats - stats.mean(axis=0)) / stats.std(axis=0)
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def coloured_noise(rng: np.random.Generator, seconds: float, tilt: float, gain: float) -> np.ndarray:
    """Int16 noise with a spectral tilt (so utterances differ in their band statistics)."""
    white = rng.standard_normal(int(seconds * 16000))
    spectrum = np.fft.rfft(white) * (np.arange(1, white.shape[0] // 2 + 2) ** tilt)
    wave = np.fft.irfft(spectrum, n=white.shape[0])
    wave = wave / np.abs(wave).max() * gain * (1 + 0.3 * np.sin(np.arange(wave.shape[0]) / 800.0))
    return np.round(wave * 32767 * 0.7).astype(np.int16)


def test_trivial_vectors_and_scores_match_an_independent_numpy_reference():
    rng = np.random.default_rng(3)
    waves = [coloured_noise(rng, s, t, g) for s, t, g in
             ((1.2, -0.5, 0.9), (0.8, 0.0, 0.3), (1.5, -1.0, 0.6), (1.0, 0.3, 1.0), (0.7, -0.2, 0.1), (1.1, -0.8, 0.5))]
    vectors = trivial_vectors(waves, LogMel(16000, 40, "hamming"))
    expected = reference_vectors(waves)
    assert vectors.shape == (6, 80)
    np.testing.assert_allclose(vectors.numpy(), expected, atol=2e-4)
    enrol, test = np.array([0, 0, 1, 2, 3, 4]), np.array([1, 2, 3, 4, 5, 5])
    np.testing.assert_allclose(score_trials(vectors, enrol, test), (expected[enrol] * expected[test]).sum(1), atol=2e-4)


def tiny(corpus, **changes) -> TrainConfig:
    values = dict(data_root=str(corpus), train_manifest="train.csv", trials="trials.txt", noise_dir="noise",
                  rir_dir="rir", batch_size=8, crop_seconds=0.5, epochs=2, eval_every=1, eval_mode="full",
                  precision="fp32", queue_size=16, lr_decay_epochs=1, embedding_dim=32)
    values.update(changes)
    return TrainConfig.from_dict(values)


@pytest.fixture(scope="module")
def trial_set(tiny_corpus):
    return TrialSet.load(str(tiny_corpus / "trials.txt"), str(tiny_corpus), 16000)


class Counting:
    """Counts the computations of the floors (the trivial statistic's; the encoder's follows it)."""

    def __init__(self, monkeypatch):
        self.calls = 0
        real = floors_module.trivial_floor

        def counted(*args):
            self.calls += 1
            return real(*args)

        monkeypatch.setattr(floors_module, "trivial_floor", counted)


def floors_of(trial_set, corpus, cfg, cache, lines=None):
    return trial_floors(trial_set, str(corpus / "trials.txt"), str(corpus), cfg, torch.device("cpu"), cache,
                        log=None if lines is None else lines.append)


def test_floors_are_computed_once_then_read_from_the_cache(tiny_corpus, trial_set, tmp_path, monkeypatch):
    counting, cfg, lines = Counting(monkeypatch), tiny(tiny_corpus), []
    first = floors_of(trial_set, tiny_corpus, cfg, tmp_path, lines)
    assert set(first) == set(FLOOR_METRICS) and counting.calls == 1
    assert all(0 <= first[k] <= 100 for k in ("floor_trivial_eer", "floor_untrained_eer"))
    path = floors_path(floor_key(tiny_corpus / "trials.txt", tiny_corpus, cfg), tmp_path)
    assert json.loads(path.read_text())["floors"] == first
    assert "computed in" in lines[0] and str(path) in lines[0]
    again = floors_of(trial_set, tiny_corpus, cfg.replace(seed=99, framework="moco", margin=0.3), tmp_path, lines)
    assert again == first and counting.calls == 1  # the run's seed and loss are not part of the floors
    assert lines[1] == (f"floors on trials.txt: trivial statistic {first['floor_trivial_eer']:.1f} % EER, "
                        f"untrained encoder {first['floor_untrained_eer']:.1f} % (cached)")


def test_a_changed_trial_list_or_protocol_gets_a_new_key(tiny_corpus, tmp_path):
    cfg = tiny(tiny_corpus)
    key = floor_key(tiny_corpus / "trials.txt", tiny_corpus, cfg)
    assert floor_key(tiny_corpus / "trials.txt", tiny_corpus, cfg.replace(seed=5, lr=0.1)) == key
    for changed in (dict(eval_mode="segments"), dict(precision="bf16"), dict(n_mels=64), dict(eval_segments=3)):
        assert floor_key(tiny_corpus / "trials.txt", tiny_corpus, cfg.replace(**changed)) != key, changed
    lines = (tiny_corpus / "trials.txt").read_text().splitlines()
    edited = tmp_path / "trials.txt"
    edited.write_text("\n".join(lines[1:]) + "\n")
    assert floor_key(edited, tiny_corpus, cfg) != key


@pytest.mark.parametrize("damage", [b"", b"{not json", b'{"format": 1, "floors": {"floor_trivial_eer": 1.0}}',
                                    b'{"format": 1, "floors": {"floor_trivial_eer": NaN, "floor_trivial_min_dcf": 1, '
                                    b'"floor_untrained_eer": 1, "floor_untrained_min_dcf": 1}}'])
def test_a_damaged_cache_file_is_recomputed_and_replaced(tiny_corpus, trial_set, tmp_path, monkeypatch, damage):
    cfg = tiny(tiny_corpus)
    first = floors_of(trial_set, tiny_corpus, cfg, tmp_path)
    path = floors_path(floor_key(tiny_corpus / "trials.txt", tiny_corpus, cfg), tmp_path)
    path.write_bytes(damage)
    counting = Counting(monkeypatch)
    assert floors_of(trial_set, tiny_corpus, cfg, tmp_path) == pytest.approx(first)
    assert counting.calls == 1 and json.loads(path.read_text())["floors"] == pytest.approx(first)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_the_untrained_floor_is_one_per_list_and_leaves_the_callers_random_state(tiny_corpus, trial_set):
    cfg = tiny(tiny_corpus)
    frontend = LogMel(16000, 40)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = untrained_floor(trial_set, frontend, cfg, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), before)
    b = untrained_floor(trial_set, frontend, cfg.replace(seed=7, framework="moco"), torch.device("cpu"))
    assert a == b
    # what a MoCo run with seed FLOOR_SEED scores before its first step
    run = build_framework(cfg.replace(seed=FLOOR_SEED, framework="moco"))
    before_training = evaluate(trial_set, frontend, run.encoder, torch.device("cpu"), "full")
    assert a == {"eer": before_training["eer"], "min_dcf": before_training["min_dcf"]}


def test_the_loop_adds_the_floors_to_every_evaluated_epoch_computing_them_once(tiny_corpus, tmp_path, monkeypatch,
                                                                                capsys):
    monkeypatch.setenv("MARGIN_STUDY_CACHE", str(tmp_path / "cache"))
    counting = Counting(monkeypatch)
    seen = []

    class Keep:
        def device(self): return None
        def restore(self): return None
        def start(self, cfg, paths): pass
        def step_end(self, epoch, step, steps, loss): pass
        def epoch_end(self, state, scores, metrics): seen.append(dict(metrics))
        def end(self): pass

    cfg = tiny(tiny_corpus, epochs=3, eval_every=2)  # evaluated after epochs 2 and 3
    train(cfg, Runtime(verbose=True), Keep())
    assert counting.calls == 1
    evaluated = [m for m in seen if "eer" in m]
    assert [m["epoch"] for m in evaluated] == [2, 3] and not set(FLOOR_METRICS) & set(seen[0])
    cached = floors_of(TrialSet.load(str(tiny_corpus / "trials.txt"), str(tiny_corpus), 16000), tiny_corpus, cfg,
                       tmp_path / "cache")
    for metrics in evaluated:
        assert {k: metrics[k] for k in FLOOR_METRICS} == cached
    assert "floors on trials.txt: trivial statistic" in capsys.readouterr().out


@pytest.mark.skipif(not (SPEECHOCEAN / "trials_dev.txt").exists(), reason=f"no speechocean762 at {SPEECHOCEAN}")
def test_the_trivial_floor_on_speechocean762_is_the_datasets_reference_point():
    """README of the data: z-scored log-mel mean/std cosine, about 12.9 % / 15.1 % EER (with a Hann window; the
    run's Hamming front end gives 13.3 % / 15.1 %)."""
    found = {}
    for name in ("trials_dev.txt", "trials_dev_hard.txt"):
        trials = TrialSet.load(str(SPEECHOCEAN / name), str(SPEECHOCEAN), 16000)
        for window in ("hann", "hamming"):
            vectors = trivial_vectors(trials.waves, LogMel(16000, 40, window))
            found[name, window] = eer(score_trials(vectors, trials.enrol_index, trials.test_index), trials.labels)
    assert found["trials_dev.txt", "hann"] == pytest.approx(12.9, abs=0.1)
    assert found["trials_dev_hard.txt", "hann"] == pytest.approx(15.1, abs=0.1)
    assert found["trials_dev.txt", "hamming"] == pytest.approx(13.3, abs=0.2)
    assert found["trials_dev_hard.txt", "hamming"] == pytest.approx(15.1, abs=0.2)
