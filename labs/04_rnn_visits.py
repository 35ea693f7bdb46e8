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
# # Lab 4: recurrent networks on hospital visits (MIMIC-III demo), and RETAIN
#
# A patient's record as a **sequence of visits**, each visit a **set of codes**
# (diagnoses, procedures, drugs, labs). What this lab teaches:
#
# 1. from event tables to arrays: the MIMIC-III demo turned into readmission samples by
#    `medtorch`'s EHR layer, with its cohort flow (who was excluded, and why);
# 2. **padding and masks**: `x` is `(N, V, C)` code ids with 0 for padding, `t` is `(N, V)`
#    days before the prediction time; the visit mask is `x[:, :, 0] != 0`;
# 3. a visit GRU written in PyTorch: an embedding bag per visit, a packed GRU over visits;
# 4. RETAIN (Choi et al. 2016): attention over visits (alpha) and over embedding
#    dimensions (beta), and its **readout** for one patient: each code's additive
#    contribution to the predicted log-odds;
# 5. the shipped RETAIN recipe (`mimic3_mortality_retain`) trained by `medtorch` on the
#    demo's readmission samples, and the explanations its run writes (`explanations.json`).
#
# The demo has 100 patients: 80 readmission samples, far too few to learn from (a test set
# of a few dozen admissions, a handful of them positive). So the models are first trained
# on a **synthetic cohort with a planted signal** (the label is carried only by the order
# of two codes, as in `benchmarks/ehr/planted.py`), where we know what a good model must
# find, and then run on the demo for the mechanics. Needs `$MEDTORCH_DATA/mimic3_demo`.
# About a minute on a laptop CPU; the full MIMIC-III (credentialed access) is read the same
# way with `task.params.path` pointing at its folder.

# %%
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import medtorch as mt

torch.manual_seed(0)
DATA = os.environ.get("MEDTORCH_DATA")
if not DATA:
    raise RuntimeError("set MEDTORCH_DATA to the folder that holds mimic3_demo/ (see README, Data)")
DATA = Path(DATA)
TMP = Path(tempfile.mkdtemp(prefix="lab4-"))
RUNS = TMP / "runs"  # run folders of this notebook; use runs/ to keep them
CACHE = TMP / "ehr-cache"  # the EHR layer's cache (default: the user cache folder)

# %% [markdown]
# ## 1. From MIMIC-III tables to visit arrays (**medtorch**)
#
# Task `readmission_30d`: one sample per admission (its discharge is the prediction time),
# positive when the next admission starts within 30 days. The inputs are every earlier
# visit's codes, up to the discharge. Restricted here to diagnosis and procedure codes
# (`code_prefixes`), so the readout of section 5 is readable. `mt.datasets.load` gives one
# raw row per sample (its own codes and times), `mt.splits.make` splits by patient (with the
# leakage audit), and the task's encoder fits the code vocabulary on the **training
# patients only** (a code seen only in test becomes the unknown id 1) and encodes every
# partition: what every run does, and saves as `vocab.json` in its folder.

# %%
# --- medtorch cell: data, split and vocabulary (mt.datasets.load, mt.splits.make) ---
from medtorch.data.tasks.ehr import VocabEncoder  # the EHR tasks' encoder

params = {
    "source": "mimic3_demo",
    "code_prefixes": ["DIAGNOSIS", "PROCEDURE"],
    "cache_dir": str(CACHE),
}
ds = mt.datasets.load("readmission_30d", DATA, **params)
split, audit = mt.splits.make(ds, method="by_patient", ratios=[0.6, 0.2, 0.2], seed=6250)
encoder = VocabEncoder.fit(ds, split["train"], {})  # the vocabulary: training patients only
parts = {}
for name, rows in split.items():
    parts[name] = ds.subset(rows)
    parts[name].inputs = encoder.transform(parts[name].inputs)  # raw rows -> x, t arrays
# --- end medtorch cell ---

cohort = ds.meta["cohort"]
print("subjects in:", cohort["subjects_in"], " admissions in:", cohort["admissions_in"])
for e in cohort["exclusions"]:  # every rule is listed in cohort.json, also those that removed none
    if int(e["count"]):
        print(f"  excluded {e['count']:>3} {e.get('unit', '')}: {e['reason']}")
print("samples:", len(ds), " classes:", cohort["class_counts"])
print({k: (len(v), int(v.y.sum())) for k, v in parts.items()}, "(samples, positives)")
print("split audit:", audit["leakage_audit"], "-", audit["leakage_note"])

