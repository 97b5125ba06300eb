"""The live view of a launch's running trials: a header (running, done, time left) and one line per running trial
(its searched values, epoch, progress, running loss, last EER, ETA). On a terminal it is redrawn in place under
the event lines about once a second; in a log file or pipe it is printed every `LOG_EVERY_S` when it changed."""

from __future__ import annotations

import heapq
import math
import time
from typing import Any, Callable, Mapping, Sequence

TERMINAL_EVERY_S = 1.0
LOG_EVERY_S = 30.0


class LiveView:
    """What the launch's progress callback knows of its trials, with the positions the trials post
    (`study.launch.live_board`), turned into lines for `show` (returns False when it cannot redraw in place:
    the lines are then handed to `log` as one block)."""

    def __init__(self, total: int, concurrency: int, read_posts: Callable[[], Mapping[str, dict[str, Any]]],
                 show: Callable[[list[str]], bool], log: Callable[[list[str]], None], clock: Callable[[], float] = time.monotonic):
        self.total, self.concurrency = total, max(concurrency, 1)
        self.read_posts, self.show, self.log, self.clock = read_posts, show, log, clock
        self.started = clock()
        self.running: dict[str, tuple[str, float]] = {}  # trial -> (searched values, start)
        self.eers: dict[str, float] = {}
        self.durations: list[float] = []
        self.done = 0
        self.shown_at = -math.inf
        self.logged: list[str] = []

    @property
    def pending(self) -> int:
        """Trials not started yet."""
        return max(self.total - self.done - len(self.running), 0)

    def trial_started(self, trial_id: str, described: str) -> None:
        self.running[trial_id] = (described, self.clock())

    def trial_result(self, trial_id: str, eer: float | None) -> None:
        if eer is not None:
            self.eers[trial_id] = eer

    def trial_ended(self, trial_id: str, finished: bool) -> None:
        """A trial completed, failed or was stopped (`finished`: its time is a trial's duration)."""
        _, start = self.running.pop(trial_id, ("", self.clock()))
        self.done += 1
        if finished:
            self.durations.append(self.clock() - start)

    def tick(self) -> None:
        """Called often (every step of Tune's loop): reads the board and shows the view when it is due."""
        now = self.clock()
        if now - self.shown_at < TERMINAL_EVERY_S:
            return
        lines = self.lines(self.read_posts(), now)
        if self.show(lines):
            self.shown_at = now
            return
        if now - self.shown_at >= LOG_EVERY_S and lines[1:] != self.logged[1:]:
            self.log(lines)
            self.shown_at, self.logged = now, lines

    def lines(self, posts: Mapping[str, dict[str, Any]], now: float) -> list[str]:
        """The header and one line per running trial, searched values aligned."""
        etas = {t: p["eta_s"] for t, p in posts.items() if t in self.running and p.get("eta_s") is not None}
        header = (f"{self.done}/{self.total} done, {len(self.running)} running, {self.pending} pending; "
                  f"{clock_time(now - self.started)} elapsed")
        left = self.time_left(etas, now)
        if left is not None:
            header += f", about {clock_time(left)} left"
        width = max((len(d) for d, _ in self.running.values()), default=0)
        rows = [f"  {trial_id}  {described:<{width}}  {position(posts.get(trial_id), self.eers.get(trial_id))}"
                for trial_id, (described, _) in sorted(self.running.items())]
        return [header, *rows]

    def time_left(self, etas: Mapping[str, float], now: float) -> float | None:
        """Until the last trial ends: the running trials' ETAs, then the pending trials, each lasting the mean
        duration of the finished ones (or the running ones' projected durations), on `concurrency` slots."""
        pending = self.pending
        projected = [now - self.running[t][1] + eta for t, eta in etas.items()]
        typical = self.durations or projected
        if len(etas) < len(self.running) or (pending and not typical):
            return None
        return schedule_end(list(etas.values()), pending, sum(typical) / len(typical) if typical else 0.0,
                            self.concurrency)


def schedule_end(busy: Sequence[float], pending: int, duration: float, slots: int) -> float:
    """When the last of `pending` jobs of `duration` ends, started as soon as one of `slots` frees (`busy`: the
    time left of the jobs running now)."""
    free = sorted([*busy, *[0.0] * max(slots - len(busy), 0)])
    heapq.heapify(free)
    for _ in range(pending):
        heapq.heappush(free, heapq.heappop(free) + duration)
    return max(free, default=0.0)


def position(post: dict[str, Any] | None, eer: float | None) -> str:
    """Where one trial is: 'epoch 3/10  42%  loss 6.512  EER 44.91  ETA 1:05' (what is known of it)."""
    if eer is None and post is not None:
        eer = post.get("eer")
    last = f"EER {eer:.2f}" if eer is not None else "EER -"
    if post is None or post.get("phase") == "starting":
        return f"starting  {last}"
    where = f"epoch {post['epoch']}/{post['epochs']}"
    if post.get("phase") in ("evaluating", "finishing"):
        where += f"  {post['phase']}"
    else:
        where += f"  {100 * post['step'] / max(post['steps'], 1):3.0f}%"
    loss = f"  loss {post['loss']:.3f}" if post.get("loss") is not None else ""
    eta = f"  ETA {clock_time(post['eta_s'])}" if post.get("eta_s") is not None else ""
    return f"{where}{loss}  {last}{eta}"


def clock_time(seconds: float) -> str:
    """'4:05' (minutes:seconds), '1:02:03' from an hour on."""
    total = int(round(max(seconds, 0.0)))
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
