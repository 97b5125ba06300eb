"""One readable line for errors Ray wrapped, and a console without colour codes in files."""

from __future__ import annotations

import io

from study.launch.console import PlainText
from study.launch.errors import one_line

RAY_TRACEBACK = """\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=18609, ip=127.0.0.1, repr=train_driver)
  File "/x/ray/tune/trainable/trainable.py", line 329, in train
    raise skipped from exception_cause(skipped)
ray.exceptions.RayTaskError(NonFiniteLossError): ray::RayTrainWorker.run()
trainables.loop.NonFiniteLossError: loss is nan at epoch 3, step 2; last checkpoint /r/epoch_0002
"""


def test_the_innermost_raised_line_without_colour_codes():
    assert one_line(RAY_TRACEBACK) == (
        "trainables.loop.NonFiniteLossError: loss is nan at epoch 3, step 2; last checkpoint /r/epoch_0002")


def test_a_dead_worker_is_named_as_such():
    text = ("Training failed due to worker errors:\n[Rank 0]\nray.exceptions.ActorDiedError: The actor died "
            "unexpectedly before finishing this task.\n\tclass_name: RayTrainWorker\n")
    assert one_line(text) == "ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task."


def test_a_line_ending_in_a_colon_takes_the_next_and_length_is_bounded():
    assert one_line(RuntimeError("Training failed due to controller error:\nplacement group timed out")) == (
        "Training failed due to controller error: placement group timed out")
    assert len(one_line(ValueError("x" * 1000))) == 300
    assert one_line(KeyError()) == "KeyError"


def test_plain_text_drops_escape_sequences_and_is_not_a_terminal():
    target = io.StringIO()
    stream = PlainText(target)
    text = "\x1b[36m(RayTrainWorker pid=1)\x1b[0m epoch 1\x1b[?25l"
    assert stream.write(text) == len(text)
    assert target.getvalue() == "(RayTrainWorker pid=1) epoch 1"
    assert not stream.isatty() and stream.getvalue() == target.getvalue()  # the rest is the wrapped stream's
