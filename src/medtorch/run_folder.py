"""Reading a run folder back, and where a command may write.

``evaluate``, ``predict``, ``export`` and ``ecg-score`` read what ``medtorch train`` wrote
(``config.yaml``, ``model.json``, ``normalizer.json``, ``cohort.json``, ``splits.json``,
``metrics.json``). A missing or damaged file is one line naming it, never a ``KeyError``
or ``JSONDecodeError`` traceback. A run is *finished* when ``metrics.json`` exists: it is
written after the final scoring, so a run stopped earlier (killed, interrupted, failed)
has checkpoints but no metrics, and is refused rather than used as if it were complete.

Output paths are checked before any work: never inside a run's ``checkpoints/`` or over a
file a command reads, never a folder where a file goes (or the reverse), and a folder that
cannot be written is named at once instead of after minutes of computation.
"""

from __future__ import annotations

import csv
import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from medtorch.errors import ConfigError, DataError

# what `medtorch train` writes into a run folder (checkpoints/ aside)
RUN_FILES = ("config.yaml", "cohort.json", "splits.json", "normalizer.json", "model.json",
             "history.csv", "metrics.json", "predictions_valid.csv", "predictions_test.csv",
             "report.html")  # fmt: skip
OUTPUT_SUFFIXES = (".csv", ".json", ".onnx")  # what the commands write: may be replaced
_RETRAIN = "train the run again, or restore the file from a copy of the run folder"


