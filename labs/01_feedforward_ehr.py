# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 1: a feed-forward network on EHR feature vectors
#
# The lab's `patients.svmlight`: one row per patient, a few thousand sparse features
# (counts of diagnoses, drugs and labs) and a binary label. What this lab teaches:
#
# 1. reading the data and splitting it (one row per patient, so a stratified split by rows
#    is also a split by patient: the audit says so);
# 2. feature scaling fitted on the **training rows only**, and what goes wrong otherwise;
# 3. an MLP written in PyTorch, trained with `BCEWithLogitsLoss`, next to the library's
#    `mlp` model trained by the recipe `lab1_ffn_svmlight`;
# 4. AUROC with its bootstrap confidence interval;
# 5. exercise: a logistic-regression baseline.
#
# Needs `$MEDTORCH_DATA/cse6250_course/patients.svmlight.gz`. Runs in well under a minute
# on a laptop CPU. The full-length library run is
# `medtorch train lab1_ffn_svmlight` (30 epochs, early stopping on validation AUROC).
#
# Cells marked **medtorch** are the only ones that call the library, through its Python API
# (`import medtorch as mt`, the same code path as the `medtorch` command); the rest is
# PyTorch, NumPy and scikit-learn.

# %%
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import medtorch as mt

torch.manual_seed(0)
DATA = os.environ.get("MEDTORCH_DATA")
if not DATA:
    raise RuntimeError(
        "set MEDTORCH_DATA to the folder that holds cse6250_course/ (see README, Data)"
    )
DATA = Path(DATA)
RUNS = Path(
    tempfile.mkdtemp(prefix="lab1-")
)  # run folders of this notebook; use runs/ to keep them

# %% [markdown]
# ## 1. Data and split (**medtorch**)
#
# `mt.datasets.load` reads the svmlight file into an `ArrayDataset` (dense `float32`
# features, labels, one group per patient); `mt.splits.make` gives train / valid / test row
# indices (64 / 16 / 20 %, stratified by label, seed 6250, as the lab) and the leakage audit
# that every run writes to `splits.json`.

# %%
# --- medtorch cell: data and split (mt.datasets.load, mt.splits.make) ---
ds = mt.datasets.load("svmlight_binary", DATA)
split, audit = mt.splits.make(ds, method="stratified", ratios=[0.64, 0.16, 0.20], seed=6250)
# --- end medtorch cell ---

X, y = ds.inputs["x"], ds.y
print("X", X.shape, X.dtype, " positives:", int(y.sum()), "of", len(y))
print({k: len(v) for k, v in split.items()})
print("audit:", audit["leakage_audit"], "-", audit["leakage_note"])
itr, iva, ite = split["train"], split["valid"], split["test"]
print(f"non-zero entries: {(X != 0).mean():.1%}")

# %% [markdown]
# ## 2. Scaling: fitted on the training rows only
#
# A z-score $(x - \mu) / \sigma$ per feature, with $\mu, \sigma$ from the **training rows**.
# The same numbers are then applied to validation, test and, later, to every new patient:
# they are part of the model (`medtorch` saves them as `normalizer.json` in the run folder).
#
# Three ways to get it wrong, shown below:
#
# * **fit on all rows**: the test patients' values shape the training inputs. The
#   held-out set is no longer held out, and nothing at deployment time can reproduce it;
# * **scale the test set with its own statistics**: the inputs change meaning from one
#   cohort to the next, and a single new patient cannot be scaled at all (its own sd is 0);
# * **features that never occur in training**: their train sd is 0. Dividing by it gives
#   NaN or infinity; the fix is to leave them at 0 (the model could not learn them anyway).


