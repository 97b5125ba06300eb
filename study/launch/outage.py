"""Watch the tracking server while a launch runs: trials keep training through an outage (their runs are written
in the background and their checkpoints keep every epoch), but when the server stays down past a limit the
launch stops resumably instead of starting more trials into the outage."""

from __future__ import annotations

import threading
import time
from typing import Callable

from study.tracking.store import TrackingError, check_reachable

EXIT_OUTAGE = 75
"""Exit status of a launch stopped by a tracking outage (EX_TEMPFAIL: try again later, with --resume)."""


class TrackingWatch:
    """A thread checking every `interval_s` that the server at `uri` accepts connections; says when it goes
    down and comes back, and calls `stop(reason)` once it has been down for `limit_s`. Nothing to watch for a
    file or SQLite store."""

    def __init__(self, uri: str, limit_s: float, stop: Callable[[str], None], interval_s: float = 5.0,
                 log: Callable[[str], None] = print):
        self.uri, self.limit_s, self.stop, self.interval_s, self.log = uri, limit_s, stop, interval_s, log
        self.down_since: float | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tracking-watch", daemon=True)

    def __enter__(self) -> "TrackingWatch":
        if self.uri.startswith(("http://", "https://")):
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self.interval_s):
            try:
                check_reachable(self.uri, timeout=min(3.0, self.interval_s))
            except TrackingError:
                now = time.monotonic()
                if self.down_since is None:
                    self.down_since = now
                    self.log(f"the tracking server {self.uri} is unreachable; trials go on and keep their metrics "
                             f"(sent when it is back); the study stops if it stays down {self.limit_s:.0f} s")
                elif now - self.down_since >= self.limit_s:
                    self.stop(f"the tracking server {self.uri} was unreachable for {now - self.down_since:.0f} s")
                    return
                continue
            if self.down_since is not None:
                self.log(f"the tracking server {self.uri} is back after {time.monotonic() - self.down_since:.0f} s")
                self.down_since = None
