"""The bad-input corpus: malformed inputs for every reader and entry point, as a table.

Each :class:`Case` builds its inputs in a fresh folder (tiny synthetic data written by the
case, or a fixture file under ``tests/fixtures/bad_inputs/``) and returns the command line a
new user would type. :func:`run_case` runs it through the real CLI (in-process
``medtorch.cli.main`` or, for ``subprocess=True``, ``python -m medtorch``) and records the
exit code, every line written to stderr (logging included), whether a traceback escaped and
whether anything under the data folder changed. ``tests/test_bad_inputs.py`` asserts on
each outcome; ``tests/bad_inputs_summary.py`` runs the same table and writes the
counts to ``benchmarks/BAD_INPUTS.md``.

Expected outcomes: ``error`` = exit code 2, stderr exactly one non-empty line, starting
``error:`` and containing the case's substring; ``warn`` = the command runs (exit 0) and
stderr holds a warning line with the substring (a class with no rows: see
``medtorch.data.splits``), never silence.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import os
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "bad_inputs"
FAST = [
    "--set",
    "trainer.max_epochs=1",
    "--set",
    "trainer.progress=false",
    "--set",
    "eval.n_bootstrap=0",
    "--set",
    "trainer.num_threads=1",
]
N_TIMES = 178


# ---- tiny synthetic data ---------------------------------------------------------------


def uci_rows(n: int = 60, classes: tuple[int, ...] = (1, 2, 3, 4, 5)) -> list[list[Any]]:
    """``n`` rows of the UCI layout: id ``X<chunk>.R<recording>``, X1..X178, y."""
    rng = np.random.default_rng(0)
    rows = []
    for r in range(n):
        y = classes[r % len(classes)]
        x = rng.normal(0, 20 + 40 * (y == 1), N_TIMES).round(1).tolist()
        rows.append([f"X{1 + r % 4}.R{r // 4}", *x, y])
    return rows


UCI_HEADER = ["", *[f"X{i}" for i in range(1, N_TIMES + 1)], "y"]


def write_uci(
    data: Path,
    rows: list[list[Any]] | None = None,
    header: list[str] | None = None,
    text: str | None = None,
) -> Path:
    """Write ``<data>/uci_epileptic_seizure/data.csv.gz`` (rows, or raw ``text``)."""
    path = data / "uci_epileptic_seizure" / "data.csv.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    if text is None:
        lines = [",".join(f'"{h}"' for h in (header or UCI_HEADER))]
        lines += [
            ",".join(f'"{c}"' if i == 0 else str(c) for i, c in enumerate(row))
            for row in (uci_rows() if rows is None else rows)
        ]
        text = "\n".join(lines) + "\n"
    with gzip.open(path, "wt") as f:
        f.write(text)
    return path


def signal_csv(
    path: Path, header: list[str] | None = None, rows: list[list[Any]] | None = None
) -> Path:
    """A predict-time signal CSV: id, X1..X178 (and what the case changes)."""
    header = header or ["id", *[f"X{i}" for i in range(1, N_TIMES + 1)]]
    if rows is None:
        rows = [[f"s{i}", *np.zeros(N_TIMES).tolist()] for i in range(3)]
    path.write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n")
    return path


def write_svmlight(path: Path, lines: list[str] | None = None) -> Path:
    rng = np.random.default_rng(1)
    if lines is None:
        lines = []
        for i in range(40):
            feats = sorted(rng.choice(np.arange(1, 21), 5, replace=False).tolist())
            lines.append(f"{i % 2} " + " ".join(f"{j}:{rng.random():.3f}" for j in feats))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


ECG_RECORDS = ("100", "101", "103")
ECG_FS = 360


def write_ecg_record(
    folder: Path, name: str, seconds: float = 60.0, ann_until_s: float | None = None
) -> Path:
    """A synthetic two-lead record (MLII, V1) with N and V beats every 0.8 s and its .atr."""
    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    n = int(seconds * ECG_FS)
    sig = np.zeros((n, 2))
    beats = np.arange(int(0.5 * ECG_FS), n - int(0.5 * ECG_FS), int(0.8 * ECG_FS))
    symbols = ["V" if k % 5 == 2 else "N" for k in range(len(beats))]
    t = np.arange(-20, 21)
    for b, s in zip(beats, symbols):
        width = 8.0 if s == "V" else 3.0
        sig[b + t, 0] += np.exp(-(t**2) / (2 * width**2)) * (1.5 if s == "V" else 1.0)
        sig[b + t, 1] -= 0.5 * np.exp(-(t**2) / (2 * width**2))
    wfdb.wrsamp(
        name,
        fs=ECG_FS,
        units=["mV", "mV"],
        sig_name=["MLII", "V1"],
        p_signal=sig,
        fmt=["212", "212"],
        write_dir=str(folder),
    )
    keep = beats < (ann_until_s or seconds) * ECG_FS
    wfdb.wrann(
        name,
        "atr",
        beats[keep],
        symbol=[s for s, k in zip(symbols, keep) if k],
        fs=ECG_FS,
        write_dir=str(folder),
    )
    return folder / name


def write_mitdb(data: Path) -> Path:
    for r in ECG_RECORDS:
        write_ecg_record(data / "mitdb", r)
    return data / "mitdb"


ECG_SETS = [
    "--set",
    "task.params.records=[100, 101, 103]",
    "--set",
    "split.method=by_record",
    "--set",
    "split.params.valid_groups=null",
    "--set",
    "trainer.class_weights=none",
]

HAM_DX = ("nv", "mel", "bkl", "bcc")


def write_ham(data: Path, n: int = 8, size: int = 16) -> Path:
    """``<data>/ham10000_subset`` with metadata.csv (age, sex and body site too) and ``n``
    small JPEGs."""
    from PIL import Image

    root = data / "ham10000_subset"
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    lines = ["lesion_id,image_id,dx,age,sex,localization"]
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
            root / "images" / f"ISIC_{i:07d}.jpg"
        )
        site = ("back", "face", "trunk")[i % 3]
        lines.append(
            f"HAM_{i // 2:07d},ISIC_{i:07d},{HAM_DX[i % len(HAM_DX)]},{40 + i},male,{site}"
        )
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def write_medmnist(data: Path, **override: np.ndarray) -> Path:
    """``<data>/medmnist/retinamnist.npz``: 28 x 28 RGB images, grades 0-4, in 3 splits."""
    rng = np.random.default_rng(3)
    arrays: dict[str, np.ndarray] = {}
    for part, n in (("train", 20), ("val", 6), ("test", 6)):
        arrays[f"{part}_images"] = rng.integers(0, 255, (n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{part}_labels"] = (np.arange(n) % 5).reshape(-1, 1)
    arrays.update(override)
    path = data / "medmnist" / "retinamnist.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def recipe(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


SEIZURE_RECIPE = """name: tiny_seizure
data: {dataset: uci_epileptic_seizure}
task: {name: seizure_5class}
model: {name: lab_cnn}
"""


# ---- the trained runs some cases need (trained once, copied per case) -----------------


class Runs:
    """Trains the small runs lazily, once per session, in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._runs: dict[str, Path] = {}

    def _train(self, kind: str) -> Path:
        from medtorch.cli import main

        out = self.root / kind
        data = self.root / f"{kind}_data"
        if kind == "seizure":
            write_uci(data)
            argv = ["--data-dir", str(data), "train", "lab2_seizure_cnn", "--out", str(out), *FAST]
        elif kind == "svmlight":
            write_svmlight(data / "cse6250_course" / "patients.svmlight")
            argv = [
                "--data-dir",
                str(data),
                "train",
                "lab1_ffn_svmlight",
                "--out",
                str(out),
                "--set",
                "task.params.file=cse6250_course/patients.svmlight",
                *FAST,
            ]
        else:
            write_mitdb(data)
            argv = [
                "--data-dir",
                str(data),
                "train",
                "mitdb_aami_cnn",
                "--out",
                str(out),
                *ECG_SETS,
                *FAST,
            ]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = main(["-q", *argv])
        if code != 0:
            raise RuntimeError(f"training the {kind} run for the corpus failed ({code})")
        (run,) = out.iterdir()
        return run

    def copy(self, kind: str, dest: Path) -> Path:
        """A private copy of the trained ``kind`` run (cases may damage it)."""
        if kind not in self._runs:
            self._runs[kind] = self._train(kind)
        return Path(shutil.copytree(self._runs[kind], dest / self._runs[kind].name))

    def data(self, kind: str) -> Path:
        if kind not in self._runs:
            self._runs[kind] = self._train(kind)
        return self.root / f"{kind}_data"


