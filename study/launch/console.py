"""The driver's console: colour codes reach terminals only, not log files or pipes (Ray colours the prefixes of
the worker lines it forwards whatever stdout is); Ray's banners, hints and internal warnings only with --verbose."""

from __future__ import annotations

import re
import sys
import threading
from typing import TextIO

from study.launch.errors import ANSI


class PlainText:
    """A text stream that writes through to `stream` without ANSI escape sequences."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(ANSI.sub("", text))
        return len(text)

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def plain_unless_terminal() -> None:
    """Replace sys.stdout / sys.stderr by `PlainText` where they are not terminals."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, PlainText) and not stream.isatty():
            setattr(sys, name, PlainText(stream))


RAY_NOISE = tuple(re.compile(pattern) for pattern in (
    r"^[╭│├╰]",  # Tune's "Configuration for experiment" box
    r"^View detailed results here: ",
    r"^To visualize your results with TensorBoard",
    r"core_worker\.cc:\d+: Actor with class name: '\w+' .* has constructor arguments in the object store",
    r"WARNING tune\.py:\d+ -- You have passed a `SearchGenerator` instance",
    r"WARNING authentication_token_setup\.py:\d+ -- Token authentication is enabled",
    r"INFO worker\.py:\d+ -- (Started a local Ray instance|Connecting to existing Ray cluster|Connected to Ray)",
    r"INFO mlflow\.store\.db\.utils: ",
    r"WARNING mlflow\.pytorch: Saving pytorch model by Pickle",
    r"INFO tune\.py:\d+ -- Wrote the latest version of all result files",
    r"^\[I [\d-]+ [\d:,]+\] A new study created in memory",  # Optuna's logger, inside Tune's searcher
))
"""Lines a user cannot act on: Ray's and Tune's banners and hints, messages about Ray's own internals. Errors
(a failed trial, a dead worker, an unreachable store) match none of them."""


class QuietConsole:
    """A text stream that drops whole lines matching `RAY_NOISE` (a partial line waits for its end) and, unless
    `stream` is a terminal, colour codes."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.plain = not stream.isatty()
        self.pending = ""
        self.lock = threading.RLock()  # Ray's log monitor thread prints worker lines beside the main thread

    def write(self, text: str) -> int:
        with self.lock:
            lines = (self.pending + text).split("\n")
            self.pending = lines.pop()
            self._emit("".join(line + "\n" for line in lines if not is_noise(line)))
        return len(text)

    def flush(self) -> None:
        with self.lock:
            if self.pending and not is_noise(self.pending):
                self._emit(self.pending)
            self.pending = ""
        self.stream.flush()

    def isatty(self) -> bool:
        return not self.plain

    def _emit(self, text: str) -> None:
        if text:
            self.stream.write(ANSI.sub("", text) if self.plain else text)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def is_noise(line: str) -> bool:
    """Whether a console line is one of `RAY_NOISE`."""
    plain = ANSI.sub("", line)
    return any(pattern.search(plain) for pattern in RAY_NOISE)


def quiet_console(verbose: bool) -> None:
    """sys.stdout and sys.stderr without Ray's noise unless `verbose`; plain text wherever not a terminal."""
    if verbose:
        plain_unless_terminal()
        return
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, QuietConsole):
            setattr(sys, name, QuietConsole(stream.stream if isinstance(stream, PlainText) else stream))
