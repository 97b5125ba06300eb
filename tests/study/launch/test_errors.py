"""One readable line for errors Ray wrapped; a console without colour codes in files and without Ray's noise."""

from __future__ import annotations

import io

from study.launch.console import PlainText, QuietConsole
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


RAY_CONSOLE = """2026-11-29 18:51:47,333\tWARNING authentication_token_setup.py:85 -- Token authentication is enabled for this Ray cluster.
2026-11-29 18:51:50,569\tINFO worker.py:2029 -- Started a local Ray instance. View the dashboard at http://127.0.0.1:8265
Ray: local instance on 127.0.0.1, 1 node(s), 2 CPU(s), 0 GPU(s)
2026/11/29 18:51:52 INFO mlflow.store.db.utils: Creating initial MLflow database tables...
2026-11-29 18:51:53,425\tWARNING tune.py:819 -- You have passed a `SearchGenerator` instance as the `search_alg`, but `max_concurrent_trials` requires a `Searcher` instance`.
╭──────────────────────────────────────╮
│ Configuration for experiment     x   │
╰──────────────────────────────────────╯

View detailed results here: /r/x
To visualize your results with TensorBoard, run: `tensorboard --logdir /tmp/ray/x`
[I 2026-11-29 20:24:10,264] A new study created in memory with name: optuna
[00:03] trial f1761_00000 started: margin=0, seed=1
2026-11-29 20:24:34,182\tINFO tune.py:1007 -- Wrote the latest version of all result files and experiment state to '/r/x'
\x1b[36m(TrainController pid=13500)\x1b[0m [2026-11-29 14:00:15,908 E 13500 13536] core_worker.cc:2465: Actor with class name: 'PreemptionWatcher' and ID: '6dcc' has constructor arguments in the object store and max_restarts > 0.
\x1b[36m(raylet)\x1b[0m A worker died or was killed while executing a task by an unexpected system error.
(train_driver pid=19953) epoch   1/30  loss 4.6936  lr 2.00e-03  32.1 utt/s  30s
trial f1761_00001 failed: NonFiniteLossError: loss is nan at epoch 3
"""
KEPT = """Ray: local instance on 127.0.0.1, 1 node(s), 2 CPU(s), 0 GPU(s)

[00:03] trial f1761_00000 started: margin=0, seed=1
(raylet) A worker died or was killed while executing a task by an unexpected system error.
(train_driver pid=19953) epoch   1/30  loss 4.6936  lr 2.00e-03  32.1 utt/s  30s
trial f1761_00001 failed: NonFiniteLossError: loss is nan at epoch 3
"""


def test_the_quiet_console_drops_ray_s_banners_and_internals_and_keeps_errors_and_ours():
    target = io.StringIO()
    stream = QuietConsole(target)
    for piece in (RAY_CONSOLE[:100], RAY_CONSOLE[100:101], RAY_CONSOLE[101:]):  # lines arrive in pieces
        assert stream.write(piece) == len(piece)
    stream.write("a last line without its end")
    stream.flush()
    assert target.getvalue() == KEPT + "a last line without its end"
    assert not stream.isatty()
