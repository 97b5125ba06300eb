"""The live view of running trials: what a trial posts (position, ETA), the view's lines and time left, when it
is shown, and how a terminal console keeps it under the lines it writes."""

from __future__ import annotations

import io

import pytest

from study.launch import console
from study.launch.console import QuietConsole, clear_view, show_view
from study.launch.live_board import POST_EVERY_S, BoardPoster
from study.launch.live_view import LOG_EVERY_S, LiveView, clock_time, position, schedule_end


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recording(BoardPoster):
    """A poster with no board that keeps what it would post."""

    def __init__(self, clock):
        super().__init__("", "t1", clock)
        self.posts = []

    def _post(self, position):
        self.last_post = self.clock()
        self.posts.append({**position, "eer": self.eer})


def test_a_trial_posts_its_epoch_step_running_loss_and_an_eta_from_its_pace():
    clock = Clock()
    poster = Recording(clock)
    poster.start(epochs=3, epochs_done=1, eer=30.0)  # resumed after epoch 1
    assert poster.posts[-1] == {"epoch": 2, "epochs": 3, "step": 0, "steps": 0, "phase": "starting", "eer": 30.0}
    clock.now += 10.0
    poster.step(epoch=1, step=1, steps=4, loss=6.0, evaluating_next=True)  # 10 s per step so far
    assert poster.posts[-1]["loss"] == 6.0 and poster.posts[-1]["eta_s"] == pytest.approx(70.0)  # 7 steps left
    clock.now += POST_EVERY_S / 4
    poster.step(epoch=1, step=2, steps=4, loss=4.0, evaluating_next=True)
    assert len(poster.posts) == 2, "at most one post every POST_EVERY_S between epoch ends"
    clock.now += POST_EVERY_S
    poster.step(epoch=1, step=3, steps=4, loss=2.0, evaluating_next=True)
    assert poster.posts[-1]["loss"] == pytest.approx(4.0) and poster.posts[-1]["phase"] == "training"
    poster.step(epoch=1, step=4, steps=4, loss=0.0, evaluating_next=True)  # the last step is always posted
    assert poster.posts[-1]["phase"] == "evaluating" and poster.posts[-1]["step"] == 4
    poster.epoch_end({"epoch": 2, "loss": 3.0, "eer": 20.0})
    after = poster.posts[-1]
    assert (after["epoch"], after["step"], after["steps"], after["phase"], after["eer"]) == (3, 0, 4, "training", 20.0)
    assert after["eta_s"] == pytest.approx(4 * (clock.now - 100.0) / 4)
    poster.epoch_end({"epoch": 3, "loss": 2.0})
    assert poster.posts[-1]["phase"] == "finishing" and poster.posts[-1]["eta_s"] is None


def test_the_last_trial_ends_when_the_pending_ones_have_run_on_the_free_slots():
    assert schedule_end([10.0, 20.0], pending=3, duration=30.0, slots=2) == 70.0  # 10+30+30 on the first slot
    assert schedule_end([10.0], pending=0, duration=30.0, slots=4) == 10.0
    assert schedule_end([], pending=4, duration=5.0, slots=2) == 10.0
    assert schedule_end([], pending=0, duration=5.0, slots=2) == 0.0


def test_positions_and_clock_times_read_as_the_view_prints_them():
    assert clock_time(65) == "1:05" and clock_time(3723) == "1:02:03" and clock_time(-3) == "0:00"
    assert position(None, None) == "starting  EER -"
    post = {"epoch": 3, "epochs": 10, "step": 21, "steps": 50, "loss": 6.5123, "eta_s": 65.0, "phase": "training",
            "eer": 31.0}
    assert position(post, None) == "epoch 3/10   42%  loss 6.512  EER 31.00  ETA 1:05"
    assert position(post, 29.5) == "epoch 3/10   42%  loss 6.512  EER 29.50  ETA 1:05", "Tune's newest EER first"
    assert position({**post, "phase": "evaluating"}, None).startswith("epoch 3/10  evaluating  loss")


