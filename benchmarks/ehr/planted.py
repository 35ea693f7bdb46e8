"""Planted-signal check of the EHR models: a label that only the ORDER of two codes carries.

A generator writes a MEDS-style event table (``subject_id, time, code, numeric_value``) of
N synthetic patients: 3-8 visits each, every visit 1-4 codes drawn from a pool of noise
diagnosis and lab codes. Two planted codes, A and B, sit in two different visits:

- 80% of patients have both; the label is positive iff A's visit comes BEFORE B's, and
  the order is a coin flip, so a positive and a negative patient hold the same codes;
- 10% have only A and 10% only B (negatives).

A bag of codes therefore sees only "both present" (half of those positive), and logistic
regression on it tops out near AUROC 0.67 (2/3: it can rank the single-code patients below,
the rest is a tie; the noise codes are independent of the label). A model that reads the visit order can reach 1.0. The events are turned
into the visit arrays of the EHR arrays contract (x (N, V, C) int64 codes with 0 pad and
1 unknown, t (N, V) days to the prediction time, one day after the last visit), split by
subject 70/15/15, and each model trains with a plain PyTorch loop (Adam at 3e-3, 3e-2 for
the linear baseline, batches of 64, cross-entropy on two logits, the epoch of best validation
AUROC kept); scikit-learn's LogisticRegression on the same bags is the baseline's reference.
RETAIN's contributions are then read for the positive test patients: is the code with the
largest contribution to the positive log-odds A (the planted cause)?

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/ehr/planted.py --n 3000 --seeds 0 1 2

writes ``runs/ehr_planted/seed<S>/events.parquet`` and ``labels.parquet`` (MEDS label
schema) and prints one table; the numbers are recorded in benchmarks/ehr/PLANTED.md.
"""

from __future__ import annotations

import argparse
import copy
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from medtorch.models import create_model

CODE_A = "DIAGNOSIS//PLANTED//A"
CODE_B = "DIAGNOSIS//PLANTED//B"
MODELS = ("bag_logreg", "visit_gru", "visit_lstm", "retain", "visit_transformer", "deepr")
SIZES = {  # small nets: the task is easy for a model that reads order
    "bag_logreg": {},
    "visit_gru": {"embed_dim": 32, "hidden_size": 32, "dropout": 0.1},
    "visit_lstm": {"embed_dim": 32, "hidden_size": 32, "dropout": 0.1},
    "retain": {"embed_dim": 32, "alpha_hidden": 32, "beta_hidden": 32, "dropout": 0.1},
    "visit_transformer": {"embed_dim": 32, "n_heads": 2, "n_layers": 2, "dropout": 0.1},
    "deepr": {"embed_dim": 32, "n_filters": 32, "dropout": 0.1},
}

LR = {"bag_logreg": 3e-2}  # a linear model on 0/1 features needs larger steps in 15 epochs


