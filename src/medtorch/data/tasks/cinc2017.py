"""Rhythm of a whole single-lead ECG strip: PhysioNet/CinC Challenge 2017 (N, A, O, ~).

One sample per record: the strip (9-61 s at 300 Hz, optionally resampled to
``sfreq_hz``), zero-padded to the longest strip, with its valid length as a second input
(``length``, samples) so the model masks the padding out; a model such as
``hannun_segments`` crops at random in training and reads the whole strip at test. Labels
come from ``REFERENCE-v3.csv`` (the final labels); ``af_vs_rest`` gives the binary AF vs
everything-else view.

Each record is one recording and the release identifies no patient, so the unit of the
split (``grouped_kfold``: stratified k-fold by record) is the record: a patient with two
recordings may sit on both sides of a split, and every number carries that caveat.

``medtorch predict RUN RECORD`` reads one single-lead WFDB record (``.hea``) or a CSV strip
(one column of samples, at the task's rate) and writes the strip's label and the
per-segment labels over time.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from medtorch.data.dataset import ArrayDataset
from medtorch.data.sources.wfdb_strip import read_strip
from medtorch.data.tasks.registry import InputKind, TaskExample, register_task
from medtorch.errors import DataError
from medtorch.metrics.families import MetricFamily, ScoreArgs, register_family

CLASSES = ["N", "A", "O", "~"]
CLASS_TITLES = {"N": "normal rhythm", "A": "atrial fibrillation", "O": "other rhythm",
                "~": "too noisy"}  # fmt: skip
BINARY = ["non_AF", "AF"]
SFREQ_HZ = 300
MAX_SECONDS = 61.0
CAVEAT = ("one record per recording; the release identifies no patient, so a patient with "
          "several recordings may be on both sides of a split")  # fmt: skip


# ---------------------------------------------------------------- reading strips


def read_csv_strip(path: Path) -> np.ndarray:
    """A CSV strip: one column of samples (an optional header line is skipped)."""
    values: list[float] = []
    with path.open(newline="") as f:
        for i, row in enumerate(csv.reader(f)):
            if not row:
                continue
            try:
                values.append(float(row[-1]))
            except ValueError:
                if i == 0:
                    continue  # a header
                raise DataError(f"expected a number, got {row[-1]!r} in {path} line {i + 1}; "
                                "a CSV strip is one column of samples") from None  # fmt: skip
    return np.asarray(values, dtype=np.float32)


def resample(x: np.ndarray, fs: float, target: float) -> np.ndarray:
    """``x`` at ``fs`` -> ``target`` Hz (polyphase, anti-aliased)."""
    if abs(fs - target) < 1e-9:
        return x.astype(np.float32)
    from fractions import Fraction

    from scipy.signal import resample_poly

    r = Fraction(target / fs).limit_denominator(1000)
    return resample_poly(x, r.numerator, r.denominator).astype(np.float32)


def read_labels(path: Path) -> dict[str, str]:
    """``REFERENCE-v3.csv``: ``record,label`` lines; an unknown label is a one-line error."""
    out: dict[str, str] = {}
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        rec, _, label = line.strip().partition(",")
        if label not in CLASSES:
            raise DataError(
                f"expected a label in {', '.join(CLASSES)}, got {label!r} for {rec!r} in "
                f"{path} line {i}; fix the label file (record,label per line)"
            )
        out[rec] = label
    return out


# ---------------------------------------------------------------- the task


def _challenge(a: ScoreArgs) -> dict[str, Any] | None:
    from medtorch.metrics.cinc2017 import challenge_report

    return challenge_report(a.y, a.proba, a.class_names, **a.boot)


register_family(MetricFamily("cinc2017", _challenge, "PhysioNet/CinC 2017 challenge score",
                             "standard", ("F1", "AUROC")))  # fmt: skip


def _inputs(rr_features: bool = False, **_: Any) -> dict[str, InputKind]:
    kinds: dict[str, InputKind] = {"x": "signal", "length": "features"}
    if rr_features:
        kinds["rr"] = "features"
    return kinds


def write_example(folder: Path) -> dict[str, Any]:
    """Six tiny synthetic strips in the archive's layout (``cinc2017/training2017``), one of
    them without a label (counted as dropped)."""
    d = folder / "cinc2017" / "training2017"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names, labels = [], []
    for i, label in enumerate(["N", "A", "O", "~", "N", None]):
        name = f"A{i + 1:05d}"
        n = 600 + 150 * i  # 2-4.5 s at 300 Hz
        t = np.arange(n) / SFREQ_HZ
        sig = np.sin(2 * np.pi * (1.0 + 0.3 * i) * t) * 400 + rng.normal(0, 20, n)
        write_record(d, name, sig.astype(np.int16))
        names.append(name)
        if label is not None:
            labels.append(f"{name},{label}")
    (d / "RECORDS").write_text("\n".join(names) + "\n")
    (d / "REFERENCE-v3.csv").write_text("\n".join(labels) + "\n")
    return {}


def write_record(folder: Path, name: str, digital: np.ndarray, fs: int = SFREQ_HZ) -> None:
    """A record as the challenge ships it: ``.mat`` (24-byte header, int16) + ``.hea``."""
    mat = b"\x00" * 24 + np.asarray(digital, dtype="<i2").tobytes()
    (folder / f"{name}.mat").write_bytes(mat)
    (folder / f"{name}.hea").write_bytes(
        f"{name} 1 {fs} {len(digital)} 00:00:00 1/01/2000 \r\n"
        f"{name}.mat 16+24 1000/mV 16 0 {int(digital[0])} 0 0 ECG \r\n".encode()
    )


def read_input(path: Path, lead: str | None = None) -> tuple[np.ndarray, float]:
    """A strip for ``medtorch predict``: a WFDB record (``.hea``, or a stem with one beside
    it) or a CSV strip (one column of samples in mV at the challenge's 300 Hz)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        if lead is not None:
            raise DataError(f"expected a WFDB record for --lead, got the CSV strip {path} in "
                            "--lead; a CSV strip has one lead: drop --lead")  # fmt: skip
        return read_csv_strip(path), float(SFREQ_HZ)
    return read_strip(path, lead)


def predict_strip(
    run_dir: Path, cfg: Any, spec: dict[str, Any], model: Any, input_path: Path, out: Path,
    lead: str | None = None,
) -> str:  # fmt: skip
    """``medtorch predict RUN RECORD``: the strip's rhythm and the per-segment rhythm over
    time (``segment`` ``strip`` first, then one row per output segment with its start and
    end in seconds). A strip shorter than one output segment of the network is refused."""

    from medtorch.pipeline import load_encoder

    raw, fs = read_input(Path(input_path), lead)
    params = dict(cfg.task.params)
    rate = float(params.get("sfreq_hz", SFREQ_HZ))
    x = resample(raw, fs, rate)
    seg = int(getattr(model, "segment_samples", 1))
    if len(x) < seg:
        rf = getattr(model, "receptive_field", None)
        raise DataError(
            f"expected a strip of at least {seg} samples at {rate:g} Hz ({seg / rate:.2f} s, "
            f"one output segment of the network; its receptive field is {rf} samples), got "
            f"{len(x)} in {input_path}; record a longer strip"
        )
    inputs = {"x": x[None, None, :].astype(np.float32),
              "length": np.array([[len(x)]], dtype=np.float32)}  # fmt: skip
    if params.get("rr_features"):
        from medtorch.ecg.strip_features import strip_rr_features

        inputs["rr"] = strip_rr_features(raw, fs)[None, :]  # at the strip's own rate
    inputs = load_encoder(run_dir, cfg).transform(inputs)
    classes = list(spec["class_names"])
    rows = segment_rows(model, inputs, len(x), rate, classes)
    p_strip = np.asarray([float(v) for v in rows[0][4:]])
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["segment", "start_s", "end_s", "predicted", *[f"p_{c}" for c in classes]])
        w.writerows(rows)
    png = out.with_suffix(".png")
    draw_strip(png, x, rate, rows, classes, title=f"{Path(input_path).name}: {rows[0][3]}")
    return (f"{Path(input_path).name}: {rows[0][3]} (p {p_strip.max():.2f}); "
            f"{len(rows) - 1} segments written to {out}, drawn in {png}")  # fmt: skip


