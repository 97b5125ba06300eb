"""The trainer learns speaker identity: real speech (speechocean762) and the embedded corpus.

Slow (minutes): marked `slow`; CI runs them. The real-speech test needs ../shared/data and skips without it.
Both train in fp32: bf16 autocast runs different kernels on each CPU (AMX, AVX-512 emulation, a plain
fallback), and 25 bf16 epochs ended 4+ points of EER apart on two CPUs. In fp32 a CPU changes only the
rounding order of sums, which still sends training down another path: each threshold is set against
baselines computed in the same test (the same encoder untrained; trivial log-mel statistics) with a margin
larger than the run-to-run spread measured here.
"""

from pathlib import Path

import pytest
import torch

import search_spaces
from trainables.config import TrainConfig, build_config
from trainables.data_paths import resolve_data
from analysis.floors import learned
from trainables.evaluation import TrialSet, evaluate, score_trials
from trainables.floors import trial_floors
from trainables.features import LogMel
from trainables.loop import Runtime, train
from trainables.metrics import verification_metrics
from trainables.parts import build_framework

EPOCHS_REAL = 25
EPOCHS_EMBEDDED = 4
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SPEECH = SHARED / "speechocean762"


def log_mel_statistics_eer(trial_set: TrialSet, z_score: bool = False) -> float:
    """The trivial baseline: cosine of per-utterance mean and std of (un-normalised) log-mel energies,
    optionally z-scored per dimension over the list's utterances (the data README's two reference points)."""
    frontend = LogMel()
    vectors = []
    for wave in trial_set.waves:
        logmel = frontend.log_energies(torch.from_numpy(wave).float()[None] / 32768)[0]  # (40, frames)
        vectors.append(torch.cat([logmel.mean(dim=1), logmel.std(dim=1)]))  # (80,)
    v = torch.stack(vectors)  # (U, 80)
    if z_score:
        v = (v - v.mean(dim=0)) / v.std(dim=0)
    scores = score_trials(v / v.norm(dim=1, keepdim=True), trial_set.enrol_index, trial_set.test_index)
    return verification_metrics(scores, trial_set.labels)["eer"]


def untrained_eer(cfg: TrainConfig, trial_set: TrialSet) -> float:
    """EER of the encoder `train(cfg)` starts from (same seed, same evaluation)."""
    model = build_framework(cfg)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    frontend = LogMel(cfg.sample_rate, cfg.n_mels, cfg.mel_window)
    autocast = torch.bfloat16 if cfg.precision == "bf16" else None
    return evaluate(trial_set, frontend, model.encoder, torch.device("cpu"), cfg.eval_mode, autocast_dtype=autocast)["eer"]


@pytest.mark.slow
@pytest.mark.skipif(not SPEECH.is_dir(), reason=f"real speech not found at {SPEECH} (../shared/data is absent)")
def test_learns_real_speaker_identity():
    trial_set = TrialSet.load(str(SPEECH / "trials_dev.txt"), str(SPEECH), 16000)
    # With this front end (25 ms Hamming, no per-utterance normalisation) raw statistics score 11.0 % and
    # z-scored ones 13.3 % (the data README: about 16 % and 12.9 %): the dev trials are within-session.
    floor = min(log_mel_statistics_eer(trial_set), log_mel_statistics_eer(trial_set, z_score=True))
    assert 8.0 < floor < 19.0
    cfg = build_config(
        "cpu",
        {
            "data_root": str(SPEECH), "train_manifest": "train.csv", "trials": "trials_dev.txt",
            "rir_dir": str(SHARED / "rir"), "epochs": EPOCHS_REAL, "eval_every": 0,
            # Reverberation only: with the small noise set, noise on views costs EER (a GPU sweep of 65 epochs:
            # 8.1 % with reverberation 0.5 only, 10.4 % with noise 0.1 as well).
            "precision": "fp32", "noise_prob": 0.0, "reverb_prob": 0.5,
        },
    )
    untrained = untrained_eer(cfg, trial_set)
    metrics = train(cfg, Runtime(verbose=True))
    print(
        f"trivial floor {floor:.2f} %, untrained encoder {untrained:.2f} %, "
        f"trained {metrics['eer']:.2f} % in {metrics['seconds']:.0f} s"
    )
    # Measured on a 2-core Xeon with AMX (2026), 8 minutes of training: untrained 31.9 %, trained 11.3 %; 10.1 %
    # with the noise bank loaded (another random stream); 9.1 % with oneDNN and ATen held to AVX2 (another
    # CPU's kernels, 12 minutes). The encoder learns: it ends more than 15 points below where it started
    # (5.6+ points to spare). It matches the channel statistics that already separate these within-session
    # speakers, give or take the 2.2-point spread of those runs (2.7+ points to spare); it beats them clearly
    # only with longer training (8.1 % after 65 epochs in a GPU sweep).
    assert metrics["eer"] < untrained - 15.0
    assert metrics["eer"] < floor + 3.0


@pytest.mark.slow
def test_learns_the_embedded_corpus():
    """Clearly below the corpus's floors (`trainables.floors`): the trivial log-mel statistic (about 25 % EER) and
    the same encoder untrained (about 40 %), after margin_sweep's `cpu` budget per trial (1 s views, no
    augmentation, the learning rate falling each epoch) cut to 4 epochs (128 steps), in fp32, for SimCLR at one of
    the budget's low temperatures (m = 0.1, tau = 0.0125; at 1/30 it learns later). The corpus comes from the
    default cache, where the study tests built it (built here when they did not run)."""
    budget = search_spaces.load("margin_sweep").fixed_for("cpu")
    cfg = build_config("cpu", {**budget, "epochs": EPOCHS_EMBEDDED, "precision": "fp32", "framework": "simclr",
                               "margin": 0.1, "temperature": 0.0125})
    paths = resolve_data(cfg, log=print)
    trial_set = TrialSet.load(paths.trials, paths.data_root, 16000)
    floors = trial_floors(trial_set, paths.trials, paths.data_root, cfg, torch.device("cpu"))
    metrics = train(cfg, Runtime(verbose=True))
    print(f"embedded corpus: trivial statistic {floors['floor_trivial_eer']:.2f} %, untrained encoder "
          f"{floors['floor_untrained_eer']:.2f} %, trained {metrics['eer']:.2f} % in {metrics['seconds']:.0f} s")
    # Measured (2-core Xeon, 2026, corpus v4): 10.73 % after 128 fp32 steps in 174 s, trivial floor 25.40 %,
    # untrained 39.93 % (3 epochs at tau = 1/30: 29.3 %, it learns later). Learned = at least 3 points below the
    # lower floor, the analysis's rule: 11.7 points to spare.
    assert learned(metrics["eer"], (floors["floor_trivial_eer"], floors["floor_untrained_eer"]))
