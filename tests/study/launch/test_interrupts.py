"""The driver's signal handling and tracking watch, with real signals and a real socket."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from study.launch.interrupts import Interrupted, Interrupts
from study.launch.outage import TrackingWatch


def test_outside_fit_a_signal_stops_at_once_with_its_exit_status():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as raised:
        with Interrupts() as interrupts:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs between bytecodes: never reached
    assert raised.value.code == 143 and interrupts.code == 143 and "SIGTERM" in interrupts.reason
    assert signal.getsignal(signal.SIGTERM) is before, "the previous handler (Ray's) is put back"


def test_while_fitting_the_first_signal_asks_tune_to_stop_and_a_second_stops_at_once():
    asked = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: asked.append("tune stops"))  # Tune's handler in fit
    try:
        with Interrupts() as interrupts:
            interrupts.fitting = True
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
            assert asked == ["tune stops"] and interrupts.code == 130
            assert os.environ["TUNE_DISABLE_SIGINT_HANDLER"] == "1"
            with pytest.raises(Interrupted):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
            assert interrupts.code == 130, "the first signal decides the exit status"
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_a_tracking_server_down_past_the_limit_stops_the_launch_once():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stopped, lines = [], []
    done = threading.Event()

    def stop(reason):
        stopped.append(reason)
        done.set()

    started = time.monotonic()
    with TrackingWatch(f"http://127.0.0.1:{port}", limit_s=1.0, stop=stop, interval_s=0.2, log=lines.append):
        assert done.wait(10)
    assert 1.0 <= time.monotonic() - started < 5
    assert len(stopped) == 1 and "unreachable for" in stopped[0]
    assert any("unreachable; trials go on" in line for line in lines)


def test_a_file_store_is_not_watched():
    with TrackingWatch("sqlite:///x.db", limit_s=0.1, stop=lambda r: pytest.fail(r), interval_s=0.05) as watch:
        time.sleep(0.3)
    assert not watch._thread.is_alive()
