"""Writing run files so that a crash, a kill or a full disk never leaves a torn one.

Every file goes to ``<name>.tmp`` in the same folder, is flushed and ``fsync``-ed, then
renamed over the old one (``os.replace`` is atomic on POSIX and Windows), and the folder
itself is ``fsync``-ed so the rename survives a power cut. A reader therefore sees either
the previous complete file or the new complete file, never a mixture.

Operating-system errors while writing (a full disk, a read-only folder, no permission)
become one :class:`RunFileError` line naming the folder; the previous file stays intact.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from medtorch.errors import MedtorchError
from medtorch.train import faults

TMP_SUFFIX = ".tmp"


class RunFileError(MedtorchError):
    """A run file could not be written (disk full, permission, read-only folder)."""


_WHY = {
    errno.ENOSPC: "no space left on the disk",
    errno.EDQUOT: "the disk quota is used up",
    errno.EACCES: "no permission to write there",
    errno.EPERM: "no permission to write there",
    errno.EROFS: "a read-only file system",
}


def run_file_error(exc: OSError, path: Path) -> RunFileError:
    """The one-line error for an OS failure writing ``path``."""
    why = _WHY.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    return RunFileError(
        f"expected to write {path.name}, got {why!r} in {path.parent}; "
        "free space or fix the folder's permissions (files written before are intact), "
        "then resume the run"
    )


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename, fsync the folder)."""
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            half = len(data) // 2
            f.write(data[:half])
            faults.pause("checkpoint_write", path=path)  # test hook: a kill mid-write
            f.write(data[half:])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise run_file_error(exc, path) from None


def write_text(path: Path, text: str) -> None:
    """:func:`write_bytes` for UTF-8 text (JSON, CSV)."""
    write_bytes(path, text.encode("utf-8"))


def keep_previous(path: Path, previous: Path) -> None:
    """Make ``previous`` a copy of ``path`` before ``path`` is replaced (a hard link where the
    file system has them: no bytes copied). ``path`` exists throughout."""
    if not path.is_file():
        return
    tmp = previous.with_name(previous.name + TMP_SUFFIX)
    try:
        tmp.unlink(missing_ok=True)
        try:
            os.link(path, tmp)
        except OSError:  # no hard links here (some network or FAT file systems)
            write_bytes(tmp, path.read_bytes())
        os.replace(tmp, previous)
        fsync_dir(previous.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise run_file_error(exc, previous) from None


def clean_stale(folder: Path) -> list[Path]:
    """Remove ``*.tmp`` left in ``folder`` by a write that was killed; returns them."""
    stale = sorted(Path(folder).glob("*" + TMP_SUFFIX)) if Path(folder).is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
