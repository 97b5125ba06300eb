"""The training loop in-process: exact checkpoint resume, clear errors on bad input before training."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from trainables.audio import AudioError
from trainables.checkpoint import latest_checkpoint, read_checkpoint
from trainables.config import TrainConfig
from trainables.hooks import LocalCheckpoints
from trainables.loop import NonFiniteLossError, Runtime, train
from trainables.manifest import ManifestError

QUIET = Runtime(verbose=False)


@pytest.fixture(scope="module")
def corpus(tiny_corpus):
    return tiny_corpus


class Interrupted(Exception):
    """Raised by `StopAfter` to stop a run as if it had been killed."""


class StopAfter(LocalCheckpoints):
    """Local checkpoints, and an interruption once `epochs` epochs of this call are written."""

    def __init__(self, output_dir, epochs):
        super().__init__(output_dir)
        self.left = epochs

    def epoch_end(self, state, scores, metrics):
        where = super().epoch_end(state, scores, metrics)
        self.left -= 1
        if self.left == 0:
            raise Interrupted(where)
        return where


def stop_after(cfg, output_dir, epochs):
    with pytest.raises(Interrupted):
        train(cfg, QUIET, StopAfter(output_dir, epochs))


def tiny(corpus, **changes):
    values = dict(
        data_root=str(corpus), train_manifest="train.csv", trials="trials.txt", noise_dir="noise", rir_dir="rir",
        batch_size=8, crop_seconds=0.5, epochs=3, eval_every=1, eval_mode="full", precision="fp32",
        queue_size=16, lr=1e-3, lr_decay_epochs=1, embedding_dim=32,
    )
    values.update(changes)
    return TrainConfig.from_dict(values)


@pytest.mark.parametrize("framework", ["simclr", "moco"])
def test_resume_gives_the_same_weights_as_training_straight_through(corpus, tmp_path, framework):
    cfg = tiny(corpus, framework=framework)
    straight = train(cfg, QUIET, LocalCheckpoints(tmp_path / "a"))
    stop_after(cfg, tmp_path / "b", 1)
    assert read_checkpoint(latest_checkpoint(tmp_path / "b" / "checkpoints"))["epoch"] == 1
    resumed = train(cfg, QUIET, LocalCheckpoints(tmp_path / "b"))
    a = read_checkpoint(latest_checkpoint(tmp_path / "a" / "checkpoints"))
    b = read_checkpoint(latest_checkpoint(tmp_path / "b" / "checkpoints"))
    assert a["epoch"] == b["epoch"] == 3
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key  # includes the MoCo queues and key encoder
    assert a["scheduler"] == b["scheduler"]
    assert straight["loss"] == resumed["loss"] and straight["eer"] == resumed["eer"]
    assert [h["epoch"] for h in b["history"]] == [1, 2, 3]
    assert Path(latest_checkpoint(tmp_path / "a" / "checkpoints"), "scores.npz").is_file()


class Steps(LocalCheckpoints):
    """No checkpoints; every step_end and epoch_end call kept."""

    def __init__(self):
        super().__init__()
        self.steps, self.epochs = [], []

    def step_end(self, epoch, step, steps, loss):
        self.steps.append((epoch, step, steps, loss))

    def epoch_end(self, state, scores, metrics):
        self.epochs.append(metrics)
        return super().epoch_end(state, scores, metrics)


def test_the_hooks_hear_every_step_with_the_loss_the_epoch_averages(corpus):
    hooks = Steps()
    train(tiny(corpus, epochs=2, eval_every=0), QUIET, hooks)
    steps = hooks.steps[0][2]
    assert steps > 1 and [(e, s, n) for e, s, n, _ in hooks.steps] == [(e, s, steps) for e in (0, 1) for s in range(1, steps + 1)]
    for epoch, metrics in enumerate(hooks.epochs):
        losses = [loss for e, _, _, loss in hooks.steps if e == epoch]
        assert metrics["loss"] == pytest.approx(float(np.mean(losses)), rel=1e-6)


def test_metrics_and_learning_rate_schedule(corpus, tmp_path):
    metrics = train(tiny(corpus, epochs=2, lr_decay=0.5), QUIET)
    assert metrics["epoch"] == 2 and metrics["epoch_lr"] == pytest.approx(0.5e-3)
    assert 0.0 <= metrics["eer"] <= 100.0 and 0.0 <= metrics["min_dcf"] <= 1.0 + 1e-9
    assert np.isfinite(metrics["loss"]) and metrics["samples_per_s"] > 0


def test_missing_trial_audio_fails_before_training(corpus, tmp_path):
    trials = tmp_path / "trials.txt"
    lines = (corpus / "trials.txt").read_text().splitlines()
    trials.write_text("\n".join(lines + ["1 test/nobody/missing.flac " + lines[0].split()[1]]) + "\n")
    with pytest.raises(AudioError, match="missing.flac"):
        train(tiny(corpus, trials=str(trials)), QUIET, LocalCheckpoints(tmp_path / "out"))
    assert latest_checkpoint(tmp_path / "out" / "checkpoints") is None


def test_malformed_trial_line_names_file_and_line(corpus, tmp_path):
    trials = tmp_path / "trials.txt"
    trials.write_text((corpus / "trials.txt").read_text() + "2 a.flac\n")
    n = len(trials.read_text().splitlines())
    with pytest.raises(ManifestError, match=rf"trials.txt:{n}"):
        train(tiny(corpus, trials=str(trials)), QUIET)


def test_unreadable_training_files_are_counted_or_refused(corpus, tmp_path, capsys):
    rows = (corpus / "train.csv").read_text().splitlines()
    (tmp_path / "broken.flac").write_bytes(b"not audio at all")
    sf.write(tmp_path / "nan.wav", np.full(16000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    manifest = tmp_path / "train.csv"
    manifest.write_text("\n".join(rows + [f"{tmp_path / 'broken.flac'},spkX", f"{tmp_path / 'nan.wav'},spkY"]) + "\n")
    with pytest.raises(Exception, match="broken.flac"):
        train(tiny(corpus, train_manifest=str(manifest), epochs=1, max_bad_files=0.0), QUIET)
    result = train(tiny(corpus, train_manifest=str(manifest), epochs=1, max_bad_files=0.1), Runtime(verbose=True))
    assert result["epoch"] == 1
    assert "skipped 2 unreadable training file(s) of 34" in capsys.readouterr().out


def test_non_finite_loss_stops_with_a_clear_error(corpus, tmp_path):
    """Resuming from a diverged checkpoint (NaN weights) stops at the first step and says where."""
    cfg = tiny(corpus, epochs=2)
    out = tmp_path / "out"
    stop_after(cfg, out, 1)
    folder = latest_checkpoint(out / "checkpoints")
    state = read_checkpoint(folder)
    state["model"] = {k: v.fill_(float("nan")) if v.is_floating_point() else v for k, v in state["model"].items()}
    torch.save(state, folder / "state.pt")
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 2, step 1 \(margin=0.1"):
        train(cfg, QUIET, LocalCheckpoints(out))