def segment_rows(
    model: Any, inputs: dict[str, np.ndarray], n: int, rate: float, classes: list[str]
) -> list[list[Any]]:
    """One strip's rows (its encoded ``inputs``, batch of one, ``n`` valid samples at
    ``rate``): ``strip`` first, then one per output segment with its start and end in
    seconds, the predicted rhythm and the probabilities."""
    import torch

    tx, tn = (torch.as_tensor(inputs[k]) for k in ("x", "length"))
    extra = [torch.as_tensor(inputs["rr"])] if "rr" in inputs else []
    seg = int(getattr(model, "segment_samples", 1))
    rows: list[list[Any]] = []
    with torch.inference_mode():
        p_strip = torch.softmax(model(tx, tn, *extra).double(), 1)[0].numpy()
        rows.append(["strip", 0.0, round(n / rate, 3), classes[int(p_strip.argmax())],
                     *[f"{v:.6g}" for v in p_strip]])  # fmt: skip
        if hasattr(model, "segments"):
            logits, mask = model.segments(tx, tn, *extra)
            p_seg = torch.softmax(logits.double(), 1)[0].numpy()  # (K, S)
            step = n / int(mask[0].sum()) if seg == 1 else seg
            for j in range(int(mask[0].sum())):
                start, end = j * step / rate, min((j + 1) * step, n) / rate
                rows.append([j, round(start, 3), round(end, 3), classes[int(p_seg[:, j].argmax())],
                             *[f"{v:.6g}" for v in p_seg[:, j]]])  # fmt: skip
    return rows


