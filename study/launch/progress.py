"""What the user sees while a study runs (one line per trial event, the live view of running trials) and the
final summary."""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from search_spaces import Reference, describe_config, matching_reference
from study.launch.console import clear_view, show_view
from study.launch.errors import one_line
from study.launch.live_view import LiveView


@dataclass
class TrialOutcome:
    """One trial at the end of a launch."""

    trial_id: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    error: str | None
    epochs: int

    @property
    def finished(self) -> bool:
        return self.error is None and int(self.metrics.get("epoch", 0)) >= self.epochs

    @property
    def stopped_early(self) -> bool:
        return self.error is None and not self.finished and bool(self.metrics)


def progress_callback(total: int, epochs: int, searched: Sequence[str], conditions: Mapping[str, Mapping[str, Any]],
                      metric: str, log: Callable[[str], None] | None = None,
                      stopped_early: Callable[[str], None] | None = None, max_failures: int | None = None,
                      board: str = "", concurrency: int = 1):
    """A Tune callback printing a line (`log`, default print) when a trial starts, reports an evaluation,
    finishes, fails, or (trials Tune retries, `max_failures` given) is restarted after a failure; and calling
    `stopped_early(trial_id)` when a scheduler stops a trial before its last epoch (then, and not when the launch
    is interrupted). With a `board` (`study.launch.live_board`) it also keeps the live view of the running trials
    (`study.launch.live_view`; `concurrency`: trials at once). `print` is looked up when a line is written, not
    bound here: Tune pickles the callback, and Ray may have replaced `builtins.print` in between, which pickle
    refuses; the view is built when the launch starts, for the same reason."""
    from ray import tune  # heavy: ray; the summary and its tests run without it

    from study.launch.live_board import BoardReader

    class Progress(tune.Callback):
        def __init__(self):
            self.done = 0
            self.started = time.monotonic()
            self.view: LiveView | None = None

        def setup(self, **info):
            self.started = time.monotonic()
            self.view = LiveView(total, concurrency, BoardReader(board).read if board else dict, show_view, self._block)

        def _line(self, text: str) -> None:
            elapsed = int(time.monotonic() - self.started)
            (log or print)(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {text}")

        def _block(self, lines: list[str]) -> None:
            self._line(lines[0])
            for line in lines[1:]:
                (log or print)(" " * 7 + line)

        def on_step_end(self, iteration, trials, **info):
            if self.view is not None:
                self.view.tick()

        def on_experiment_end(self, trials, **info):
            clear_view()

        def on_trial_start(self, iteration, trials, trial, **info):
            described = describe_config(trial.config, searched, conditions)
            if self.view is not None:
                self.view.trial_started(trial.trial_id, described)
            self._line(f"trial {trial.trial_id} started: {described}")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            extra = f", minDCF {result['min_dcf']:.4f}" if "min_dcf" in result else ""
            epoch = int(result["epoch"]) if "epoch" in result else "?"
            if self.view is not None:
                self.view.trial_result(trial.trial_id, result.get("eer"))
            self._line(f"trial {trial.trial_id} epoch {epoch}/{epochs}: {metric} {result[metric]:.4g}{extra}")

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.done += 1
            last = int((trial.last_result or {}).get("epoch", 0))
            early = 0 < last < epochs
            if early and stopped_early is not None:
                stopped_early(trial.trial_id)
            if self.view is not None:
                self.view.trial_ended(trial.trial_id, finished=not early)
            self._line(f"trial {trial.trial_id} {'stopped early by the scheduler' if early else 'done'} "
                       f"({self.done}/{total} trials)")

        def on_trial_recover(self, iteration, trials, trial, **info):
            if max_failures is None:
                return
            error = trial.get_pickled_error() or trial.get_error()
            self._line(f"trial {trial.trial_id}: worker failed ({one_line(error) if error else 'no error recorded'}); "
                       f"restarting from its last checkpoint (retry {trial.num_failures} of {max_failures})")

        def on_trial_error(self, iteration, trials, trial, **info):
            self.done += 1
            if self.view is not None:
                self.view.trial_ended(trial.trial_id, finished=False)
            self._line(f"trial {trial.trial_id} FAILED ({self.done}/{total} trials); see {trial.local_path}/error.txt")

    return Progress()


def outcomes(result_grid, epochs: int) -> list[TrialOutcome]:
    """Every trial of the Tune result grid, restored ones included."""
    found = []
    for result in result_grid:
        metrics = dict(result.metrics or {})
        trial_id = metrics.get("trial_id") or Path(result.path).name.removeprefix("trial_")
        error = None if result.error is None else one_line(result.error)
        found.append(TrialOutcome(trial_id, dict(result.config or {}), metrics, error, epochs))
    return sorted(found, key=lambda o: o.trial_id)


def best(trials: Sequence[TrialOutcome], metric: str, mode: str) -> TrialOutcome | None:
    """The trial with the best final value of `metric` (None when no trial reported it)."""
    scored = [t for t in trials if t.error is None and _finite(t.metrics.get(metric))]
    if not scored:
        return None
    sign = 1 if mode == "min" else -1
    return min(scored, key=lambda t: sign * float(t.metrics[metric]))


def summary(
    study_name: str,
    trials: Sequence[TrialOutcome],
    searched: Sequence[str],
    conditions: Mapping[str, Mapping[str, Any]],
    metric: str,
    mode: str,
    references: Sequence[Reference],
    seconds: float,
    where: Mapping[str, str],
) -> str:
    """The final report: every trial (best first), the best one, where results are, and how to browse them."""
    lines = [f"study {study_name}: {len(trials)} trial(s) in {seconds / 60:.1f} min "
             f"({sum(t.finished for t in trials)} finished, {sum(t.stopped_early for t in trials)} stopped early, "
             f"{sum(t.error is not None for t in trials)} failed)"]
    sign = 1 if mode == "min" else -1
    ranked = sorted(trials, key=lambda t: (not _finite(t.metrics.get(metric)), sign * float(t.metrics.get(metric, 0) or 0)))
    for t in ranked:
        state = "FAILED " + t.error if t.error else ("stopped early" if t.stopped_early else "")
        value = t.metrics.get(metric)
        text = f"  {t.trial_id}  {describe_config(t.config, searched, conditions)}  "
        text += f"{metric} {value:.3f}" if _finite(value) else f"{metric} -"
        if _finite(t.metrics.get("min_dcf")):
            text += f"  minDCF {t.metrics['min_dcf']:.4f}"
        ref = matching_reference(t.config, references)
        if ref is not None:
            text += f"  (paper {ref.source}: {ref.eer:.2f}" + (f" / {ref.min_dcf:.4f})" if ref.min_dcf is not None else ")")
        lines.append(text + (f"  {state}" if state else ""))
    top = best(trials, metric, mode)
    if top is not None:
        dcf = f", minDCF {top.metrics['min_dcf']:.4f}" if _finite(top.metrics.get("min_dcf")) else ""
        lines.append(f"best trial {top.trial_id}: {metric.upper()} {float(top.metrics[metric]):.3f}{dcf} "
                     f"({describe_config(top.config, searched, conditions)})")
    else:
        lines.append("no trial reported " + metric)
    lines += [f"{key:<8}{value}" for key, value in where.items()]
    return "\n".join(lines)


def trials_csv(trials: Sequence[TrialOutcome], searched: Sequence[str], metric: str) -> str:
    """The trials as CSV: trial_id, the searched values, state (finished, stopped early, failed, unfinished),
    epochs done, `metric`, min_dcf, error."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trial_id", *searched, "state", "epochs", metric, "min_dcf", "error"])
    for t in trials:
        state = "failed" if t.error else "finished" if t.finished else "stopped early" if t.stopped_early else "unfinished"
        writer.writerow([t.trial_id, *(t.config.get(name, "") for name in searched), state, t.metrics.get("epoch", ""),
                         t.metrics.get(metric, ""), t.metrics.get("min_dcf", ""), t.error or ""])
    return out.getvalue()


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