# -- the generator ----------------------------------------------------------------------------
def generate_events(
    n_subjects: int, seed: int = 0, n_noise_codes: int = 80
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(events, labels): a MEDS event table and its MEDS label table (one row per subject).

    events: subject_id int64, time datetime, code str, numeric_value float32 (labs only);
    labels: subject_id, prediction_time (one day after the last visit), boolean_value.
    """
    rng = np.random.default_rng(seed)
    # noise codes with skewed frequencies, half diagnoses and half labs (with values)
    noise = [f"DIAGNOSIS//ICD9CM//{400 + i}" for i in range(n_noise_codes // 2)]
    noise += [f"LAB//{50800 + i}" for i in range(n_noise_codes - len(noise))]
    freq = 1.0 / np.arange(1, len(noise) + 1) ** 0.7
    freq /= freq.sum()
    rows: dict[str, list] = {"subject_id": [], "time": [], "code": [], "numeric_value": []}
    labels: dict[str, list] = {"subject_id": [], "prediction_time": [], "boolean_value": []}
    start = datetime(2100, 1, 1)

    def add(sid: int, when: datetime, code: str) -> None:
        rows["subject_id"].append(sid)
        rows["time"].append(when)
        rows["code"].append(code)
        lab = code.startswith("LAB//")
        rows["numeric_value"].append(float(rng.normal()) if lab else None)

    for sid in range(1, n_subjects + 1):
        n_visits = int(rng.integers(3, 9))
        gaps = rng.exponential(90.0, size=n_visits).clip(1.0, 720.0)  # days between visits
        times = [start + timedelta(days=float(rng.integers(0, 3650)))]
        for g in gaps[1:]:
            times.append(times[-1] + timedelta(days=float(g)))
        for when in times:
            for code in rng.choice(noise, size=int(rng.integers(1, 5)), replace=False, p=freq):
                add(sid, when, str(code))
        kind = rng.choice(["both", "a_only", "b_only"], p=[0.8, 0.1, 0.1])
        positive = False
        if kind == "both":
            first, second = sorted(rng.choice(n_visits, size=2, replace=False))
            positive = bool(rng.random() < 0.5)
            early, late = (CODE_A, CODE_B) if positive else (CODE_B, CODE_A)
            add(sid, times[first], early)
            add(sid, times[second], late)
        else:
            add(sid, times[int(rng.integers(n_visits))], CODE_A if kind == "a_only" else CODE_B)
        labels["subject_id"].append(sid)
        labels["prediction_time"].append(times[-1] + timedelta(days=1))
        labels["boolean_value"].append(positive)
    events = pl.DataFrame(
        rows,
        schema={"subject_id": pl.Int64, "time": pl.Datetime("us"), "code": pl.String,
                "numeric_value": pl.Float32},
    ).sort("subject_id", "time")  # fmt: skip
    label_df = pl.DataFrame(
        labels,
        schema={"subject_id": pl.Int64, "prediction_time": pl.Datetime("us"),
                "boolean_value": pl.Boolean},
    )  # fmt: skip
    return events, label_df


# -- events -> the contract's visit arrays (the EHR data layer's job; a direct version here) --
def fit_vocab(events: pl.DataFrame, subjects: np.ndarray) -> dict[str, int]:
    """code -> id for the codes of ``subjects`` (training), most frequent first, from 2."""
    counts = (
        events.filter(pl.col("subject_id").is_in(subjects.tolist()))
        .group_by("code")
        .len()
        .sort(["len", "code"], descending=[True, False])
    )
    return {c: i + 2 for i, c in enumerate(counts["code"].to_list())}


def visit_arrays(
    events: pl.DataFrame,
    labels: pl.DataFrame,
    vocab: dict[str, int],
    max_visits: int = 8,
    max_codes: int = 8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x (N, V, C) int64, t (N, V) float32 days to prediction, y (N,), subject ids (N,).

    One visit = the events of one timestamp, at or before the prediction time; visits
    oldest first and left-aligned, the ``max_visits`` most recent kept; codes in a visit in
    name order, the first ``max_codes`` kept; unknown codes -> 1.
    """
    lab = labels.with_row_index("row")
    ev = (
        events.join(lab, on="subject_id")
        .filter(pl.col("time") <= pl.col("prediction_time"))
        .sort("row", "time", "code")  # a fixed order of codes within a visit
        .with_columns(
            pl.col("code").replace_strict(vocab, default=1, return_dtype=pl.Int64).alias("id"),
            pl.col("time").rank("dense").over("subject_id").cast(pl.Int64).alias("visit"),
        )
        .with_columns(
            (pl.col("visit").max().over("subject_id") - max_visits).clip(0).alias("drop"),
            pl.int_range(pl.len()).over("subject_id", "time").alias("slot"),
        )
        .with_columns((pl.col("visit") - 1 - pl.col("drop")).alias("visit"))
        .filter((pl.col("visit") >= 0) & (pl.col("slot") < max_codes))
    )
    n = len(labels)
    x = np.zeros((n, max_visits, max_codes), dtype=np.int64)
    t = np.zeros((n, max_visits), dtype=np.float32)
    r, v, s = (ev[c].to_numpy() for c in ("row", "visit", "slot"))
    x[r, v, s] = ev["id"].to_numpy()
    days = (ev["prediction_time"] - ev["time"]).dt.total_seconds().to_numpy() / 86400.0
    t[r, v] = days
    y = lab["boolean_value"].cast(pl.Int64).to_numpy().copy()
    return x, t, y, lab["subject_id"].to_numpy()


@dataclass
class Planted:
    """The arrays of one generated cohort, split by subject."""

    x: np.ndarray
    t: np.ndarray
    y: np.ndarray
    split: dict[str, np.ndarray]  # name -> row indices
    vocab: dict[str, int]
    events: pl.DataFrame
    labels: pl.DataFrame


def make_planted(n_subjects: int, seed: int = 0, out_dir: Path | None = None) -> Planted:
    """Generate, optionally write (``events.parquet``, ``labels.parquet``), split, convert."""
    events, labels = generate_events(n_subjects, seed)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        events.write_parquet(out_dir / "events.parquet")
        labels.write_parquet(out_dir / "labels.parquet")
    rows = np.random.default_rng(seed + 1000).permutation(len(labels))
    n_tr, n_va = int(0.7 * len(rows)), int(0.15 * len(rows))
    split = {"train": rows[:n_tr], "valid": rows[n_tr : n_tr + n_va], "test": rows[n_tr + n_va :]}
    subjects = labels["subject_id"].to_numpy()
    vocab = fit_vocab(events, subjects[split["train"]])
    x, t, y, _ = visit_arrays(events, labels, vocab)
    return Planted(x, t, y, split, vocab, events, labels)


# -- training -----------------------------------------------------------------------------------
def _scores(model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[s : s + 512], t[s : s + 512]) for s in range(0, len(x), 512)])
    return (logits[:, 1] - logits[:, 0]).numpy()  # positive log-odds