# %%
def fit_scaler(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = x.mean(0)
    sd = x.std(0)
    sd[sd == 0] = 1.0  # constant in the fitting rows: leave the feature at x - mu
    return mu, sd


mu_tr, sd_tr = fit_scaler(X[itr])  # the right way: training rows only
mu_all, sd_all = fit_scaler(X)  # leaks: the test rows are in the statistics
unseen = (X[itr] != 0).sum(0) == 0
print(
    f"features never non-zero in train: {int(unseen.sum())} of {X.shape[1]}, "
    f"of which {int(((X[ite] != 0).sum(0) > 0)[unseen].sum())} occur in test"
)
changed = np.abs(sd_all - sd_tr) / sd_tr > 0.05
print(
    f"features whose sd moves by more than 5 % when the test rows are added: {int(changed.sum())}"
)
one_patient = X[ite[:1]]
print("sd of a single new patient, per feature (all zero):", float(one_patient.std(0).max()))


def scale(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return ((x - mu) / sd).astype(np.float32)


# %% [markdown]
# ## 3. An MLP in PyTorch, trained with BCE with logits
#
# Two hidden layers (the lab's network, smaller here: 64 units, dropout 0.5), **one**
# output: the logit $z$ of the positive class. `BCEWithLogitsLoss` computes
# $-[y \log \sigma(z) + (1 - y) \log(1 - \sigma(z))]$ from $z$ directly, which is stable
# where `sigmoid` followed by `BCELoss` is not (it never takes the log of a rounded 0).

# %%
z = torch.tensor([-30.0, 0.0, 30.0])
t = torch.tensor([1.0, 1.0, 0.0])
print("BCEWithLogits:", nn.BCEWithLogitsLoss(reduction="none")(z, t))
print("sigmoid + BCE:", nn.BCELoss(reduction="none")(torch.sigmoid(z), t), "(clamped at 100)")


class FeedForward(nn.Module):
    def __init__(self, n_features: int, hidden: int = 64, dropout: float = 0.5) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)  # (N, F) -> (N,) logits


def train_ffn(xtr, ytr, xva, yva, epochs: int = 10, seed: int = 0):
    """Mini-batch Adam, keeping the epoch with the best validation AUROC."""
    from sklearn.metrics import roc_auc_score

    torch.manual_seed(seed)
    net = FeedForward(xtr.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = nn.BCEWithLogitsLoss()
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr).float()
    xv = torch.from_numpy(xva)
    best, best_state, curve = -1.0, None, []
    for _epoch in range(epochs):
        net.train()
        for idx in torch.randperm(len(xt)).split(32):
            opt.zero_grad()
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            auc = roc_auc_score(yva, torch.sigmoid(net(xv)).numpy())
        curve.append(auc)
        if auc > best:
            best, best_state = auc, {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    return net.eval(), curve


def predict(net, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(net(torch.from_numpy(x))).double().numpy()


t0 = time.perf_counter()
net, curve = train_ffn(scale(X[itr], mu_tr, sd_tr), y[itr], scale(X[iva], mu_tr, sd_tr), y[iva])
p_test = predict(net, scale(X[ite], mu_tr, sd_tr))
print(
    f"trained in {time.perf_counter() - t0:.1f} s; validation AUROC by epoch:", np.round(curve, 3)
)

# %% [markdown]
# ## 4. AUROC with its confidence interval (**medtorch**)
#
# One test set of ~170 patients gives an AUROC with a wide interval. `mt.metrics.evaluate` takes
# class probabilities `(N, K)` (for a binary task: `[1 - p, p]`) and resamples the test
# patients 500 times here (a percentile bootstrap; runs use 1000 by default).


# %%
# --- medtorch cell: metrics (mt.metrics.evaluate) ---
def auroc_ci(y_true: np.ndarray, p: np.ndarray) -> dict:
    scores = mt.metrics.evaluate(y_true, np.stack([1 - p, p], 1), ds.class_names, n_bootstrap=500)
    return scores["overall"]["auroc"]


# --- end medtorch cell ---


def show(name: str, r: dict) -> None:
    lo, hi = r["ci"]
    print(f"{name:<34} AUROC {r['value']:.3f}  95% CI [{lo:.3f}, {hi:.3f}]")


show("hand-written MLP, train-only scaling", auroc_ci(y[ite], p_test))

# the same network with the leaking scaler, and with the test set scaled by its own statistics
net_all, _ = train_ffn(scale(X[itr], mu_all, sd_all), y[itr], scale(X[iva], mu_all, sd_all), y[iva])
show("scaler fitted on all rows", auroc_ci(y[ite], predict(net_all, scale(X[ite], mu_all, sd_all))))
mu_te, sd_te = fit_scaler(X[ite])
show(
    "test scaled by its own statistics", auroc_ci(y[ite], predict(net, scale(X[ite], mu_te, sd_te)))
)

# %% [markdown]
# Read the three lines together. On this data they lie inside each other's confidence
# intervals, so one split cannot show how much the leaking scaler flatters, and a figure
# that looks as good is not a reassurance: its test patients' statistics were used before
# they were "new", and nothing at deployment time can reproduce that. The harm of
# self-scaling shows as soon as patients arrive one at a time, as they do in a clinic:
# each one, scaled by its own mean and sd, becomes the all-zero vector, so every patient
# gets the same probability.

# %%
five = X[ite[:5]]
self_scaled = np.stack([scale(row[None], *fit_scaler(row[None]))[0] for row in five])
print("train-scaled :", np.round(predict(net, scale(five, mu_tr, sd_tr)), 3))
print("self-scaled  :", np.round(predict(net, self_scaled), 3))
assert np.allclose(self_scaled, 0) and np.ptp(predict(net, self_scaled)) == 0

# %% [markdown]
# ## 5. The library's MLP: recipe `lab1_ffn_svmlight` (**medtorch**)
#
# The same steps, in one call: the recipe's stratified split, `standard` scaling fitted on
# the training rows (`preprocess.normalize`), the `mlp` model (two hidden layers of 256,
# dropout 0.5, **two** logits and softmax cross-entropy, which for two classes is the same
# loss as BCE with logits on their difference), Adam, early stopping on validation AUROC.
# Shortened here to 8 epochs.

# %%
# --- medtorch cell: train a recipe (mt.load_recipe, mt.train) ---
cfg = mt.load_recipe(
    "lab1_ffn_svmlight", overrides={"trainer.max_epochs": 8, "trainer.progress": False}
)
run = mt.train(cfg, out=RUNS, data_dir=DATA)  # the same run as `medtorch train lab1_ffn_svmlight`
# --- end medtorch cell ---

show("library mlp (recipe, 8 epochs)", run.metrics["test"]["overall"]["auroc"])
print("run folder:", run.path.name, "->", sorted(p.name for p in run.path.iterdir()))
hst = run.history  # history.csv, one row per epoch: a DataFrame (a dict of arrays without pandas)
print("epoch  train_loss  valid_loss  valid_auroc")
for row in list(zip(hst["epoch"], hst["train_loss"], hst["valid_loss"], hst["valid_auroc"]))[:4]:
    print(f"{int(row[0]):>5}  {row[1]:>10.3f}  {row[2]:>10.3f}  {row[3]:>11.3f}")

# %% [markdown]
# The run folder holds everything the report is made of; `report.html` is one
# self-contained page (`run.show_report()` shows it in the notebook; `mt.open_run(folder)`
# opens a finished run again later). Its plots come back as matplotlib figures:

# %%
run.plot("learning_curves")

# %% [markdown]
# ## Exercises
#
# 1. **Logistic regression baseline.** Fit
#    `sklearn.linear_model.LogisticRegression(C=..., max_iter=2000)` on the train-scaled
#    features, choose `C` from `[0.001, 0.01, 0.1, 1]` on the validation rows, and report the
#    test AUROC with `auroc_ci`. Then write it in PyTorch: `nn.Linear(F, 1)` with
#    `BCEWithLogitsLoss` and `weight_decay` as the L2 penalty. Does the MLP beat it, given
#    the confidence intervals?
# 2. Train the library's linear model: the `mlp` with no hidden layer is logistic
#    regression (`mt.load_recipe("lab1_ffn_svmlight", overrides={"model.params.hidden": []})`).
# 3. Replace the z-score with `log1p` of the counts followed by the z-score. Does AUROC move?
# 4. The AUROC interval is wide. How many test patients would halve its width? (The width
#    shrinks roughly as $1/\sqrt{n}$.)
# 5. Full length: `medtorch train lab1_ffn_svmlight` and open the run's `report.html`.
