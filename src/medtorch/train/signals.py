"""SIGINT and SIGTERM stop training at a safe point, with the command that resumes it.

Schedulers and preemption send SIGTERM; Ctrl-C sends SIGINT. Inside :func:`stop_requests`
the first of either only sets a flag: a checkpoint write in progress always completes, and
the loop checks the flag after every training step (every epoch under torchrun, where all
processes must stop together). The trainer then raises :class:`TrainingInterrupted`, whose
message names the run folder and the exact ``medtorch train --resume`` command; the last
finished epoch is already in ``checkpoints/last.pt`` and the partial epoch is discarded, so
the resumed run ends exactly as an unbroken one. A second signal stops at once.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

EXIT_CODES: dict[int, int] = {int(signal.SIGINT): 130, int(signal.SIGTERM): 143}


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal; ``exit_code`` is 128 + the signal number."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class StopRequest:
    """Set by the handler: the signal received (None while none was)."""

    signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None


_active: list[StopRequest] = []  # the requests of the blocks now open (innermost last)


def pending() -> bool:
    """True when a stop was requested inside an open :func:`stop_requests` block."""
    return any(r.requested for r in _active)


@contextlib.contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """Within the block, SIGINT / SIGTERM set the returned flag instead of stopping the
    process (a second one raises :class:`TrainingInterrupted` at once). Outside the main
    thread, where Python cannot install handlers, signals keep their usual effect."""
    req = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield req
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if req.requested:
            raise TrainingInterrupted(
                f"stopped at once by a second {signal.Signals(signum).name}; the last "
                "checkpoint on disk is intact", EXIT_CODES.get(signum, 128 + signum)
            )  # fmt: skip
        req.signum = signum

    previous = {s: signal.signal(s, handler) for s in EXIT_CODES}
    _active.append(req)
    try:
        yield req
    finally:
        _active.remove(req)
        for s, h in previous.items():
            signal.signal(s, h)


def resume_command(run_dir: Path) -> str:
    """The exact shell command that continues the run in ``run_dir``."""
    return f"medtorch train --resume {shlex.quote(str(run_dir))}"


def interrupted(
    req: StopRequest, run_dir: Path | None, done: int, max_epochs: int
) -> TrainingInterrupted:
    """The exception (and its one-line message) for a stop after ``done`` finished epochs."""
    assert req.signum is not None
    name = signal.Signals(req.signum).name
    if run_dir is None:
        msg = f"stopped by {name} after {done} of {max_epochs} epochs (no run folder to resume)"
    elif done == 0:
        msg = (f"stopped by {name} before the first epoch finished (nothing to keep yet); "
               f"start it again in the same folder with: {resume_command(run_dir)}")  # fmt: skip
    else:
        msg = (f"stopped by {name} after epoch {done} of {max_epochs} (saved in "
               f"{Path(run_dir) / 'checkpoints' / 'last.pt'}); continue with: "
               f"{resume_command(run_dir)}")  # fmt: skip
    return TrainingInterrupted(msg, EXIT_CODES.get(req.signum, 128 + req.signum))