def test_the_view_lists_running_trials_and_the_time_left_on_the_study_s_slots():
    clock = Clock()
    posts = {}
    shown = []
    view = LiveView(total=5, concurrency=2, read_posts=lambda: posts, show=lambda lines: shown.append(lines) or True,
                    log=print, clock=clock)
    view.trial_started("a", "margin=0.1")
    clock.now += 100.0
    view.trial_ended("a", finished=True)  # a trial lasts 100 s
    view.trial_started("b", "margin=0.2, temperature=0.05")
    view.trial_started("c", "margin=0.3")
    posts.update(b={"epoch": 1, "epochs": 2, "step": 5, "steps": 10, "loss": 5.0, "eta_s": 30.0, "phase": "training"},
                 c={"epoch": 2, "epochs": 2, "step": 10, "steps": 10, "loss": 4.0, "eta_s": 10.0, "phase": "evaluating"})
    view.trial_result("c", 25.0)
    clock.now += 5.0
    view.tick()
    header, *rows = shown[-1]
    # slots free at 10 s and 30 s; the two pending trials of 100 s end at 110 s and 130 s
    assert header == "1/5 done, 2 running, 2 pending; 1:45 elapsed, about 2:10 left"
    assert rows == ["  b  margin=0.2, temperature=0.05  epoch 1/2   50%  loss 5.000  EER -  ETA 0:30",
                    "  c  margin=0.3                    epoch 2/2  evaluating  loss 4.000  EER 25.00  ETA 0:10"]
    del posts["b"]
    clock.now += 1.0
    view.tick()
    assert "left" not in shown[-1][0], "no time left while a running trial has not said where it is"


def test_without_a_terminal_the_view_is_logged_every_log_every_s_when_it_changed():
    clock = Clock()
    posts = {"a": {"epoch": 1, "epochs": 2, "step": 1, "steps": 10, "loss": 5.0, "eta_s": 90.0, "phase": "training"}}
    logged = []
    view = LiveView(total=1, concurrency=1, read_posts=lambda: posts, show=lambda lines: False, log=logged.append,
                    clock=clock)
    view.trial_started("a", "margin=0.1")
    view.tick()
    assert len(logged) == 1 and len(logged[0]) == 2, "the header and the trial's line, as one block"
    assert logged[0][0].startswith("0/1 done, 1 running") and "margin=0.1" in logged[0][1]
    clock.now += LOG_EVERY_S - 1
    view.tick()
    assert len(logged) == 1, "not before LOG_EVERY_S"
    clock.now += 1
    view.tick()
    assert len(logged) == 1, "not when only the clock moved"
    posts["a"] = {**posts["a"], "step": 5}
    clock.now += LOG_EVERY_S
    view.tick()
    assert len(logged) == 2 and "50%" in logged[-1][1]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_console_keeps_the_view_under_what_it_writes(monkeypatch):
    screen = Terminal()
    out = QuietConsole(screen)
    monkeypatch.setattr(console.sys, "stdout", out)
    monkeypatch.setenv("COLUMNS", "30")
    assert show_view(["header", "  a  " + "x" * 40])
    assert screen.getvalue() == "header\n  a  " + "x" * 24 + "\n", "cut to the terminal's width"
    out.write("[00:01] trial a done\n")
    assert screen.getvalue().endswith("\x1b[2F\x1b[J[00:01] trial a done\nheader\n  a  " + "x" * 24 + "\n")
    out.write("a partial")
    out.flush()
    assert "a partial" not in screen.getvalue(), "a partial line waits while the view is drawn under it"
    clear_view()
    assert screen.getvalue().endswith("\x1b[2F\x1b[J")
    out.flush()
    assert screen.getvalue().endswith("\x1b[2F\x1b[Ja partial")


def test_a_file_console_never_shows_the_view(monkeypatch):
    monkeypatch.setattr(console.sys, "stdout", QuietConsole(io.StringIO()))
    assert not show_view(["header"])
