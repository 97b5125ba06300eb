"""The driver's console: colour codes reach terminals only, not log files or pipes (Ray colours the prefixes of
the worker lines it forwards whatever stdout is)."""

from __future__ import annotations

import sys
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
