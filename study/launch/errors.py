"""One readable line for an error that Ray may have wrapped several times, for the console and MLflow tags."""

from __future__ import annotations

import re

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit|Failed)(\([\w.]*\))?: .*")
DEATH = ("actor died", "worker died", "exited unexpectedly", "killed by", "node died", "was terminated")
LIMIT = 300


def one_line(error: BaseException | str) -> str:
    """Colour codes dropped; Ray's account of a dead worker when there is one; else the innermost raised
    exception's line (continued by the next line when it ends with ':'); else the first line. At most 300
    characters."""
    text = ANSI.sub("", error if isinstance(error, str) else str(error) or type(error).__name__)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    death = [line for line in lines if any(word in line.lower() for word in DEATH)]
    if death:
        return death[0][:LIMIT]
    raised = [i for i, line in enumerate(lines) if RAISED.match(line) and not line.startswith("ray.exceptions.")]
    index = raised[-1] if raised else 0
    found = lines[index] if lines else (error if isinstance(error, str) else type(error).__name__)
    while found.endswith(":") and index + 1 < len(lines):
        index += 1
        found = f"{found} {lines[index]}"
    return found[:LIMIT]