# %% [markdown]
# ## 2. Padding and masks
#
# Patients have different numbers of visits and visits different numbers of codes, so a
# batch is padded to `V` visits of `C` codes. Visits are oldest first and left-aligned
# (padding visits at the end); within a visit, codes are left-aligned. Id 0 is padding,
# 1 the unknown code.

# %%
train = parts["train"]
x, t = train.inputs["x"], train.inputs["t"]
codes = [encoder.decode(k) for k in range(encoder.vocab.vocab_size)]  # id -> code
print("x", x.shape, x.dtype, " t", t.shape, t.dtype, " vocabulary:", len(codes))
visit_mask = x[:, :, 0] != 0  # (N, V) real visits
code_mask = x != 0  # (N, V, C) real codes
n_visits = visit_mask.sum(1)
print(
    "visits per sample: min",
    n_visits.min(),
    "max",
    n_visits.max(),
    f" padding share of x: {1 - code_mask.mean():.0%}",
)
i = int(np.argmax(n_visits))
print(f"\nsample {train.sample_ids[i]} (label {train.class_names[train.y[i]]}):")
for v in range(int(n_visits[i])):
    names = [codes[k] for k in x[i, v] if k != 0]
    print(
        f"  visit {v}: {t[i, v]:7.1f} days before discharge, {len(names)} codes, e.g. {names[:3]}"
    )

# %% [markdown]
# ## 3. A synthetic cohort with a planted signal
#
# 2,000 patients, 3-8 visits of 1-4 noise codes. Codes A and B are planted in two visits of
# 80 % of the patients, in a random order; the label is 1 when **A comes before B**. A bag
# of codes (which codes, not when) cannot tell a positive from a negative that holds the
# same two codes; a model that reads the order can. Arrays in the same layout as above.


# %%
def planted_cohort(n: int, seed: int = 0, n_noise: int = 60, V: int = 8, C: int = 5):
    rng = np.random.default_rng(seed)
    A, B = 2, 3  # ids of the planted codes; noise codes are 4 .. 4 + n_noise - 1
    x = np.zeros((n, V, C), dtype=np.int64)
    t = np.zeros((n, V), dtype=np.float32)
    y = np.zeros(n, dtype=np.int64)
    for i in range(n):
        nv = int(rng.integers(3, V + 1))
        for v in range(nv):
            k = int(rng.integers(1, C))
            x[i, v, :k] = rng.choice(n_noise, size=k, replace=False) + 4
        gaps = rng.exponential(90, size=nv).clip(1, 720)
        t[i, :nv] = np.cumsum(gaps[::-1])[::-1]  # days before the prediction time, decreasing
        kind = rng.choice(3, p=[0.8, 0.1, 0.1])  # both, A only, B only
        if kind == 0:
            first, second = sorted(rng.choice(nv, size=2, replace=False))
            y[i] = int(rng.random() < 0.5)
            early, late = (A, B) if y[i] else (B, A)
            for v, code in ((first, early), (second, late)):
                x[i, v, int((x[i, v] != 0).sum())] = code
        else:
            v = int(rng.integers(nv))
            x[i, v, int((x[i, v] != 0).sum())] = A if kind == 1 else B
    return x, t, y, 4 + n_noise


px, pt, py, p_vocab = planted_cohort(2000)
rows = np.random.default_rng(1).permutation(len(py))
p_split = {"train": rows[:1400], "valid": rows[1400:1700], "test": rows[1700:]}
print("planted:", px.shape, "positives", py.mean().round(2), " vocabulary", p_vocab)

# %% [markdown]
# ## 4. A visit GRU in PyTorch
#
# Each visit becomes one vector: the sum of its codes' embeddings (`padding_idx=0` makes the
# padding embedding zero and keeps it zero). The visit vectors run through a GRU as a
# **packed** sequence, so padding visits never enter the recurrence, and the last real
# visit's state feeds the head. The library's `visit_gru` is this model plus time features.


