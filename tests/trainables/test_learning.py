"""The trainer learns speaker identity: real speech (speechocean762) and the embedded corpus.

Slow (minutes): marked `slow`; CI runs them. The real-speech test needs ../shared/data and skips without it.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from trainables.config import build_config
from trainables.evaluation import TrialSet, evaluate, score_trials
from trainables.features import LogMel
from trainables.metrics import verification_metrics
from trainables.worker import Runtime, build_framework, resolve_data, train

EPOCHS_REAL = 25
EPOCHS_EMBEDDED = 10
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SPEECH = SHARED / "speechocean762"


def log_mel_statistics_eer(trial_set: TrialSet) -> float:
    """The trivial baseline: cosine of per-utterance mean and std of (un-normalised) log-mel energies."""
    mel = LogMel().mel
    vectors = []
    for wave in trial_set.waves:
        logmel = (mel(torch.from_numpy(wave).float()[None] / 32768) + 1e-6).log()[0]  # (40, frames)
        v = torch.cat([logmel.mean(dim=1), logmel.std(dim=1)])
        vectors.append(v / v.norm())
    scores = score_trials(torch.stack(vectors), trial_set.enrol_index, trial_set.test_index)
    return verification_metrics(scores, trial_set.labels)["eer"]


@pytest.mark.slow
@pytest.mark.skipif(not SPEECH.is_dir(), reason=f"real speech not found at {SPEECH} (../shared/data is absent)")
def test_learns_real_speaker_identity():
    trial_set = TrialSet.load(str(SPEECH / "trials_dev.txt"), str(SPEECH), 16000)
    baseline = log_mel_statistics_eer(trial_set)
    # The data README quotes about 16 % for log-mel statistics; with this front end (no per-utterance
    # normalisation, 25 ms Hamming) the same idea scores about 11 %: the dev trials are within-session.
    assert 8.0 < baseline < 19.0
    cfg = build_config(
        "cpu",
        {
            "data_root": str(SPEECH), "train_manifest": "train.csv", "trials": "trials_dev.txt",
            "noise_dir": str(SHARED / "noise"), "rir_dir": str(SHARED / "rir"),
            "epochs": EPOCHS_REAL, "eval_every": 0,
        },
    )
    metrics = train(cfg, Runtime(verbose=True))
    print(f"trivial baseline EER {baseline:.2f} %, trained EER {metrics['eer']:.2f} % in {metrics['seconds']:.0f} s")
    assert metrics["eer"] < 14.0  # clearly below the 16 % trivial baseline of the data README, after ~5 minutes


@pytest.mark.slow
def test_learns_the_embedded_corpus(tmp_path, monkeypatch):
    """Clearly below chance, and clearly better than the same encoder untrained (about 34 % EER: random
    convolutions already pick up some spectral cues)."""
    monkeypatch.setenv("MARGIN_STUDY_CACHE", str(tmp_path))
    cfg = build_config("cpu", {"epochs": EPOCHS_EMBEDDED, "eval_every": 0})
    paths = resolve_data(cfg, log=print)
    trial_set = TrialSet.load(paths.trials, paths.data_root, 16000)
    model = build_framework(cfg).to(memory_format=torch.channels_last)
    frontend = LogMel(cfg.sample_rate, cfg.n_mels, cfg.mel_window)
    untrained = evaluate(trial_set, frontend, model.encoder, torch.device("cpu"), cfg.eval_mode, autocast_dtype=torch.bfloat16)
    metrics = train(cfg, Runtime(verbose=True))
    print(
        f"embedded corpus: trivial baseline {log_mel_statistics_eer(trial_set):.2f} %, "
        f"untrained encoder {untrained['eer']:.2f} %, trained {metrics['eer']:.2f} % in {metrics['seconds']:.0f} s"
    )
    assert metrics["eer"] < 35.0 and metrics["eer"] < untrained["eer"] - 3.0