def train(
    name: str,
    data: Planted,
    seed: int,
    epochs: int = 15,
    lr: float | None = None,
    batch_size: int = 64,
) -> tuple[nn.Module, float, float, float]:
    """Train ``name``; (model at its best validation epoch, valid AUROC, test AUROC, seconds)."""
    torch.manual_seed(seed)
    model = create_model(name, n_inputs=len(data.vocab) + 2, n_classes=2, **SIZES.get(name, {}))
    x, t, y = torch.from_numpy(data.x), torch.from_numpy(data.t), torch.from_numpy(data.y)
    tr, va, te = (torch.from_numpy(data.split[k]) for k in ("train", "valid", "test"))
    opt = torch.optim.Adam(model.parameters(), lr=lr or LR.get(name, 3e-3))
    gen = torch.Generator().manual_seed(seed)
    best, best_state = -1.0, copy.deepcopy(model.state_dict())
    began = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for b in tr[torch.randperm(len(tr), generator=gen)].split(batch_size):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[b], t[b]), y[b])
            loss.backward()
            opt.step()
        auc = roc_auc_score(data.y[va.numpy()], _scores(model, x[va], t[va]))
        if auc > best:
            best, best_state = auc, copy.deepcopy(model.state_dict())
    seconds = time.perf_counter() - began
    model.load_state_dict(best_state)
    test_auc = roc_auc_score(data.y[te.numpy()], _scores(model, x[te], t[te]))
    return model, float(best), float(test_auc), seconds


def sklearn_bag_auroc(data: Planted) -> float:
    """Test AUROC of scikit-learn's logistic regression on the same multi-hot bag of codes:
    a reference that the order-blind ceiling is not a training artefact of ``bag_logreg``."""
    from sklearn.linear_model import LogisticRegression

    n_ids = len(data.vocab) + 2
    bag = np.zeros((len(data.x), n_ids))
    np.put_along_axis(bag, data.x.reshape(len(data.x), -1), 1.0, axis=1)
    bag[:, 0] = 0.0
    tr, te = data.split["train"], data.split["test"]
    clf = LogisticRegression(max_iter=2000).fit(bag[tr], data.y[tr])
    return float(roc_auc_score(data.y[te], clf.decision_function(bag[te])))


def retain_top_code(model: nn.Module, data: Planted) -> tuple[float, float, int]:
    """Over the positive test patients: the fraction whose largest code contribution to the
    positive log-odds is code A, the fraction where it is A or B, and their number."""
    te = data.split["test"]
    pos = te[data.y[te] == 1]
    x, t = torch.from_numpy(data.x[pos]), torch.from_numpy(data.t[pos])
    with torch.no_grad():
        _, contrib = model.contributions(x, t)  # type: ignore[operator]
    contrib = contrib.masked_fill(x == 0, float("-inf")).reshape(len(pos), -1)
    top = x.reshape(len(pos), -1).gather(1, contrib.argmax(1, keepdim=True)).squeeze(1)
    a, b = data.vocab[CODE_A], data.vocab[CODE_B]
    return (
        float((top == a).float().mean()),
        float(((top == a) | (top == b)).float().mean()),
        len(pos),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="synthetic patients")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--out", type=Path, default=Path("runs/ehr_planted"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("| seed | model | valid AUROC | test AUROC | train s | RETAIN top code = A (A or B) |")
    print("|---|---|---|---|---|---|")
    for seed in args.seeds:
        data = make_planted(args.n, seed, args.out / f"seed{seed}")
        ref = sklearn_bag_auroc(data)
        print(f"| {seed} | bag of codes, scikit-learn LogisticRegression | | {ref:.3f} | | |")
        for name in args.models:
            model, va, te, secs = train(name, data, seed, epochs=args.epochs)
            extra = ""
            if name == "retain":
                frac_a, frac_ab, n_pos = retain_top_code(model, data)
                extra = f"{frac_a:.3f} ({frac_ab:.3f}) of {n_pos}"
            print(f"| {seed} | {name} | {va:.3f} | {te:.3f} | {secs:.1f} | {extra} |", flush=True)


if __name__ == "__main__":
    main()