def example_strips(
    folder: Path, model: Any, test: ArrayDataset, proba: np.ndarray, params: dict[str, Any]
) -> list[tuple[str, str]]:
    """For the run report: per true class, its most confidently right and most confidently
    wrong test strip, drawn with the predicted rhythm of every segment beneath it."""
    rate = float(params.get("sfreq_hz", SFREQ_HZ))
    pred = proba.argmax(1)
    out: list[tuple[str, str]] = []
    assert test.sample_ids is not None
    for k, name in enumerate(test.class_names):
        for right in (True, False):
            idx = np.flatnonzero((test.y == k) & ((pred == k) == right))
            if not len(idx):
                continue
            i = int(idx[np.argmax(proba[idx, k] if right else proba[idx, pred[idx]])])
            n = int(test.inputs["length"][i, 0])
            one = {key: np.asarray(v[i : i + 1]) for key, v in test.inputs.items()}
            rows = segment_rows(model, one, n, rate, list(test.class_names))
            rec = str(test.sample_ids[i])
            what = "right" if right else f"wrong: called {rows[0][3]}"
            cap = (f"{rec}: true {name} ({CLASS_TITLES.get(name, name)}), {what}, "
                   f"p {max(float(v) for v in rows[0][4:]):.2f}")  # fmt: skip
            png = f"strip_{name.replace('~', 'noisy')}_{'right' if right else 'wrong'}.png"
            draw_strip(folder / png, one["x"][0, 0, :n], rate, rows, list(test.class_names), cap)
            out.append((png, cap))
    return out