# ---- the table ---------------------------------------------------------------------------


@dataclass
class Ctx:
    """What a case builds with: its own folder, its data folder, the trained runs."""

    tmp: Path
    runs: Runs
    env: dict[str, str] = field(default_factory=dict)
    watch: list[Path] = field(default_factory=list)  # extra folders that must not change
    patches: dict[str, Any] = field(default_factory=dict)  # sys.modules entries, in-process

    @property
    def data(self) -> Path:
        d = self.tmp / "data"
        d.mkdir(exist_ok=True)
        return d

    def run(self, kind: str = "seizure") -> Path:
        run = self.runs.copy(kind, self.tmp / "runs")
        self.watch.append(run)
        return run

    def interrupted(self, kind: str = "seizure") -> Path:
        """A run stopped before its final scoring: checkpoints and history, no metrics."""
        run = self.runs.copy(kind, self.tmp / "runs")
        for f in ("metrics.json", "report.html", "predictions_test.csv"):
            (run / f).unlink(missing_ok=True)
        self.watch.append(run)
        return run


Build = Callable[[Ctx], list[str]]


@dataclass(frozen=True)
class Case:
    id: str
    area: str  # the reader or entry point
    what: str
    expect: str  # a substring of the one-line message (or of the warning)
    build: Build
    outcome: str = "error"  # or "warn"
    subprocess: bool = False


def _train(ctx: Ctx, *args: str, recipe_arg: str = "lab2_seizure_cnn") -> list[str]:
    return [
        "--data-dir",
        str(ctx.data),
        "train",
        recipe_arg,
        "--out",
        str(ctx.tmp / "out"),
        *args,
        *FAST,
    ]


def _uci(ctx: Ctx, **kw: Any) -> list[str]:
    write_uci(ctx.data, **kw)
    return _train(ctx)


def _rows_with(change: Callable[[list[list[Any]]], None]) -> list[list[Any]]:
    rows = uci_rows()
    change(rows)
    return rows


def _svm(
    ctx: Ctx,
    lines: list[str] | None = None,
    raw: bytes | None = None,
    name: str = "patients.svmlight",
) -> list[str]:
    path = ctx.data / "cse6250_course" / name
    if raw is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
    else:
        write_svmlight(path, lines)
    return _train(
        ctx, "--set", f"task.params.file=cse6250_course/{name}", recipe_arg="lab1_ffn_svmlight"
    )


