"""SIGINT and SIGTERM stop a launch the same way: Tune saves its state and returns, the driver marks what did not
finish as interrupted, shuts Ray down and exits 130 / 143, and `--resume` continues from the last checkpoints.

Ray installs its own SIGTERM handler in the driver when it starts (it aborts the process), and Tune installs a
SIGINT handler for the duration of `fit`. `Interrupts` is installed after Ray starts and replaces both: Tune's
handler is disabled, and its SIGUSR1 handler (which does the same: stop, save the experiment state, return) is
what the first signal sets off. A second signal, or a signal outside `fit`, raises `Interrupted` at once.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; `code` is the exit status it calls for (128 + the signal number)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.code = 128 + signum


class Interrupts:
    """The driver's SIGINT/SIGTERM handling while a launch runs (a context manager; main thread only)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.reason = ""
        self._code = 0
        self.fitting = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "Interrupts":
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # read by Tune when `fit` starts
        logging.getLogger("ray.tune.tune").addFilter(_drop_tunes_own_hints)
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @property
    def code(self) -> int:
        """The exit status the stop calls for: 128 + the signal number, or what `stop` was given."""
        return self._code

    def stop(self, reason: str, code: int) -> None:
        """Stop the launch as a signal would (from any thread, while fitting), saying why, exiting `code`."""
        if self.signum is None and self.fitting and _tune_listens():
            self.signum, self.reason, self._code = signal.SIGUSR1, reason, code
            print(f"{reason}: stopping; running trials keep their last checkpoint", file=sys.stderr, flush=True)
            signal.raise_signal(signal.SIGUSR1)  # Tune's interrupt handler (main thread): save the state, return

    def _handle(self, signum: int, frame) -> None:
        first = self.signum is None
        if first:
            self.signum, self._code = signum, 128 + signum
            self.reason = f"{signal.Signals(signum).name} received"
        if first and self.fitting and _tune_listens():
            print(f"{self.reason}: stopping; running trials keep their last checkpoint "
                  f"(send it again to stop at once)", file=sys.stderr, flush=True)
            signal.raise_signal(signal.SIGUSR1)  # Tune's interrupt handler: save the experiment state, return
            return
        raise Interrupted(signum)

def _tune_listens() -> bool:
    """Whether Tune's interrupt handler is installed (from the start of `fit`; the default would kill us)."""
    return callable(signal.getsignal(signal.SIGUSR1))


def _drop_tunes_own_hints(record: logging.LogRecord) -> bool:
    """Tune's messages on an interrupt name its Python API (`Tuner.restore(...)`); the driver says how to resume."""
    message = str(record.msg)
    return not message.startswith(("Stop signal received", "Experiment has been interrupted"))
