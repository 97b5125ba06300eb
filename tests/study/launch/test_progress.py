"""The progress lines of a launch and the trials a scheduler stopped early (told apart from interrupted ones)."""

from __future__ import annotations

from types import SimpleNamespace

import csv
import io

from study.launch.progress import TrialOutcome, progress_callback, summary, trials_csv


def trial(trial_id: str, epoch: int | None):
    """What the callback reads of a Tune trial."""
    return SimpleNamespace(trial_id=trial_id, config={"margin": 0.1}, last_result={"epoch": epoch} if epoch else {},
                           local_path="/r")


def test_a_trial_completed_before_its_last_epoch_is_reported_stopped_early():
    lines, early = [], []
    callback = progress_callback(3, 8, ["margin"], {}, "eer", log=lines.append, stopped_early=early.append)
    callback.on_trial_complete(0, [], trial("a", 3))  # ASHA stopped it at epoch 3
    callback.on_trial_complete(0, [], trial("b", 8))
    callback.on_trial_error(0, [], trial("c", 2))
    assert early == ["a"]
    assert "trial a stopped early by the scheduler (1/3 trials)" in lines[0]
    assert "trial b done (2/3 trials)" in lines[1] and "trial c FAILED (3/3 trials)" in lines[2]


def test_the_summary_counts_finished_stopped_early_and_failed_trials():
    trials = [TrialOutcome("a", {"margin": 0.1}, {"epoch": 3, "eer": 30.0}, None, 8),
              TrialOutcome("b", {"margin": 0.2}, {"epoch": 8, "eer": 20.0, "min_dcf": 0.9}, None, 8),
              TrialOutcome("c", {"margin": 0.3}, {}, "ray.exceptions.ActorDiedError: The actor died", 8)]
    text = summary("smoke", trials, ["margin"], {}, "eer", "min", [], 60.0, {"results": "/r"})
    assert "3 trial(s) in 1.0 min (1 finished, 1 stopped early, 1 failed)" in text
    assert "best trial b: EER 20.000, minDCF 0.9000 (margin=0.2)" in text
    assert "FAILED ray.exceptions.ActorDiedError: The actor died" in text


def test_the_trials_table_has_a_row_per_trial_with_its_searched_values_state_and_scores():
    trials = [TrialOutcome("a", {"margin": 0.1, "seed": 1}, {"epoch": 3, "eer": 30.0}, None, 8),
              TrialOutcome("b", {"margin": 0.2, "seed": 1}, {"epoch": 8, "eer": 20.0, "min_dcf": 0.9}, None, 8),
              TrialOutcome("c", {"margin": 0.3, "seed": 1}, {}, "ActorDiedError: The actor died", 8)]
    rows = list(csv.DictReader(io.StringIO(trials_csv(trials, ["margin"], "eer"))))
    assert list(rows[0]) == ["trial_id", "margin", "state", "epochs", "eer", "min_dcf", "error"]
    assert [(r["trial_id"], r["margin"], r["state"], r["eer"]) for r in rows] == [
        ("a", "0.1", "stopped early", "30.0"), ("b", "0.2", "finished", "20.0"), ("c", "0.3", "failed", "")]
    assert rows[1]["min_dcf"] == "0.9" and rows[2]["error"] == "ActorDiedError: The actor died"