def _ecg(ctx: Ctx, damage: Callable[[Path], None]) -> list[str]:
    damage(write_mitdb(ctx.data))
    return _train(ctx, *ECG_SETS, recipe_arg="mitdb_aami_cnn")


def _ham(ctx: Ctx, damage: Callable[[Path], None], *extra: str) -> list[str]:
    root = write_ham(ctx.data)
    damage(root)
    return _train(
        ctx,
        "--set",
        "task.params.image_size=16",
        "--set",
        "split.method=by_lesion",
        *extra,
        recipe_arg="ham10000_resnet18",
    )


META = ("--set", "task.params.metadata_features=true")


def _mnist(ctx: Ctx, **override: Any) -> list[str]:
    write_medmnist(ctx.data, **override)
    return _train(ctx, recipe_arg="retinamnist_resnet18")


def _mnist_flag(ctx: Ctx, flag: str, like: str) -> list[str]:
    """Task ``medmnist`` with ``flag`` on a file written in the layout of flag ``like``."""
    from medtorch.data.tasks.images import write_medmnist_npz

    write_medmnist_npz(ctx.data / "medmnist" / f"{flag}.npz", like)
    text = (f"name: tiny_{flag}\ndata: {{dataset: medmnist}}\n"
            f"task: {{name: medmnist, params: {{flag: {flag}}}}}\n"
            "split: {method: protocol, protocol: medmnist_official}\nmodel: {name: resnet2d}\n")  # fmt: skip
    return _train(ctx, recipe_arg=str(recipe(ctx.tmp / "m.yaml", text)))


def write_tree(root: Path, modes: tuple[str, ...] = ("RGB",) * 4) -> Path:
    """``root/<a|b>/<k>.png``: one image per entry of ``modes`` in each class folder."""
    from PIL import Image

    rng = np.random.default_rng(4)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for k, mode in enumerate(modes):
            shape = (12, 12) if mode == "L" else (12, 12, 3)
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(
                root / cls / f"{cls}{k}.png"
            )
    return root


def _folder(ctx: Ctx, damage: Callable[[Path], None], params: str = "") -> list[str]:
    """Task ``image_folder`` on a small tree under the data folder, damaged first."""
    root = write_tree(ctx.data / "tree")
    damage(root)
    text = (f"name: tiny_folder\ndata: {{dataset: medmnist}}\n"
            f"task: {{name: image_folder, params: {{path: '{root}', image_size: 8{params}}}}}\n"
            "model: {name: resnet2d}\n")  # fmt: skip
    return _train(ctx, recipe_arg=str(recipe(ctx.tmp / "f.yaml", text)))


def _save_gray(path: Path) -> None:
    __import__("PIL.Image").Image.new("L", (16, 16), 90).save(path)


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _predict(
    ctx: Ctx, make_input: Callable[[Path], Path], kind: str = "seizure", *extra: str
) -> list[str]:
    run = ctx.run(kind)
    inp = make_input(ctx.data)
    return ["predict", str(run), str(inp), "--out", str(ctx.tmp / "pred.csv"), *extra]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}: the case would damage nothing"
    path.write_text(text.replace(old, new))


def _with_run(ctx: Ctx, damage: Callable[[Path], None], command: str) -> list[str]:
    run = ctx.run()
    damage(run)
    data = ["--data-dir", str(ctx.runs.data("seizure"))]
    ctx.watch.append(ctx.runs.data("seizure"))
    if command == "evaluate":
        return [*data, "evaluate", str(run)]
    if command == "predict":
        return [
            "predict",
            str(run),
            str(signal_csv(ctx.data / "x.csv")),
            "--out",
            str(ctx.tmp / "p.csv"),
        ]
    if command == "export":
        return [*data, "export", str(run), "--out", str(ctx.tmp / "m.onnx"), "--n-check", "8"]
    return [*data, "train", "--resume", str(run), *FAST]


def _random_atr(stem: Path) -> None:
    # 100 random bytes that wfdb.rdann decodes without complaint, into codes that are no
    # WFDB label (wfdb's own KeyError: '' further on, before the check)
    rng = np.random.default_rng(0)
    Path(f"{stem}.atr").write_bytes(rng.integers(0, 256, 100, dtype=np.uint8).tobytes())


def _truncate_atr(mitdb: Path) -> None:
    # a 4-minute record annotated for its first minute: the tail exceeds both limits
    write_ecg_record(mitdb, "101", seconds=240.0, ann_until_s=60.0)


def _bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _readonly_out(ctx: Ctx) -> Path:
    if os.geteuid() == 0 and Path("/sys").is_dir():  # root writes anywhere a mode allows
        return Path("/sys/medtorch-bad-input/pred.csv")
    folder = ctx.tmp / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    return folder / "pred.csv"


