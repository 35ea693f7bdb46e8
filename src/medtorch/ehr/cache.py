"""A Parquet cache of converted events and built samples.

An entry's key is a SHA-256 of: :data:`~medtorch.ehr.schema.EHR_CACHE_VERSION`, what is
built (``kind``), its configuration (reader/task parameters as JSON) and each source
file's relative path, size and ``mtime_ns``. A changed source file or configuration gives
another key, so it is rebuilt; an entry whose ``meta.json`` does not carry the current
version (written by an older medtorch) is rebuilt, never read. Entries are written to a
temporary folder and renamed into place, so a crash never leaves half an entry.

The cache lives under ``cache_dir`` (default: the user cache folder,
``platformdirs.user_cache_dir("medtorch")/ehr``), never in the data folder, which may be
read-only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import platformdirs
import polars as pl

from medtorch.ehr import schema as S


def default_cache_dir() -> Path:
    """``platformdirs.user_cache_dir("medtorch")/ehr``."""
    return Path(platformdirs.user_cache_dir("medtorch")) / "ehr"


def source_files(root: Path | str) -> list[Path]:
    """Every file under ``root`` (or ``root`` itself when it is a file)."""
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file())


def fingerprint(files: Iterable[Path], root: Path | str | None = None) -> list[list[Any]]:
    """``[relative path, size, mtime_ns]`` of each file."""
    out = []
    for path in files:
        st = path.stat()
        name = (
            str(path.relative_to(root)) if root is not None and Path(root).is_dir() else path.name
        )
        out.append([name, st.st_size, st.st_mtime_ns])
    return sorted(out)


def cache_key(kind: str, config: dict[str, Any], files: list[list[Any]]) -> str:
    """The hex key of one entry (16 characters are plenty for a cache folder name)."""
    blob = json.dumps(
        {"version": S.EHR_CACHE_VERSION, "kind": kind, "config": config, "files": files},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached(
    kind: str,
    config: dict[str, Any],
    files: list[list[Any]],
    build: Callable[[], tuple[dict[str, pl.DataFrame], dict[str, Any]]],
    cache_dir: Path | str | None = None,
) -> tuple[dict[str, pl.DataFrame], dict[str, Any], bool]:
    """Frames and a JSON-able info dict from the cache, or from ``build()`` (then stored).

    Returns ``(frames, info, hit)``; ``hit`` is True when the cache was read.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = cache_key(kind, config, files)
    entry = root / f"{kind}-{key}"
    meta_path = entry / "meta.json"
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            meta = {}
        if meta.get("version") == S.EHR_CACHE_VERSION and meta.get("key") == key:
            frames = {name: pl.read_parquet(entry / f"{name}.parquet") for name in meta["frames"]}
            return frames, meta["info"], True
    frames, info = build()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=root))
    try:
        for name, frame in frames.items():
            frame.write_parquet(tmp / f"{name}.parquet", compression="lz4", statistics=False)
        meta = {
            "version": S.EHR_CACHE_VERSION,
            "key": key,
            "kind": kind,
            "config": config,
            "frames": list(frames),
            "info": info,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, default=str, indent=1))
        if entry.exists():
            shutil.rmtree(entry)
        os.replace(tmp, entry)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return frames, info, False
