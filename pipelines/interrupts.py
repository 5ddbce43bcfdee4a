"""SIGTERM and SIGINT for `medlake run`: stop cleanly, whoever's code is running when they arrive.

Dagster replaces both handlers while it executes a run: an interrupt then fails the current step
(its partial output cleaned up as after a kill) and the run returns as failed. Left at that, the
next batch would start, and a service manager could not stop `medlake run`. So the signal numbers
are also written to a wakeup pipe (Python does that below any Python handler, Dagster's included),
and the runner looks at it after every Dagster run. Outside a Dagster run, the handler raises
`Interrupted` at once.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
    """A stop signal arrived; the process should exit with 128 + signo (143 for SIGTERM, 130 for SIGINT)."""

    def __init__(self, signo: int):
        super().__init__(signal.Signals(signo).name)
        self.signo = signo

    @property
    def exit_status(self) -> int:
        return 128 + self.signo


class Interrupts:
    """Installed for the duration of a `with` block in the main thread."""

    def __init__(self) -> None:
        self._seen: int | None = None

    def __enter__(self) -> Interrupts:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
        for s in STOP_SIGNALS:
            signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        signal.set_wakeup_fd(self._previous_fd)
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        os.close(self._read)
        os.close(self._write)

    def _handle(self, signo: int, _frame: FrameType | None) -> None:
        self._seen = self._seen or signo
        raise Interrupted(signo)

    def received(self) -> int | None:
        """The first stop signal that arrived so far (while Dagster's handlers were in place too)."""
        try:
            data = os.read(self._read, 512)
        except BlockingIOError:
            data = b""
        for signo in data:
            if signo in STOP_SIGNALS and self._seen is None:
                self._seen = signo
        return self._seen