# fmt: off
CASES: list[Case] = [
    # -- recipes and --set ------------------------------------------------------------------
    Case("recipe-not-utf8", "recipe", "a recipe saved as UTF-16", "expected UTF-8",
         lambda c: _train(c, recipe_arg=str(_bytes(c.tmp / "r.yaml", SEIZURE_RECIPE.encode("utf-16")))),
         subprocess=True),
    Case("recipe-missing-path-shipped-stem", "recipe",
         "a path that does not exist, whose stem names a shipped recipe", "no such file",
         lambda c: _train(c, recipe_arg=str(c.tmp / "nowhere" / "lab2_seizure_cnn.yaml"))),
    Case("recipe-missing-yaml-name", "recipe", "a bare name with .yaml that is not here",
         "no such file", lambda c: _train(c, recipe_arg="lab2_seizure_cnn.yaml")),
    Case("recipe-duplicate-key", "recipe", "two lr: keys in one section", "duplicate key 'lr'",
         lambda c: _train(c, recipe_arg=str(recipe(c.tmp / "d.yaml", SEIZURE_RECIPE
                          + "optim:\n  lr: 0.01\n  lr: 0.1\n")))),
    Case("recipe-duplicate-section", "recipe", "two model: sections", "duplicate key 'model'",
         lambda c: _train(c, recipe_arg=str(recipe(c.tmp / "d.yaml", SEIZURE_RECIPE
                          + "model: {name: gru}\n")))),
    Case("recipe-python-tag", "recipe", "a !!python/object/apply tag (code execution)",
         "valid YAML",
         lambda c: _train(c, recipe_arg=str(recipe(c.tmp / "x.yaml", SEIZURE_RECIPE
                          + f"description: !!python/object/apply:os.system ['touch {c.tmp}/PWNED']\n"))),
         subprocess=True),
    Case("recipe-syntax", "recipe", "unbalanced brackets", "valid YAML",
         lambda c: _train(c, recipe_arg=str(recipe(c.tmp / "s.yaml", "data: {dataset: [\n")))),
    Case("recipe-top-level-list", "recipe", "a YAML list instead of a mapping",
         "mapping at the top",
         lambda c: _train(c, recipe_arg=str(recipe(c.tmp / "l.yaml", "- data\n- task\n")))),
    Case("recipe-folder", "recipe", "a folder passed as the recipe", "a folder",
         lambda c: _train(c, recipe_arg=str(c.data))),
    Case("recipe-unknown-key", "recipe", "a misspelt key", "unknown config key 'optim.lrr'",
         lambda c: _train(c, "--set", "optim.lrr=0.1")),
    Case("set-num-threads-negative", "--set", "trainer.num_threads=-1", "thread count >= 1",
         lambda c: [*_uci(c), "--set", "trainer.num_threads=-1"]),
    Case("set-lr-inf", "--set", "optim.lr=.inf (a NaN loss)", "finite number",
         lambda c: [*_uci(c), "--set", "optim.lr=.inf"]),
    Case("set-lr-nan", "--set", "optim.lr=.nan", "finite number",
         lambda c: [*_uci(c), "--set", "optim.lr=.nan"]),
    Case("set-num-workers", "--set", "trainer.num_workers=4 (there are no loader workers)",
         "trainer.num_workers", lambda c: [*_uci(c), "--set", "trainer.num_workers=4"]),
    Case("set-dataset-ignored", "--set", "data.dataset=mitdb on a seizure task",
         "expected data.dataset 'uci_epileptic_seizure'",
         lambda c: [*_uci(c), "--set", "data.dataset=mitdb"]),
    Case("set-no-equals", "--set", "--set trainer.max_epochs (no value)", "key=value",
         lambda c: [*_uci(c), "--set", "trainer.max_epochs"]),
    Case("set-zero-epochs", "--set", "trainer.max_epochs=0", "trainer.max_epochs",
         lambda c: [*_uci(c), "--set", "trainer.max_epochs=0"]),
    Case("set-task-param-unknown", "--set", "an unknown task parameter names the recipe",
         "lab2_seizure_cnn.yaml", lambda c: [*_uci(c), "--set", "task.params.pth=x"]),
    # -- data folders -----------------------------------------------------------------------
    Case("data-dir-without-dataset", "data folder", "--data-dir without the UCI file",
         "no such file in", lambda c: _train(c)),
    Case("env-data-without-dataset", "data folder", "MEDTORCH_DATA without the UCI file",
         "no such file in",
         lambda c: (c.env.update(MEDTORCH_DATA=str(c.data)) or _train(c)[2:])),
    Case("recipe-data-dir-without-dataset", "data folder", "data.data_dir naming an empty folder",
         "no such file in", lambda c: _train(c, "--set", f"data.data_dir={c.tmp / 'empty'}")),
    # -- UCI CSV ----------------------------------------------------------------------------
    Case("uci-one-row", "UCI CSV", "a data file with one row", "at least 3 rows",
         lambda c: _uci(c, rows=uci_rows(1))),
    Case("uci-duplicate-id", "UCI CSV", "the same row id twice", "each row id once",
         lambda c: _uci(c, rows=_rows_with(lambda r: r.__setitem__(5, [r[3][0], *r[5][1:]])))),
    Case("uci-non-numeric", "UCI CSV", "a cell 'abc'", "expected a number",
         lambda c: _uci(c, rows=_rows_with(lambda r: r[4].__setitem__(7, "abc")))),
    Case("uci-nan", "UCI CSV", "a cell 'nan'", "finite number",
         lambda c: _uci(c, rows=_rows_with(lambda r: r[4].__setitem__(7, "nan")))),
    Case("uci-label-7", "UCI CSV", "y = 7", "y in 1..5",
         lambda c: _uci(c, rows=_rows_with(lambda r: r[2].__setitem__(-1, 7)))),
    Case("uci-short-row", "UCI CSV", "a row with 10 values", "fields",
         lambda c: _uci(c, rows=_rows_with(lambda r: r.__setitem__(3, r[3][:10])))),
    Case("uci-extra-column", "UCI CSV", "an extra column after y", "columns id, X1..X178, y",
         lambda c: _uci(c, header=[*UCI_HEADER, "extra"])),
    Case("uci-bad-id", "UCI CSV", "a row id without chunk.recording", "row id like",
         lambda c: _uci(c, rows=_rows_with(lambda r: r[0].__setitem__(0, "row0")))),
    Case("uci-empty", "UCI CSV", "an empty (gzipped) file", "empty file",
         lambda c: _uci(c, text="")),
    Case("uci-not-gzip", "UCI CSV", "plain bytes named .csv.gz", "readable CSV",
         lambda c: (_bytes(c.data / "uci_epileptic_seizure" / "data.csv.gz", b"id,X1\n1,2\n"),
                    _train(c))[1]),
    Case("uci-no-rows-of-a-class", "UCI CSV", "no row of class 5 (eyes open)",
         "eyes_open have no rows", lambda c: _uci(c, rows=uci_rows(60, (1, 2, 3, 4))),
         outcome="warn"),
    # -- svmlight -----------------------------------------------------------------------------
    Case("svm-index-zero", "svmlight", "one line with feature index 0", "1-based feature indices",
         lambda c: _svm(c, ["1 1:0.5 3:1", "0 0:0.2 2:1", *["1 1:1 2:2", "0 2:1 3:1"] * 10])),
    Case("svm-labels-0-2", "svmlight", "labels 0 and 2", "binary labels",
         lambda c: _svm(c, ["2 1:1 2:1", *["0 1:1", "2 2:1"] * 10])),
    Case("svm-garbage-line", "svmlight", "a line 'hello world'", "line 3",
         lambda c: _svm(c, ["1 1:1", "0 2:1", "hello world", *["1 1:1", "0 2:1"] * 10])),
    Case("svm-truncated-gzip", "svmlight", "a gzip cut in half", "readable svmlight",
         lambda c: _svm(c, raw=gzip.compress(b"1 1:1\n0 2:1\n" * 400)[:25],
                        name="patients.svmlight.gz")),
    Case("svm-missing-file", "svmlight", "task.params.path to no file", "svmlight file",
         lambda c: _train(c, "--set", f"task.params.path={c.data / 'none.svmlight'}",
                          recipe_arg="lab1_ffn_svmlight")),
    # -- WFDB records and annotations ---------------------------------------------------------
    Case("wfdb-atr-random-bytes", "WFDB annotations", "an .atr of random bytes",
         "WFDB annotation codes", lambda c: _ecg(c, lambda m: _random_atr(m / "101"))),
    Case("wfdb-atr-empty", "WFDB annotations", "a zero-byte .atr", "101.atr",
         lambda c: _ecg(c, lambda m: (m / "101.atr").write_bytes(b""))),
    Case("wfdb-atr-truncated", "WFDB annotations", "annotations stop at 60 s of a 240 s record",
         "looks truncated", lambda c: _ecg(c, _truncate_atr)),
    Case("wfdb-atr-other-record", "WFDB annotations", "annotations past the signal's end",
         "within the signal",
         lambda c: _ecg(c, lambda m: (write_ecg_record(c.tmp / "long", "101", seconds=240.0),
                                      shutil.copy(c.tmp / "long" / "101.atr", m / "101.atr")))),
    Case("wfdb-dat-truncated", "WFDB records", "a signal file cut to 1000 bytes", "truncated",
         lambda c: _ecg(c, lambda m: (m / "103.dat").write_bytes((m / "103.dat").read_bytes()[:1000]))),
    Case("wfdb-hea-bad-fs", "WFDB records", "sampling rate -360 in the header",
         "positive sampling rate", lambda c: _ecg(c, lambda m: _edit(m / "100.hea", " 360 ", " -360 "))),
    Case("wfdb-hea-missing", "WFDB records", "a record without its .hea", "101.hea",
         lambda c: _ecg(c, lambda m: (m / "101.hea").unlink())),
    Case("wfdb-unknown-record", "WFDB records", "task.params.records=[999]", "MIT-BIH record",
         lambda c: [*_ecg(c, lambda m: None), "--set", "task.params.records=[999]"]),
    Case("wfdb-fixture-header", "WFDB records", "a header whose signal line is cut (fixture)",
         "100.hea",
         lambda c: _ecg(c, lambda m: shutil.copy(FIXTURES / "cut_signal_line.hea", m / "100.hea"))),
    # -- images and HAM metadata ------------------------------------------------------------
    Case("ham-duplicate-image", "HAM metadata", "one image_id on two rows", "each image_id once",
         lambda c: _ham(c, lambda r: _edit(r / "metadata.csv", "ISIC_0000003,", "ISIC_0000002,"))),
    Case("ham-unknown-dx", "HAM metadata", "dx 'melanoma'", "dx in",
         lambda c: _ham(c, lambda r: _edit(r / "metadata.csv", ",mel,", ",melanoma,"))),
    Case("ham-missing-image", "images", "a listed image that is not there", "images/ISIC_0000004.jpg",
         lambda c: _ham(c, lambda r: (r / "images" / "ISIC_0000004.jpg").unlink())),
    Case("ham-damaged-jpeg", "images", "a .jpg of random bytes", "a readable image",
         lambda c: _ham(c, lambda r: (r / "images" / "ISIC_0000001.jpg").write_bytes(os.urandom(300)))),
    Case("ham-missing-column", "HAM metadata", "no lesion_id column", "lesion_id",
         lambda c: _ham(c, lambda r: _edit(r / "metadata.csv", "lesion_id,", "lesion,"))),
    Case("ham-other-size", "images", "one image of another size", "like the other images",
         lambda c: _ham(c, lambda r: __import__("PIL.Image").Image.new("RGB", (20, 16)).save(
             r / "images" / "ISIC_0000005.jpg"))),
    Case("ham-truncated-jpeg", "images", "a .jpg cut in half", "truncated",
         lambda c: _ham(c, lambda r: _cut(r / "images" / "ISIC_0000003.jpg"))),
    Case("ham-grayscale-image", "images", "a grayscale .jpg among the dermoscopy photographs",
         "an RGB dermoscopy image", lambda c: _ham(c, lambda r: _save_gray(r / "images" / "ISIC_0000006.jpg"))),
    Case("ham-meta-bad-age", "HAM metadata", "age 'forty' with task.params.metadata_features",
         "line 2 field age",
         lambda c: _ham(c, lambda r: _edit(r / "metadata.csv", ",40,male", ",forty,male"), *META)),
    Case("ham-meta-unknown-site", "HAM metadata", "localization 'elbow' with task.params.metadata_features",
         "field localization",
         lambda c: _ham(c, lambda r: _edit(r / "metadata.csv", "male,face", "male,elbow"), *META)),
    Case("ham-meta-missing-column", "HAM metadata", "no age column with task.params.metadata_features",
         "task.params.metadata_features: false",
         lambda c: _ham(c, lambda r: _edit(r / "metadata.csv", ",age,", ",years,"), *META)),
    # -- class-per-folder image trees --------------------------------------------------------
    Case("folder-truncated-png", "image folder", "a .png cut in half", "truncated",
         lambda c: _folder(c, lambda r: _cut(r / "b" / "b2.png"))),
    Case("folder-unknown-class", "image folder", "a folder c not in task.params.classes",
         "task.params.classes", lambda c: _folder(c, lambda r: write_tree(r / "c"), ", classes: [a, b]")),
    Case("folder-mixed-colour", "image folder", "one grayscale image among colour ones",
         "one colour mode", lambda c: _folder(c, lambda r: _save_gray(r / "a" / "a1.png"))),
    Case("folder-metadata-no-file", "image folder", "a metadata row whose image is not there",
         "a9.png with no file",
         lambda c: _folder(c, lambda r: (r / "meta.csv").write_text("image,patient\na9.png,P1\n"),
                           ", metadata: meta.csv, group_column: patient")),
    Case("folder-no-class-folders", "image folder", "a root without class folders",
         "at least 2 class folders", lambda c: _folder(c, lambda r: [shutil.rmtree(r / d) for d in "ab"])),
    # -- MedMNIST npz -----------------------------------------------------------------------
    Case("npz-flag-channels", "MedMNIST npz", "flag pathmnist on a grayscale (OCTMNIST) file",
         "3-channel images (PathMNIST)", lambda c: _mnist_flag(c, "pathmnist", "octmnist")),
    Case("npz-flag-multilabel", "MedMNIST npz", "flag chestmnist on a one-label file",
         "one 0/1 column per ChestMNIST label", lambda c: _mnist_flag(c, "chestmnist", "pneumoniamnist")),
    Case("npz-flag-unknown", "MedMNIST npz", "flag chestmnistt", "task.params.flag",
         lambda c: _mnist_flag(c, "chestmnistt", "chestmnist")),
    Case("npz-test-other-size", "MedMNIST npz", "test images 32 x 32 (train 28 x 28)",
         "train split's (H, W, C)",
         lambda c: _mnist(c, test_images=np.zeros((6, 32, 32, 3), np.uint8))),
    Case("npz-val-one-channel", "MedMNIST npz", "val images with 1 channel (train 3)",
         "train split's (H, W, C)",
         lambda c: _mnist(c, val_images=np.zeros((6, 28, 28, 1), np.uint8))),
    Case("npz-label-out-of-range", "MedMNIST npz", "a grade 9", "labels 0..4",
         lambda c: _mnist(c, test_labels=np.full((6, 1), 9))),
    Case("npz-missing-key", "MedMNIST npz", "no test_labels array", "test_labels",
         lambda c: _mnist(c, test_labels=None)),
    Case("npz-label-count", "MedMNIST npz", "5 labels for 6 images", "labels (one per image)",
         lambda c: _mnist(c, val_labels=np.zeros((5, 1), int))),
    Case("npz-not-zip", "MedMNIST npz", "a text file named .npz", "not a zip archive",
         lambda c: (_bytes(c.data / "medmnist" / "retinamnist.npz", b"not a zip"),
                    _train(c, recipe_arg="retinamnist_resnet18"))[1]),
    # -- run folders --------------------------------------------------------------------------
    Case("run-model-json-damaged", "run folder", "model.json cut in half (evaluate)",
         "valid model JSON",
         lambda c: _with_run(c, lambda r: (r / "model.json").write_text((r / "model.json").read_text()[:40]), "evaluate")),
    Case("run-model-json-wrong-type", "run folder", "model.json class_names a string (predict)",
         "class_names",
         lambda c: _with_run(c, lambda r: _edit(r / "model.json", '"class_names": [', '"class_names": "x", "_": ['), "predict")),
    Case("run-normalizer-damaged", "run folder", "normalizer.json not JSON (predict)",
         "normaliser JSON",
         lambda c: _with_run(c, lambda r: (r / "normalizer.json").write_text("{kind: global"), "predict")),
    Case("run-normalizer-sd-zero", "run folder", "normalizer.json with sd 0 (predict)", "sd > 0",
         lambda c: _with_run(c, lambda r: (r / "normalizer.json").write_text('{"kind": "global", "mean": [[0.0]], "sd": [[0.0]]}'), "predict")),
    Case("run-config-damaged", "run folder", "config.yaml with a syntax error (export)",
         "config.yaml",
         lambda c: _with_run(c, lambda r: (r / "config.yaml").write_text("name: [x\n"), "export")),
    Case("run-config-damaged-resume", "run folder", "config.yaml with a bad value (resume)",
         "config.yaml",
         lambda c: _with_run(c, lambda r: _edit(r / "config.yaml", "batch_size: 256", "batch_size: many"), "resume")),
    Case("run-splits-missing", "run folder", "no splits.json (evaluate)", "splits.json",
         lambda c: _with_run(c, lambda r: (r / "splits.json").unlink(), "evaluate")),
    Case("run-cohort-missing", "run folder", "no cohort.json (export)", "cohort.json",
         lambda c: _with_run(c, lambda r: (r / "cohort.json").unlink(), "export")),
    Case("run-interrupted-evaluate", "run folder", "evaluate on an interrupted run",
         "interrupted run",
         lambda c: ["--data-dir", str(c.runs.data("seizure")), "evaluate", str(c.interrupted())]),
    Case("run-interrupted-predict", "run folder", "predict with an interrupted run",
         "interrupted run",
         lambda c: ["predict", str(c.interrupted()), str(signal_csv(c.data / "x.csv")), "--out",
                    str(c.tmp / "p.csv")]),
    Case("run-interrupted-export", "run folder", "export an interrupted run", "interrupted run",
         lambda c: ["export", str(c.interrupted()), "--out", str(c.tmp / "m.onnx")]),
    Case("run-not-a-folder", "run folder", "predict with a folder that is no run",
         "config.yaml in the run folder",
         lambda c: ["predict", str(c.data), str(signal_csv(c.tmp / "x.csv")), "--out",
                    str(c.tmp / "p.csv")]),
    Case("export-no-onnxruntime", "export", "onnxruntime not installed", "pip install",
         lambda c: (c.patches.update(onnxruntime=None) or _with_run(c, lambda r: None, "export"))),
    # -- predict inputs -------------------------------------------------------------------------
    Case("predict-csv-extra-column", "predict input", "a column 'age' the model never saw",
         "'age'", lambda c: _predict(c, lambda d: signal_csv(
             d / "x.csv", ["id", *[f"X{i}" for i in range(1, 179)], "age"],
             [["a", *[0.0] * 178, 50]]))),
    Case("predict-csv-missing-columns", "predict input", "only X1..X100", "X1..X178",
         lambda c: _predict(c, lambda d: signal_csv(d / "x.csv", ["id", *[f"X{i}" for i in range(1, 101)]],
                                                    [["a", *[0.0] * 100]]))),
    Case("predict-csv-non-numeric", "predict input", "a value 'x'", "numeric values",
         lambda c: _predict(c, lambda d: signal_csv(d / "x.csv", None, [["a", "x", *[0.0] * 177]]))),
    Case("predict-csv-inf", "predict input", "a value 'inf'", "finite values",
         lambda c: _predict(c, lambda d: signal_csv(d / "x.csv", None, [["a", "inf", *[0.0] * 177]]))),
    Case("predict-csv-missing", "predict input", "an input path that does not exist",
         "no such file", lambda c: _predict(c, lambda d: d / "none.csv")),
    Case("predict-svm-index-zero", "predict input", "an svmlight file with index 0",
         "1-based feature indices",
         lambda c: _predict(c, lambda d: write_svmlight(d / "p.svmlight", ["1 0:1 2:1"]), "svmlight")),
    Case("predict-ecg-lead", "predict input", "--lead XYZ on a record with MLII, V1",
         "pass one of MLII, V1",
         lambda c: _predict(c, lambda d: write_ecg_record(d, "r1"), "ecg", "--lead", "XYZ")),
    Case("predict-ecg-truncated-atr", "predict input", "a record whose .atr stops at a quarter",
         "looks truncated",
         lambda c: _predict(c, lambda d: write_ecg_record(d, "r1", 240.0, 60.0), "ecg")),
    Case("ham-no-rows", "HAM metadata", "metadata.csv with a header and no rows", "no rows",
         lambda c: _ham_empty(c)),
    # -- output paths ---------------------------------------------------------------------------
    Case("out-predict-over-checkpoint", "output path", "predict --out RUN/checkpoints/best.pt",
         "run's own files",
         lambda c: (r := c.run(), ["predict", str(r), str(signal_csv(c.data / "x.csv")), "--out",
                                    str(r / "checkpoints" / "best.pt")])[1], subprocess=True),
    Case("out-export-over-checkpoint", "output path", "export --out RUN/checkpoints/best.pt",
         "run's own files",
         lambda c: (r := c.run(), ["export", str(r), "--out", str(r / "checkpoints" / "best.pt")])[1]),
    Case("out-export-over-config", "output path", "export --out RUN/config.yaml",
         "run's own files",
         lambda c: (r := c.run(), ["export", str(r), "--out", str(r / "config.yaml")])[1]),
    Case("out-predict-over-input", "output path", "predict --out the input CSV", "not an input",
         lambda c: (x := signal_csv(c.data / "x.csv"),
                    ["predict", str(c.run()), str(x), "--out", str(x)])[1]),
    Case("out-predict-over-record-file", "output path", "predict --out the record's own .atr",
         "not an input",
         lambda c: (rec := write_ecg_record(c.data, "r1"),
                    ["predict", str(c.run("ecg")), str(rec), "--out", f"{rec}.atr"])[1]),
    Case("out-is-folder", "output path", "predict --out an existing folder", "(a folder)",
         lambda c: ["predict", str(c.run()), str(signal_csv(c.data / "x.csv")), "--out", str(c.tmp)]),
    Case("out-under-file", "output path", "predict --out FILE/pred.csv", "got a file",
         lambda c: ["predict", str(c.run()), str(signal_csv(c.data / "x.csv")), "--out",
                    str(signal_csv(c.tmp / "f.csv") / "pred.csv")]),
    Case("out-read-only", "output path", "predict --out in a folder that cannot be written",
         "writable folder",
         lambda c: ["predict", str(c.run()), str(signal_csv(c.data / "x.csv")), "--out",
                    str(_readonly_out(c))]),
    Case("out-train-is-file", "output path", "train --out an existing file", "(a file)",
         lambda c: (write_uci(c.data), ["--data-dir", str(c.data), "train", "lab2_seizure_cnn",
                    "--out", str(signal_csv(c.tmp / "f.csv"))])[1]),
    Case("out-ecg-score-in-checkpoints", "output path", "ecg-score --out RUN/checkpoints/x.json",
         "run's own files",
         lambda c: (r := c.run("ecg"), ["ecg-score", str(r), str(write_ecg_record(c.data, "r1")),
                                        "--out", str(r / "checkpoints" / "x.json")])[1]),
]
# fmt: on


