"""Ray Tune's OptunaSearch for trials that resume: intermediate values indexed by epoch, and a result that
arrives after Optuna recorded the trial as failed (a trial rerun by `--resume`) still reaches the study."""

from __future__ import annotations

from typing import Any

import optuna
from ray.tune.result import TRAINING_ITERATION
from ray.tune.search.optuna import OptunaSearch


class ResumableOptunaSearch(OptunaSearch):
    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Report by epoch: a restored trial's iteration count starts again at 1, its epochs do not."""
        if trial_id in self._completed_trials:
            return  # a rerun of a trial Optuna closed: its final result is what counts (on_trial_complete)
        super().on_trial_result(trial_id, {**result, TRAINING_ITERATION: int(result.get("epoch", result[TRAINING_ITERATION]))})

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        """A trial Optuna already closed (failed, then rerun by `--resume`) that now finished is added to the
        study as a completed trial with the same params."""
        if trial_id in self._completed_trials and not error and result and self.metric in result:
            closed = self._ot_trials[trial_id]
            self._ot_study.add_trial(optuna.trial.create_trial(
                params=closed.params, distributions=closed.distributions, value=result[self.metric]))
            return
        super().on_trial_complete(trial_id, result, error)