def read_json(path: Path, what: str = "JSON") -> Any:
    """Parse a run folder's JSON file; missing, unreadable or invalid is a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"expected {path.name} in the run folder, got no such file in {path.parent}; "
            "pass a folder written by `medtorch train` (or restore the file)"
        )
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"expected valid {what}, got {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0]} in {path}; {_RETRAIN}") from None  # fmt: skip
    except OSError as exc:
        raise DataError(f"expected a readable file, got {exc.strerror or exc} in {path}; "
                        "check its permissions") from None  # fmt: skip


def _field_error(path: Path, key: str, expected: str, got: Any) -> DataError:
    shown = repr(got) if len(repr(got)) < 60 else type(got).__name__
    return DataError(f"expected {expected}, got {shown} in {path} key {key!r}; {_RETRAIN}")


def read_model_spec(run_dir: Path) -> dict[str, Any]:
    """``model.json``: name, params, hints (shapes), class_names and inputs, each checked."""
    path = Path(run_dir) / "model.json"
    spec = read_json(path, "model JSON")
    if not isinstance(spec, dict):
        raise _field_error(path, "(top level)", "a JSON object", spec)
    want: dict[str, tuple[type, str]] = {
        "name": (str, "a model name"),
        "params": (dict, "an object of model parameters"),
        "hints": (dict, "an object of input shapes"),
        "class_names": (list, "a list of class names"),
        "inputs": (list, "a list of input names"),
    }
    for key, (typ, expected) in want.items():
        if not isinstance(spec.get(key), typ):
            raise _field_error(path, key, expected, spec.get(key))
    hints, classes = spec["hints"], spec["class_names"]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in hints.values()):
        raise _field_error(path, "hints", "positive integer shapes", hints)
    if not isinstance(hints.get("n_inputs"), int):
        raise _field_error(path, "hints.n_inputs", "the number of inputs", hints.get("n_inputs"))
    if len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise _field_error(path, "class_names", "two or more class names", classes)
    if not spec["inputs"] or not all(isinstance(i, str) for i in spec["inputs"]):
        raise _field_error(path, "inputs", "input names such as ['x']", spec["inputs"])
    return spec


def read_normalizer(run_dir: Path | str) -> Any:
    """``normalizer.json`` as a :class:`~medtorch.data.preprocess.Normalizer`, checked."""
    import numpy as np

    from medtorch.data.preprocess import KINDS, Normalizer

    path = Path(run_dir) / "normalizer.json"
    d = read_json(path, "normaliser JSON")
    if not isinstance(d, dict) or d.get("kind") not in KINDS:
        got = d.get("kind") if isinstance(d, dict) else d
        raise _field_error(path, "kind", f"one of {', '.join(KINDS)}", got)
    fitted = d["kind"] in ("standard", "global")
    for key in ("mean", "sd"):
        v = d.get(key)
        if not fitted:
            continue
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise _field_error(path, key, "an array of numbers", v) from None
        if (
            v is None
            or arr.size == 0
            or not np.isfinite(arr).all()
            or (key == "sd" and (arr <= 0).any())
        ):
            raise _field_error(path, key, "finite numbers (sd > 0)", v)
    return Normalizer.from_dict(d)


def read_run_config(run_dir: Path) -> Any:
    """``config.yaml`` of a run as a RunConfig; any problem names that file."""
    from medtorch.config import load_config, load_yaml, migrate_moved_keys

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(
            f"expected config.yaml in the run folder, got no such file in {run_dir}; "
            "pass a folder written by `medtorch train`"
        )
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping at the top of {path}, got {type(raw).__name__}; "
                          "train the run again")  # fmt: skip
    return load_config(migrate_moved_keys(raw), where=str(path))


def run_source(run_dir: Path) -> str:
    """The data source a run was trained on (``cohort.json`` ``source``), e.g. a file path
    or ``bundled: ...``: evaluate and export rebuild the split from the same source."""
    path = Path(run_dir) / "cohort.json"
    cohort = read_json(path, "cohort JSON")
    if not isinstance(cohort, dict):
        raise _field_error(path, "(top level)", "a JSON object", cohort)
    return str(cohort.get("source") or "")


def saved_test_ids(run_dir: Path) -> list[str] | None:
    """The test sample ids recorded in ``splits.json`` (None when it records none)."""
    path = Path(run_dir) / "splits.json"
    info = read_json(path, "split JSON")
    part = info.get("partitions", {}).get("test") if isinstance(info, dict) else None
    if not isinstance(part, dict):
        raise _field_error(path, "partitions.test", "the test partition", part)
    ids = part.get("sample_ids")
    if ids is not None and not isinstance(ids, list):
        raise _field_error(path, "partitions.test.sample_ids", "a list of sample ids", ids)
    return None if ids is None else [str(i) for i in ids]


def require_run_folder(run_dir: Path, option: str) -> Path:
    """``run_dir`` must be a folder holding config.yaml (written by ``medtorch train``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "a file" if run_dir.exists() else "no such folder"
        raise ConfigError(f"expected a run folder, got {str(run_dir)!r} ({what}) in {option}; "
                          "pass a folder written by `medtorch train`")  # fmt: skip
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(
            f"expected config.yaml in the run folder, got {str(run_dir)!r} without it in "
            f"{option}; pass a folder written by `medtorch train`"
        )
    return run_dir


def require_finished(run_dir: Path, option: str) -> Path:
    """Refuse a run folder whose training did not finish (no ``metrics.json``)."""
    run_dir = require_run_folder(run_dir, option)
    if (run_dir / "metrics.json").is_file():
        return run_dir
    epochs = 0
    hist = run_dir / "history.csv"
    if hist.is_file():
        try:
            with hist.open(newline="") as f:
                epochs = max(sum(1 for _ in csv.reader(f)) - 1, 0)
        except (OSError, UnicodeDecodeError, csv.Error):
            epochs = 0
    ckpt = "a checkpoint" if (run_dir / "checkpoints" / "best.pt").is_file() else "no checkpoint"
    raise ConfigError(
        f"expected a finished run (metrics.json is written when training ends), got an "
        f"interrupted run ({epochs} epoch(s) in history.csv, {ckpt}) in {option} {run_dir}; "
        f"finish it with `medtorch train --resume {run_dir}`"
    )


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def check_output_file(
    out: Path, option: str, runs: Iterable[Path] = (), inputs: Iterable[Path] = ()
) -> Path:
    """Check that ``out`` can be written as a new or replaced *file*, before any work.

    Refused, each in one line naming ``out``: a folder, a path under an existing file, a
    file inside a run's ``checkpoints/`` or one of a run's own files (``runs``), one of the
    command's ``inputs`` or, for an input given as a stem, an existing ``<stem>.<ext>``
    beside it (its own files; an earlier ``.csv`` / ``.json`` / ``.onnx`` output may be
    replaced), and a parent folder that cannot be created or written.
    """
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"expected a file path, got {str(out)!r} (a folder) in {option}; "
                          f"name a file, e.g. {out / 'out.csv'}")  # fmt: skip
    for run in runs:
        run = Path(run)
        if _inside(out, run / "checkpoints") or any(_same(out, run / f) for f in RUN_FILES):
            raise ConfigError(
                f"expected an output path outside the run's own files, got {str(out)!r} "
                f"(part of run {run}) in {option}; write it elsewhere, e.g. predictions.csv"
            )
    for inp in inputs:
        inp = Path(inp)
        same = _same(out, inp) or (  # a stem's own file, not an earlier output beside it
            not inp.exists()
            and out.is_file()
            and out.suffix.lower() not in OUTPUT_SUFFIXES
            and _same(out.parent, inp.parent)
            and out.name.startswith(f"{inp.name}.")
        )
        if same or (inp.is_dir() and _inside(out, inp) and out.exists()):
            raise ConfigError(f"expected an output path that is not an input, got {str(out)!r} "
                              f"(an input of this command) in {option}; write it elsewhere")  # fmt: skip
    _check_parent_writable(out.parent, option, out)
    return out


def check_output_folder(out: Path, option: str) -> Path:
    """Check that ``out`` is, or can be created as, a writable folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"expected a folder, got {str(out)!r} (a file) in {option}; "
                          "pass a folder (it is created if missing)")  # fmt: skip
    _check_parent_writable(out, option, out)
    return out


def _check_parent_writable(folder: Path, option: str, out: Path) -> None:
    """``folder`` exists (or can be created) and is writable; else one line naming it.

    Writability is probed by creating (and removing) a temporary file in the nearest
    existing folder: permission bits alone do not tell (root, read-only mounts).
    """
    probe = Path(folder) if str(folder) else Path(".")
    while not probe.exists() and probe.parent != probe:  # the nearest existing ancestor
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(
            f"expected a folder at {str(probe)!r}, got a file in {option} {out}; "
            "pick a path whose parents are folders"
        )
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise ConfigError(
            f"expected a writable folder, got {str(probe)!r} ({exc.strerror or exc}) in "
            f"{option} {out}; pick a folder you can write to"
        ) from None