def _ham_empty(ctx: Ctx) -> list[str]:
    root = write_ham(ctx.data, n=0)
    (root / "metadata.csv").write_text("lesion_id,image_id,dx\n")
    return _train(ctx, "--set", "task.params.image_size=16", recipe_arg="ham10000_resnet18")


# ---- running one case ------------------------------------------------------------------


@dataclass
class Outcome:
    code: int | None
    lines: list[str]  # non-empty stderr lines, logging included
    traceback: str | None
    data_changed: list[str]
    stdout: str = ""


def snapshot(folders: list[Path]) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``folders`` with its size and modification time."""
    out = {}
    for root in folders:
        if not root.exists():
            continue
        for p in [root, *root.rglob("*")]:
            st = p.lstat()
            out[str(p)] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out


def _in_process(argv: list[str], env: dict[str, str], patches: dict[str, Any]) -> Outcome:
    from medtorch.cli import main

    err, out = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)  # what a user sees on stderr: the log lines too
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("medtorch")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    saved_env = {k: os.environ.get(k) for k in (*env, "MEDTORCH_DATA")}
    saved_mods = {k: sys.modules.get(k) for k in patches}
    os.environ.pop("MEDTORCH_DATA", None)  # only what the case sets
    os.environ.update(env)
    sys.modules.update(patches)
    tb = None
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code: int | None = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                code, tb = None, traceback.format_exc()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for k, m in saved_mods.items():
            if m is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = m
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    return Outcome(code, lines, tb, [], out.getvalue())


def _subprocess(argv: list[str], env: dict[str, str]) -> Outcome:
    full = {k: v for k, v in os.environ.items() if k != "MEDTORCH_DATA"}
    full.update(env)
    import medtorch  # the subprocess runs the same sources as the in-process cases

    src = Path(medtorch.__file__).resolve().parents[1]
    full["PYTHONPATH"] = os.pathsep.join([str(src), full.get("PYTHONPATH", "")])
    full.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run(
        [sys.executable, "-m", "medtorch", *argv],
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    tb = proc.stderr if "Traceback" in proc.stderr else None
    return Outcome(proc.returncode, lines, tb, [], proc.stdout)


def run_case(case: Case, tmp: Path, runs: Runs) -> Outcome:
    """Build ``case`` in ``tmp`` and run it through the CLI; the observed outcome."""
    ctx = Ctx(tmp, runs)
    argv = case.build(ctx)
    watched = [ctx.data, *ctx.watch]
    before = snapshot(watched)
    if case.subprocess:
        res = _subprocess(argv, ctx.env)
    else:
        res = _in_process(argv, ctx.env, ctx.patches)
    after = snapshot(watched)
    res.data_changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return res


def verdict(case: Case, res: Outcome) -> str:
    """``ok``, or what went wrong: ``traceback``, ``silent`` (exit 0 with no error or
    warning), ``wrong-exit``, ``lines`` (not one line), ``message`` (substring missing),
    ``wrote-data``."""
    if res.traceback or any("Traceback" in ln for ln in res.lines):
        return "traceback"
    text = "\n".join(res.lines)
    if case.outcome == "warn":
        if res.code != 0:
            return "wrong-exit"
        if not any("warning" in ln and case.expect in ln for ln in res.lines):
            return "silent"
        return "ok"
    if res.code == 0:
        return "silent"
    if res.code != 2:
        return "wrong-exit"
    if len(res.lines) != 1 or not res.lines[0].startswith("error: "):
        return "lines"
    if case.expect not in text:
        return "message"
    if res.data_changed:
        return "wrote-data"
    return "ok"