# %%
class VisitGRU(nn.Module):
    def __init__(self, vocab: int, dim: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.rnn = nn.GRU(dim, dim, batch_first=True)
        self.head = nn.Linear(dim, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lengths = (x[:, :, 0] != 0).sum(1).clamp(min=1)  # (N,) real visits
        v = self.embed(x).sum(2)  # (N, V, C, D) -> (N, V, D); padding codes add 0
        packed = pack_padded_sequence(v, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h_n = self.rnn(packed)  # (1, N, D): the state at each sample's last real visit
        return self.head(h_n[-1])  # (N, 2)


def fit(model: nn.Module, inputs, y, split, epochs: int = 12, lr: float = 3e-3):
    """Adam on cross-entropy, batches of 64, keeping the epoch with the best validation AUROC."""
    from sklearn.metrics import roc_auc_score

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    tens = [torch.from_numpy(a) for a in inputs]
    yt = torch.from_numpy(y)
    best, state = -1.0, None
    for _epoch in range(epochs):
        model.train()
        for idx in torch.from_numpy(
            np.random.default_rng(_epoch).permutation(split["train"])
        ).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(*[a[idx] for a in tens]), yt[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            va = split["valid"]
            auc = roc_auc_score(y[va], torch.softmax(model(*[a[va] for a in tens]), 1)[:, 1])
        if auc > best:
            best, state = auc, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    model.eval()
    te = split["test"]
    with torch.no_grad():
        p = torch.softmax(model(*[a[te] for a in tens]), 1)[:, 1].numpy()
    return roc_auc_score(y[te], p)


t0 = time.perf_counter()
torch.manual_seed(0)
auc_gru = fit(VisitGRU(p_vocab), [px], py, p_split)
print(
    f"visit GRU on the planted cohort: test AUROC {auc_gru:.3f} ({time.perf_counter() - t0:.1f} s)"
)

# a bag of codes for comparison: which codes, not in which order
bag = np.zeros((len(py), p_vocab), dtype=np.float32)
np.put_along_axis(bag, px.reshape(len(py), -1), 1.0, axis=1)
bag[:, 0] = 0
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

lr_bag = LogisticRegression(max_iter=2000).fit(bag[p_split["train"]], py[p_split["train"]])
auc_bag = roc_auc_score(py[p_split["test"]], lr_bag.predict_proba(bag[p_split["test"]])[:, 1])
print(
    f"logistic regression on the bag of codes: test AUROC {auc_bag:.3f} (order is invisible to it)"
)

# %% [markdown]
# ## 5. RETAIN, and its readout for one patient (**medtorch** model)
#
# RETAIN runs two GRUs over the visits **in reverse time**; one gives a weight per visit
# ($\alpha_j$, a softmax over the real visits), the other a weight per embedding dimension
# ($\beta_j$). The context is $c = \sum_j \alpha_j \beta_j \odot v_j$ and the logit is
# linear in $c$, so the predicted log-odds splits exactly into one term per code of every
# visit: $\omega_{j,k} = \alpha_j\, w^\top (\beta_j \odot W_{emb}[:, k])$.
# `RETAIN.contributions(x, t)` returns $\alpha$ and these terms.

# %%
# --- medtorch cell: model (mt.models.create) ---
retain = mt.models.create(
    "retain",
    n_inputs=p_vocab,
    n_classes=2,
    embed_dim=32,
    alpha_hidden=32,
    beta_hidden=32,
    dropout=0.1,
)
# --- end medtorch cell ---

torch.manual_seed(0)
t0 = time.perf_counter()
auc_retain = fit(retain, [px, pt], py, p_split)
print(
    f"RETAIN on the planted cohort: test AUROC {auc_retain:.3f} ({time.perf_counter() - t0:.1f} s)"
)

pos = [i for i in p_split["test"] if py[i] == 1 and (px[i] == 2).any() and (px[i] == 3).any()]
i = pos[0]
xi, ti = torch.from_numpy(px[i : i + 1]), torch.from_numpy(pt[i : i + 1])
alpha, contrib = retain.contributions(xi, ti)  # (1, V), (1, V, C)
w, b = retain.score_weights()
with torch.no_grad():
    logits = retain(xi, ti)[0]
log_odds = (logits[1] - logits[0]).item()
print(
    f"\npatient {i}: predicted log-odds {log_odds:+.3f} = contributions + bias = "
    f"{contrib.sum().item() + b.item():+.3f}"
)
label = {2: "A", 3: "B"}
for v in range(int((px[i, :, 0] != 0).sum())):
    cells = [
        f"{label.get(int(k), k)}:{c:+.2f}" for k, c in zip(px[i, v], contrib[0, v].tolist()) if k
    ]
    print(f"  visit {v}  alpha {alpha[0, v].item():.2f}  {'  '.join(cells)}")
assert abs(contrib.sum().item() + b.item() - log_odds) < 1e-3
top = int(px[i].reshape(-1)[contrib[0].reshape(-1).argmax()])
print("largest contribution to the positive log-odds:", label.get(top, f"noise code {top}"))

# %% [markdown]
# The contributions add up to the model's log-odds (the assertion checks it), which is
# what makes RETAIN's explanation exact rather than a post-hoc approximation. Whether the
# largest one falls on the planted code A depends on how well this short training found
# the signal: read it together with the test AUROC above.

# %% [markdown]
# ## 6. The shipped RETAIN recipe on the MIMIC-III demo (**medtorch**)
#
# `mimic3_mortality_retain` is one of the EHR recipes that ship with `medtorch`
# (`medtorch recipes` lists them): RETAIN, split by patient, Adam, early stopping on the
# validation loss. Its own task is `mortality_next_visit`; here it is pointed at the
# readmission samples of section 1 (the same `task.params`) and shortened: embeddings of
# 32, 15 epochs, 300 bootstrap resamples. With a few dozen test admissions and a handful
# of positives, the numbers below carry almost no information (look at the interval); the
# point is the run folder, the same as for every other modality.

# %%
# --- medtorch cell: train the shipped recipe (mt.load_recipe, mt.train) ---
cfg = mt.load_recipe(
    "mimic3_mortality_retain",
    overrides={
        "name": "lab4_readmission_retain",
        "task.name": "readmission_30d",
        "task.params": params,
        "model.params": {"embed_dim": 32, "alpha_hidden": 32, "beta_hidden": 32},
        "trainer.max_epochs": 15,
        "trainer.batch_size": 16,
        "trainer.progress": False,
        "eval.n_bootstrap": 300,
    },
)
run = mt.train(cfg, out=RUNS, data_dir=DATA)
# --- end medtorch cell ---

metrics = run.metrics
r = metrics["test"]["overall"]["auroc"]
ci = "undefined" if not r.get("ci") else f"[{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]"
print(
    f"MIMIC-III demo, readmission, RETAIN: test AUROC {r['value']:.2f}, 95% CI {ci}, "
    f"n = {metrics['test']['n']}"
)
print(sorted(p.name for p in run.path.iterdir()))

# %% [markdown]
# ### The explanations the run writes
#
# A run of a model that explains itself (RETAIN) also writes `explanations.json`: for a few
# test samples (the most confident positives first), each visit's weight $\alpha_j$ and its
# top codes by contribution $\omega_{j,k}$ to the log-odds, named through the run's
# vocabulary (codes by the size of their contribution, with its sign). The report has a
# section that draws them (`run.show_report()`). Trained on a few dozen admissions, this
# model has learnt little (see its AUROC above), so read them for what they show of the
# mechanics, not as clinical findings; on the planted cohort of section 5 the same readout
# finds the planted code.

# %%
explained = json.loads((run.path / "explanations.json").read_text())
names = metrics["test"]["class_names"]
print(len(explained), "test samples explained")
for sample in explained[:2]:
    print(
        f"\nsample {sample['sample_id']}: label {names[sample['y_true']]}, "
        f"P(readmitted) {sample['score']:.2f}"
    )
    for step in sample["steps"]:
        top = ", ".join(f"{code} {c:+.2f}" for code, c in step["top"][:3])
        print(
            f"  visit {step['step']} ({step['days_before']:6.1f} days before), alpha {step['weight']:.2f}: {top}"
        )

# %% [markdown]
# ## Exercises
#
# 1. Replace the sum of code embeddings by their mean (`bag_mode="mean"` in the library's
#    models). When would a mean be the better choice?
# 2. In `VisitGRU`, drop the packing and run the padded visit sequence as is. How much does
#    the planted-cohort AUROC fall? (Padding visits come **after** the real ones here.)
# 3. Read out RETAIN for ten positive test patients: how often is the planted code A the
#    largest contribution? And for negatives (B before A)?
# 4. Train the shipped recipe on its own task, `mortality_next_visit`
#    (`mt.load_recipe("mimic3_mortality_retain", overrides={"trainer.max_epochs": 15})`),
#    and the visit GRU beside it (`mimic3_mortality_gru`). How many samples does mortality
#    leave? Read both runs' `cohort.json` (`run.cohort`).
# 5. With the full MIMIC-III (credentialed access on PhysioNet), point `task.params.path`
#    at its folder and train for real.
