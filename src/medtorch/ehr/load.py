"""Read a source once, cache it, and build samples from the cache.

``load_events`` converts a source (``mimic3``, ``mimic4``, ``meds`` folder, or a long
``events`` table with a column mapping) into the canonical event table and caches it as
Parquet (:mod:`medtorch.ehr.cache`); ``load_samples`` does the same for a task's samples.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from medtorch.ehr import cache as C
from medtorch.ehr.meds import read_event_table, read_meds
from medtorch.ehr.mimic import read_mimic3, read_mimic4
from medtorch.ehr.samples import Samples, build_samples
from medtorch.errors import ConfigError

SOURCES = ("mimic3", "mimic4", "meds", "events")


def _reader_config(source: str, config: dict[str, Any] | None) -> dict[str, Any]:
    allowed = {
        "mimic3": {"tables", "death_flag_without_time", "drug_code"},
        "mimic4": {"tables", "death_flag_without_time", "drug_code"},
        "meds": set(),
        "events": {"columns", "time_format"},
    }[source]
    cfg = dict(config or {})
    unknown = set(cfg) - allowed
    if unknown:
        raise ConfigError(
            f"expected reader options among {sorted(allowed)}, got {sorted(unknown)} in data "
            f"(source {source}); remove them"
        )
    if "tables" in cfg and cfg["tables"] is not None:
        cfg["tables"] = sorted(t.lower() for t in cfg["tables"])
    return cfg


def _source_files(source: str, path: Path, cfg: dict[str, Any]) -> list[list[Any]]:
    if source == "meds":
        files = [p for p in C.source_files(path) if p.suffix in (".parquet", ".json")]
    elif source in ("mimic3", "mimic4") and path.is_dir():
        wanted = set(cfg.get("tables") or []) | {"patients", "admissions"}
        files = [
            p
            for p in C.source_files(path)
            if not cfg.get("tables") or p.name.lower().split(".")[0] in wanted
        ]
    else:
        files = C.source_files(path)
    return C.fingerprint(files, path)


def load_events(
    source: str,
    path: Path | str,
    config: dict[str, Any] | None = None,
    *,
    cache_dir: Path | str | None = None,
    use_cache: bool = True,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The canonical events of a source and an info dict (reader report, cache key, hit).

    ``config``: the reader's options (``tables``, ``death_flag_without_time``,
    ``drug_code`` for MIMIC; ``columns``, ``time_format`` for a long event table).

    >>> events, info = load_events("mimic3", "$MEDTORCH_DATA/mimic3_demo")  # doctest: +SKIP
    """
    if source not in SOURCES:
        raise ConfigError(
            f"expected a source among {list(SOURCES)}, got {source!r} in data.source; pick one"
        )
    path = Path(path)
    cfg = _reader_config(source, config)

    def build() -> tuple[dict[str, pl.DataFrame], dict[str, Any]]:
        report: dict[str, Any] = {}
        ev: pl.DataFrame | pl.LazyFrame
        if source == "mimic3":
            ev = read_mimic3(path, report=report, **cfg)
        elif source == "mimic4":
            ev = read_mimic4(path, report=report, **cfg)
        elif source == "meds":
            ev = read_meds(path)
        else:
            ev = read_event_table(path, cfg.get("columns"), time_format=cfg.get("time_format"))
        assert isinstance(ev, pl.DataFrame)
        return {"events": ev}, {"report": report}

    if not use_cache:
        frames, info = build()
        return frames["events"], {**info, "cache_hit": False}
    files = _source_files(source, path, cfg)
    frames, info, hit = C.cached(f"events-{source}", cfg, files, build, cache_dir)
    key = C.cache_key(f"events-{source}", cfg, files)
    return frames["events"], {**info, "cache_hit": hit, "cache_key": key}


def load_samples(
    source: str,
    path: Path | str,
    task: str,
    params: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    *,
    cache_dir: Path | str | None = None,
    use_cache: bool = True,
) -> Samples:
    """The samples of ``task`` on a source, cached (keyed by the source files, the reader
    config, the task and its params, and the cache version)."""
    if not use_cache:
        events, _ = load_events(source, path, config, use_cache=False)
        return build_samples(events, task, params)
    path = Path(path)
    cfg = _reader_config(source, config)
    files = _source_files(source, path, cfg)
    key_cfg = {"reader": cfg, "source": source, "task": task, "params": params or {}}

    def build() -> tuple[dict[str, pl.DataFrame], dict[str, Any]]:
        events, _ = load_events(source, path, config, cache_dir=cache_dir)
        s = build_samples(events, task, params)
        return {"samples": s.frame}, {
            "task": s.task,
            "kind": s.kind,
            "label_type": s.label_type,
            "class_names": s.class_names,
            "cohort": s.cohort,
            "dims": s.dims,
            "params": s.params,
        }

    frames, info, hit = C.cached(f"samples-{task}", key_cfg, files, build, cache_dir)
    cohort = json.loads(json.dumps(info["cohort"]))
    cohort["cache_hit"] = hit
    return Samples(
        info["task"],
        info["kind"],
        info["label_type"],
        list(info["class_names"]),
        frames["samples"],
        cohort,
        {k: int(v) for k, v in info["dims"].items()},
        info["params"],
    )


def convert_to_meds(
    source: str,
    path: Path | str,
    out_dir: Path | str,
    config: dict[str, Any] | None = None,
    *,
    dataset_name: str | None = None,
) -> Path:
    """Read a source and write it as a MEDS folder (``medtorch data convert ... --to
    meds``): the events, ``metadata/codes.parquet`` with the D_* descriptions for MIMIC
    sources, and the source's ``subject_splits`` when it is a MEDS folder that has them.

    >>> convert_to_meds("mimic3", "$MEDTORCH_DATA/mimic3_demo", "runs/mimic3_meds")  # doctest: +SKIP
    """
    from medtorch.ehr.meds import read_subject_splits, write_meds
    from medtorch.ehr.mimic import mimic_codes

    path = Path(path)
    events, _ = load_events(source, path, config, use_cache=False)
    codes = None
    splits = None
    if source in ("mimic3", "mimic4"):
        codes = mimic_codes(path, version=3 if source == "mimic3" else 4)
    elif source == "meds":
        splits = read_subject_splits(path)
        codes_path = path / "metadata" / "codes.parquet"
        if codes_path.is_file():
            codes = pl.read_parquet(codes_path)
    return write_meds(
        events,
        out_dir,
        dataset_name=dataset_name or f"{source}:{path.name}",
        codes=codes,
        subject_splits=splits,
    )
