"""A trial's child run written in the background, so that a slow or absent tracking server never holds up training.

The training loop only hands over what the run should hold (every epoch's metrics, the final trial scores, done
or not); a thread makes MLflow match it, retrying with backoff while the server cannot be reached. The run is
reconciled against the store rather than appended to (`sync_run`: log the epochs MLflow lacks), so a retried or
resumed trial, whose history comes from its checkpoint, fills any epoch an outage cut off and logs none twice.

The buffer on disk is the trial's checkpoint: each epoch's checkpoint (next to the trial's results, the newest two
kept) holds the whole metric history and the latest trial scores, a few KB per epoch. What the workers could not
send before they ended, the trial's driver sends from the final checkpoint (`sync_run` again), or the resumed
trial does.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from study.tracking.runs import TrialRun, start_trial_run
from study.tracking.system_metrics import start_system_metrics, stop_system_metrics
from study.tracking.settings import TrialTracking
from trainables.config import TrainConfig

RETRY_MIN_S = 1.0
RETRY_MAX_S = 15.0


def sync_run(run: TrialRun, history: Sequence[Mapping[str, Any]], scores: Mapping[str, np.ndarray] | None,
             finished: bool) -> None:
    """Make the child run hold every epoch of `history` (once each), and when `finished` the scores and status."""
    for metrics in history:
        run.log_epoch(metrics, None)
    if scores is not None:
        run.scores = dict(scores)
    if finished:
        run.finish()


class BackgroundRun:
    """Rank 0's view of the trial's child run: `log_epoch` and `finish` return at once; a thread writes them."""

    def __init__(self, tracking: TrialTracking, cfg: TrainConfig, paths: Mapping[str, Any],
                 history: Sequence[Mapping[str, Any]] = (), scores: Mapping[str, np.ndarray] | None = None,
                 log: Callable[[str], None] = print):
        self.tracking, self.cfg, self.paths, self.log = tracking, cfg, dict(paths), log
        self.history: list[dict[str, Any]] = [dict(m) for m in history]
        self.scores: dict[str, np.ndarray] | None = dict(scores) if scores is not None else None
        self.finished = False
        self.down_since: float | None = None
        self.last_error = ""
        self._run: TrialRun | None = None
        self._system = None  # MLflow's system-metrics monitor, from when the run is open
        self._synced = (-1, False)  # (epochs, finished) MLflow holds; -1: the run is not open yet
        self._wake = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name=f"mlflow-{tracking.trial_id}", daemon=True)
        self._thread.start()

    def log_epoch(self, metrics: Mapping[str, Any], scores: Mapping[str, np.ndarray] | None) -> None:
        with self._wake:
            if not self.history or int(metrics["epoch"]) > int(self.history[-1]["epoch"]):
                self.history.append(dict(metrics))
            if scores is not None:
                self.scores = dict(scores)
            self._wake.notify()

    def finish(self, wait_s: float) -> bool:
        """Mark the run done; wait up to `wait_s` for MLflow to hold everything; whether it does."""
        with self._wake:
            self.finished = True
            self._wake.notify()
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not self.synced:
            time.sleep(0.1)
        with self._wake:
            self._stop = True
            self._wake.notify()
        return self.synced

    @property
    def synced(self) -> bool:
        return self._synced == (len(self.history), self.finished)

    def _loop(self) -> None:
        delay = RETRY_MIN_S
        while True:
            with self._wake:
                while self.synced and not self._stop:
                    self._wake.wait()
                if self._stop:
                    if self._system is not None:
                        stop_system_metrics(self._system)
                    return
                target = (list(self.history), self.scores, self.finished)
            try:
                if self._run is None:
                    self._run = start_trial_run(self.tracking, self.cfg, self.paths)
                    self._system = start_system_metrics(self.tracking.launch.tracking_uri, self._run.run_id)
                sync_run(self._run, *target)
            except Exception as error:  # unreachable, timed out, or refused: keep it and try again
                self.last_error = str(error).splitlines()[0] if str(error) else type(error).__name__
                if self.down_since is None:
                    self.down_since = time.monotonic()
                    self.log(f"MLflow cannot take trial {self.tracking.trial_id}'s run ({self.last_error[:200]}); "
                             "training goes on, and its epochs are sent when it can")
                with self._wake:
                    self._wake.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if self.down_since is not None:
                self.log(f"MLflow took trial {self.tracking.trial_id}'s run again after "
                         f"{time.monotonic() - self.down_since:.0f} s")
            self.down_since, delay = None, RETRY_MIN_S
            with self._wake:
                self._synced = (len(target[0]), target[2])


def send_until_done(open_run: Callable[[], TrialRun], history: Sequence[Mapping[str, Any]],
                    scores: Mapping[str, np.ndarray] | None, log: Callable[[str], None] = print) -> None:
    """Sync a finished trial's run (`open_run` opens it), retrying with backoff for as long as the server is
    unreachable: the launch's driver decides when an outage has lasted too long and stops the study."""
    delay, said = RETRY_MIN_S, False
    while True:
        try:
            sync_run(open_run(), history, scores, finished=True)
            return
        except Exception as error:  # unreachable, timed out, or refused: keep it and try again
            if not said:
                log(f"MLflow cannot take the finished run yet ({str(error).splitlines()[0] if str(error) else error!r}); "
                    "retrying")
                said = True
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