def draw_strip(
    png: Path, x: np.ndarray, rate: float, rows: list[list[Any]], classes: list[str], title: str
) -> None:
    """The strip with its per-segment predicted rhythm shaded beneath it."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    colours = {c: colormaps["tab10"](i) for i, c in enumerate(classes)}
    fig = Figure(figsize=(12, 3))
    FigureCanvasAgg(fig)
    ax, band = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [4, 1]})
    ax.plot(np.arange(len(x)) / rate, x, lw=0.6, color="black")
    ax.set_ylabel("mV")
    ax.set_title(title)
    for _, start, end, label, *_ in rows[1:]:
        band.axvspan(float(start), float(end), color=colours[label], lw=0)
    band.set_yticks([])
    band.set_xlabel("time (s); band: predicted rhythm per segment")
    handles = [Rectangle((0, 0), 1, 1, color=colours[c]) for c in classes]
    band.legend(handles, classes, ncol=len(classes), loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=80)


@register_task(
    "cinc2017_rhythm",
    inputs=_inputs,
    metrics=("classification", "cinc2017"),
    predictor=predict_strip,
    example=TaskExample(write_example, unlabelled=1),
    options=("lead",),
    figures=example_strips,
)
def cinc2017_rhythm(
    data_dir: Path | None,
    path: str | None = None,
    sfreq_hz: float = SFREQ_HZ,
    af_vs_rest: bool = False,
    max_seconds: float = MAX_SECONDS,
    rr_features: bool = False,
) -> ArrayDataset:
    """CinC 2017 single-lead strips, N / A / O / ~ (or AF vs rest), one sample per record;
    ``rr_features``: also each strip's RR-interval features (input ``rr``, from beats
    detected at 300 Hz; :mod:`medtorch.ecg.strip_features`, cached)."""
    from medtorch.data.datasets.cinc2017 import records_dir

    folder = Path(path) if path is not None else records_dir(data_dir)
    ref = folder / "REFERENCE-v3.csv"
    if not ref.is_file():
        ref = folder / "REFERENCE.csv"
    if not ref.is_file():
        raise DataError(f"expected REFERENCE-v3.csv (record,label), got none in {folder}; "
                        "reinstall with `medtorch data fetch cinc2017`")  # fmt: skip
    labels = read_labels(ref)
    names = [n.strip() for n in (folder / "RECORDS").read_text().splitlines() if n.strip()]
    max_len = round(max_seconds * sfreq_hz)
    strips, kept, lengths, too_long = [], [], [], 0
    for name in names:
        if name not in labels:
            continue
        x, fs = read_strip(folder / f"{name}.hea")
        x = resample(x, fs, sfreq_hz)
        if len(x) > max_len:
            too_long += 1
            x = x[:max_len]
        strips.append(x)
        lengths.append(len(x))
        kept.append(name)
    unlabelled = len(names) - len(kept)
    X = np.zeros((len(kept), 1, max(lengths, default=1)), dtype=np.float32)
    for i, x in enumerate(strips):
        X[i, 0, : len(x)] = x
    cls = BINARY if af_vs_rest else CLASSES
    y = np.array([(labels[n] == "A") if af_vs_rest else CLASSES.index(labels[n]) for n in kept],
                 dtype=np.int64)  # fmt: skip
    counts = np.bincount(y, minlength=len(cls))
    dropped = {"no label in REFERENCE-v3.csv": unlabelled} if unlabelled else {}
    inputs = {"x": X, "length": np.asarray(lengths, dtype=np.float32)[:, None]}
    if rr_features:
        from medtorch.data.datasets.cinc2017 import cache_dir
        from medtorch.ecg.strip_features import cached_strip_features

        inputs["rr"], _ = cached_strip_features([folder / f"{n}.hea" for n in kept], cache_dir())
    return ArrayDataset(
        inputs=inputs,
        y=y,
        groups=np.asarray(kept),
        class_names=list(cls),
        sample_ids=np.asarray(kept),
        meta={
            "source": str(ref),
            "dataset": "cinc2017",
            "sfreq_hz": float(sfreq_hz),
            "group_unit": "record",
            "split_caveat": CAVEAT,
            "label_source": "REFERENCE-v3.csv (final labels)"
            + ("; A -> AF, N, O, ~ -> non_AF" if af_vs_rest else ""),
            "truncated_to_max_seconds": too_long,
            "cohort": {
                "rows_read": len(names),
                "rows_dropped": dropped,
                "class_counts": {n: int(c) for n, c in zip(cls, counts)},
                "n_groups": len(kept),
            },
        },
    )
