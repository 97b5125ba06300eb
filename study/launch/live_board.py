"""Where running trials are, for the launch's live view: each trial's rank 0 posts its position (epoch, step,
running loss, last EER, ETA) to a small named Ray actor that the launch's driver reads without blocking.

An actor rather than Tune results: Tune accepts a result only with the searched metric in it (EER, evaluated a
few times per trial) and hands every result to the searcher and the scheduler; an actor rather than files: it
works with any storage, on any node, and costs one zero-CPU process that ends with the driver.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import ray

NAMESPACE = "margin_study"
POST_EVERY_S = 2.0
"""A trial posts at most this often between its epoch ends."""


@ray.remote(num_cpus=0)
class ProgressBoard:
    """The newest post of every trial."""

    def __init__(self):
        self.posts: dict[str, dict[str, Any]] = {}

    def post(self, trial_id: str, position: dict[str, Any]) -> None:
        self.posts[trial_id] = position

    def read(self) -> dict[str, dict[str, Any]]:
        return self.posts


def board_name(experiment: str) -> str:
    """The board actor's name for a launch's experiment folder name."""
    return f"progress:{experiment}"


def open_board(name: str):
    """Start (or find) the launch's board on the head node, beside the driver (losing another node does not lose
    it); it ends with the driver's Ray job."""
    return ProgressBoard.options(name=name, namespace=NAMESPACE, get_if_exists=True,
                                 resources={"node:__internal_head__": 0.001}).remote()


def close_board(board) -> None:
    """End the board's actor (the launch is over)."""
    try:
        ray.kill(board)
    except Exception:  # Ray is already going away
        pass


class BoardPoster:
    """A trial's rank 0 posting to the board `name` (nothing when there is none, e.g. outside a launch).
    ETA = steps left x wall seconds per step so far in this attempt (evaluations included)."""

    def __init__(self, name: str, trial_id: str, clock: Callable[[], float] = time.monotonic):
        self.trial_id = trial_id
        self.clock = clock
        try:
            self.board = ray.get_actor(name, namespace=NAMESPACE) if name else None
        except ValueError:  # no such actor
            self.board = None
        self.epochs = 0
        self.started = self.last_post = 0.0
        self.steps_done = self.steps = 0
        self.eer: float | None = None
        self.loss_sum = 0.0  # the sum of this epoch's step losses so far

    def start(self, epochs: int, epochs_done: int, eer: float | None) -> None:
        """Training starts (or resumes after `epochs_done` epochs)."""
        self.epochs, self.eer = epochs, eer
        self.started = self.clock()
        self._post({"epoch": epochs_done + 1, "epochs": epochs, "step": 0, "steps": 0, "phase": "starting"})

    def step(self, epoch: int, step: int, steps: int, loss: float, evaluating_next: bool) -> None:
        """0-based `epoch`, its 1-based `step` of `steps` done with `loss`; `evaluating_next`: the epoch's last
        step comes before an evaluation."""
        if step == 1:
            self.loss_sum = 0.0
        self.loss_sum += loss
        self.steps_done += 1
        self.steps = steps
        last = step == steps
        if not last and self.clock() - self.last_post < POST_EVERY_S:
            return
        self._post({"epoch": epoch + 1, "epochs": self.epochs, "step": step, "steps": steps,
                    "loss": self.loss_sum / step, "eta_s": self._eta((self.epochs - epoch) * steps - step),
                    "phase": "evaluating" if last and evaluating_next else "training"})

    def epoch_end(self, metrics: dict[str, Any]) -> None:
        """An epoch ended (with its EER when evaluated): the next one starts, or the trial is finishing (its model
        and run are being written)."""
        if "eer" in metrics:
            self.eer = float(metrics["eer"])
        done = int(metrics["epoch"])
        if done < self.epochs:
            self._post({"epoch": done + 1, "epochs": self.epochs, "step": 0, "steps": self.steps,
                        "loss": metrics.get("loss"), "eta_s": self._eta((self.epochs - done) * self.steps),
                        "phase": "training"})
        else:
            self._post({"epoch": done, "epochs": self.epochs, "step": self.steps, "steps": self.steps,
                        "loss": metrics.get("loss"), "eta_s": None, "phase": "finishing"})

    def _eta(self, steps_left: int) -> float | None:
        if not self.steps_done:
            return None
        return steps_left * (self.clock() - self.started) / self.steps_done

    def _post(self, position: dict[str, Any]) -> None:
        if self.board is None:
            return
        self.last_post = self.clock()
        self.board.post.remote(self.trial_id, {**position, "eer": self.eer})


class BoardReader:
    """The driver's side: `read()` returns the newest posts without ever waiting on the actor (a request is
    sent, and its answer taken on a later call once it arrived)."""

    def __init__(self, name: str):
        self.name = name
        self.board = None
        self.pending = None
        self.posts: dict[str, dict[str, Any]] = {}

    def read(self) -> dict[str, dict[str, Any]]:
        try:
            if self.board is None:
                self.board = ray.get_actor(self.name, namespace=NAMESPACE)
            if self.pending is not None:
                ready, _ = ray.wait([self.pending], timeout=0)
                if not ready:
                    return self.posts
                self.posts = ray.get(self.pending)
            self.pending = self.board.read.remote()
        except Exception:  # no board (yet), or it ended: the view shows what it knew
            self.board = self.pending = None
        return self.posts
