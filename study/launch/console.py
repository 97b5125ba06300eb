"""The driver's console: colour codes reach terminals only, not log files or pipes (Ray colours the prefixes of
the worker lines it forwards whatever stdout is); Ray's banners, hints and internal warnings only with --verbose;
on a terminal, the live view of running trials kept under the lines written."""

from __future__ import annotations

import re
import shutil
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


LOCK = threading.RLock()
"""One lock for both consoles: Ray's log monitor thread prints worker lines beside the main thread, and a write to
either stream erases and redraws the view on the terminal."""


class QuietConsole:
    """A text stream that drops whole lines matching `RAY_NOISE` (unless `keep_noise`; a partial line waits for its
    end) and, unless `stream` is a terminal, colour codes. On a terminal it keeps the live view (`show_view`) at
    the bottom: every write erases it, writes, and redraws it."""

    def __init__(self, stream: TextIO, keep_noise: bool = False):
        self.stream = stream
        self.keep_noise = keep_noise
        self.plain = not stream.isatty()
        self.pending = ""

    def write(self, text: str) -> int:
        with LOCK:
            lines = (self.pending + text).split("\n")
            self.pending = lines.pop()
            self._emit("".join(line + "\n" for line in lines if self.keep_noise or not is_noise(line)))
        return len(text)

    def flush(self) -> None:
        with LOCK:
            if self.pending and not VIEW.lines and (self.keep_noise or not is_noise(self.pending)):
                self._emit(self.pending)  # a partial line, unless the view is drawn under it
                self.pending = ""
        self.stream.flush()

    def isatty(self) -> bool:
        return not self.plain

    def _emit(self, text: str) -> None:
        if not text:
            return
        if self.plain:
            self.stream.write(ANSI.sub("", text))
            return
        VIEW.erase()
        self.stream.write(text)
        self.stream.flush()
        VIEW.draw()

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


class TerminalView:
    """Lines kept at the bottom of the terminal, under everything written (cut to its width: a wrapped line
    would not be erased)."""

    def __init__(self):
        self.lines: list[str] = []
        self.drawn = 0
        self.stream: TextIO | None = None

    def show(self, stream: TextIO, lines: list[str]) -> None:
        with LOCK:
            self.erase()
            self.stream, self.lines = stream, list(lines)
            self.draw()

    def erase(self) -> None:
        if self.drawn and self.stream is not None:
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")  # up to the view's first line, clear to the end
            self.stream.flush()
        self.drawn = 0

    def draw(self) -> None:
        if not self.lines or self.stream is None:
            return
        width = max(shutil.get_terminal_size().columns - 1, 20)
        self.stream.write("".join(line[:width] + "\n" for line in self.lines))
        self.stream.flush()
        self.drawn = len(self.lines)


VIEW = TerminalView()


def show_view(lines: list[str]) -> bool:
    """Keep `lines` at the bottom of the terminal (replacing the view drawn before) when stdout is a terminal
    console; False (nothing shown) when it is a file or pipe."""
    console = sys.stdout
    if not isinstance(console, QuietConsole) or console.plain:
        return False
    VIEW.show(console.stream, lines)
    return True


def clear_view() -> None:
    """Take the view off the terminal."""
    with LOCK:
        VIEW.erase()
        VIEW.lines = []


def is_noise(line: str) -> bool:
    """Whether a console line is one of `RAY_NOISE`."""
    plain = ANSI.sub("", line)
    return any(pattern.search(plain) for pattern in RAY_NOISE)


def quiet_console(verbose: bool) -> None:
    """sys.stdout and sys.stderr as `QuietConsole`s: without Ray's noise unless `verbose`; plain text wherever
    not a terminal."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if isinstance(stream, QuietConsole):
            stream.keep_noise = verbose
            continue
        setattr(sys, name, QuietConsole(stream.stream if isinstance(stream, PlainText) else stream, keep_noise=verbose))
