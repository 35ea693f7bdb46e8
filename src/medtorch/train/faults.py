"""A test hook that holds a training process at a named point so a test can kill it there.

A plain ``kill -9`` lands wherever the process happens to be; the fault-injection tests
need it to land *inside* a checkpoint write or *between* two checkpoint files. With

    MEDTORCH_TEST_PAUSE_AT=<point>[:<file name>][@<n>]
    MEDTORCH_TEST_PAUSE_MARKER=<path>

the process writes the marker file and waits the n-th time (default the first) it reaches
``point`` (for file points: writing that file), and the test kills it once the marker
exists (a SIGINT / SIGTERM ends the wait, so the graceful stop can be tested too). Points: ``batch`` (after a training step), ``checkpoint_write`` (half a file's bytes
written to its temporary file), ``between_files`` (``last.pt`` replaced, the best-weights
files not yet), ``predict`` (the trainer predicting, i.e. the final scoring). Without the
variable this is one dictionary look-up.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

ENV, MARKER_ENV = "MEDTORCH_TEST_PAUSE_AT", "MEDTORCH_TEST_PAUSE_MARKER"
_seen: Counter[str] = Counter()


def pause(point: str, path: Path | None = None) -> None:
    """Sleep here (after writing the marker) if ``MEDTORCH_TEST_PAUSE_AT`` names this point."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    name, _, nth = spec.partition("@")
    if name not in (point, f"{point}:{path.name}" if path is not None else point):
        return
    _seen[name] += 1
    if _seen[name] != int(nth or 1):
        return
    marker = os.environ.get(MARKER_ENV)
    if marker:
        Path(marker).write_text(f"{point} {path or ''}\n")
    from medtorch.train import signals

    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline and not signals.pending():
        time.sleep(0.05)  # the test kills the process here, or signals it to stop
