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
    return Path(platformdirs.user_cache_dir("medtorch")) / "data"


def dataset_dir(data_dir: Path | str, folder: str) -> Path:
    """The folder of one dataset under ``data_dir``."""
    return Path(data_dir) / folder
