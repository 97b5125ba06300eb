"""Evaluation: the mean-of-100-cosines shortcut, full-mode batching, scoring, metrics on a known encoder."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainables.crops import eval_segments
from trainables.evaluation import TrialSet, embed_utterances, full_length_batches, score_trials
from trainables.metrics import verification_metrics


class MeanPool(nn.Module):
    """A deterministic 'encoder': per-utterance mean and std of the features (B, F, T) -> (B, 2F)."""

    def forward(self, x):
        return torch.cat([x.mean(dim=2), x.std(dim=2)], dim=1)


class LogPlus(nn.Module):
    def forward(self, x):
        return (x + 1e-6).log()


class Identity(nn.Module):
    def forward(self, x):
        return x.float()[:, None, :]  # (B, 1, T): the waveform itself as one 'feature'


def test_segment_score_is_mean_of_pairwise_cosines():
    rng = np.random.default_rng(0)
    waves = [rng.integers(-3000, 3000, n).astype(np.int16) for n in (9000, 12000, 700)]
    enc = nn.Sequential(nn.Flatten(), nn.Linear(400, 6)).eval()
    vectors = embed_utterances(waves, Identity(), enc, torch.device("cpu"), "segments", segment=400, count=10)
    scores = score_trials(vectors, np.array([0, 0]), np.array([1, 2]))
    for (a, b), got in zip([(0, 1), (0, 2)], scores):
        with torch.no_grad():
            ea = F.normalize(enc(torch.from_numpy(eval_segments(waves[a], 400, 10)).float()[:, None] / 32768), dim=-1)
            eb = F.normalize(enc(torch.from_numpy(eval_segments(waves[b], 400, 10)).float()[:, None] / 32768), dim=-1)
        assert got == pytest.approx(float((ea @ eb.T).mean()), abs=1e-6)  # mean of the 10 x 10 cosines


def test_full_mode_batches_equal_one_by_one_embedding_of_the_trimmed_utterance():
    rng = np.random.default_rng(1)
    waves = [rng.integers(-3000, 3000, n).astype(np.int16) for n in (8000, 8100, 15999, 16000, 3000, 24100)]
    fe_enc = MeanPool().eval()
    batched = embed_utterances(waves, Identity(), fe_enc, torch.device("cpu"), "full", quantum=8000)
    for wave, got in zip(waves, batched):
        n = max(8000, wave.shape[0] // 8000 * 8000)
        trimmed = np.resize(wave, n) if wave.shape[0] < n else wave[:n]  # wrap-pad short, trim long
        want = F.normalize(fe_enc(torch.from_numpy(trimmed).float()[None, None] / 32768), dim=-1)[0]
        assert torch.allclose(got, want, atol=1e-6)


def test_full_length_batches_group_and_cap():
    batches = full_length_batches([8000, 9000, 15999, 16000, 100, 17000], quantum=8000, max_samples=16000)
    assert batches == [(8000, [0, 1]), (8000, [2, 4]), (16000, [3]), (16000, [5])]


def test_metrics_on_a_known_scoring(tmp_path):
    """Utterances of two 'speakers' (two tones): a mean/std 'encoder' separates them perfectly."""
    import soundfile as sf

    t = np.arange(16000) / 16000
    names = []
    for spk, freq in (("a", 300), ("b", 2000)):
        for k in range(3):
            name = f"{spk}{k}.wav"
            sf.write(tmp_path / name, 0.3 * np.sin(2 * np.pi * freq * t + k), 16000)
            names.append(name)
    lines = [f"{int(x[0] == y[0])} {x} {y}" for i, x in enumerate(names) for y in names[i + 1 :]]
    (tmp_path / "trials.txt").write_text("\n".join(lines) + "\n")
    trial_set = TrialSet.load(str(tmp_path / "trials.txt"), str(tmp_path), 16000)
    assert len(trial_set.names) == 6 and trial_set.labels.sum() == 6
    from trainables.features import LogMel

    mel = LogMel().mel  # un-normalised filterbank energies: the tone's band carries the 'speaker'
    frontend = nn.Sequential(mel, LogPlus())
    vectors = embed_utterances(trial_set.waves, frontend, MeanPool(), torch.device("cpu"), "full")
    scores = score_trials(vectors, trial_set.enrol_index, trial_set.test_index)
    assert verification_metrics(scores, trial_set.labels)["eer"] == 0.0
