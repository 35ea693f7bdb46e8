"""Where datasets live: ``--data-dir``, else ``$MEDTORCH_DATA``, else the user cache.

Each dataset sits in its own folder under the data dir, named as in the registry
(``<data_dir>/mitdb/100.dat``).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def resolve_data_dir(cli_value: str | None = None) -> Path:
    """The data dir: ``cli_value`` (``--data-dir``), else ``$MEDTORCH_DATA``, else
    ``platformdirs.user_cache_dir("medtorch")/data``.

    >>> str(resolve_data_dir("/tmp/x"))
    '/tmp/x'
    """
    if cli_value:
        return Path(cli_value).expanduser()
    env = os.environ.get("MEDTORCH_DATA")
    if env:
        return Path(env).expanduser()
    return default_data_dir()


def default_data_dir() -> Path:
    """The data dir used when neither ``--data-dir`` nor ``$MEDTORCH_DATA`` is given."""
    return Path(platformdirs.user_cache_dir("medtorch")) / "data"


def data_dir_was_given(data_dir: Path | str | None) -> bool:
    """True unless ``data_dir`` is the default (no ``--data-dir``, ``data.data_dir`` or
    ``$MEDTORCH_DATA``): a task with a bundled copy may fall back to it only then, since a
    folder the user named must hold the data (else a typo trains on other data silently)."""
    if data_dir is None:
        return False
    return bool(os.environ.get("MEDTORCH_DATA")) or Path(data_dir) != default_data_dir()


def dataset_dir(data_dir: Path | str, folder: str) -> Path:
    """The folder of one dataset under ``data_dir``."""
    return Path(data_dir) / folder


def portable_path(path: Path | str, data_dir: Path | str | None = None) -> str:
    """``path`` as results files write it down, free of one machine's folders: under the
    data dir as ``$MEDTORCH_DATA/...``, under the working directory relative to it, else
    its last two parts (``.../parent/name``, e.g. a runs folder and a run).

    >>> portable_path("/data/x/mitdb/100", data_dir="/data/x")
    '$MEDTORCH_DATA/mitdb/100'
    >>> portable_path("/elsewhere/runs_ecg/af_s0", data_dir="/data/x")
    '.../runs_ecg/af_s0'
    """
    p = Path(path).expanduser().absolute()
    for root, shown in ((Path(data_dir or resolve_data_dir()), "$MEDTORCH_DATA"),
                        (Path.cwd(), "")):  # fmt: skip
        try:
            rel = p.relative_to(root.expanduser().absolute())
        except ValueError:
            continue
        return f"{shown}/{rel}" if shown else str(rel)
    return ".../" + "/".join(p.parts[-2:])


def portable_command(args: list[str], data_dir: Path | str | None = None) -> str:
    """A command line to write into a results file: every argument that is an existing
    file or folder is given as :func:`portable_path` writes it."""
    return " ".join(portable_path(a, data_dir) if a.startswith("/") and Path(a).exists()
                    else a for a in args)  # fmt: skip
