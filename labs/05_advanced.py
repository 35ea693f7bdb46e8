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
# # Lab 5: advanced topics: a residual network on ECG, and CNNs on medical images
#
# Two parts:
#
# **A. Heartbeats, MIT-BIH, the inter-patient protocol.** A Hannun et al. (2019) style 1-D
# residual network classifies each beat into the five AAMI classes (N normal, S
# supraventricular ectopic, V ventricular ectopic, F fusion, Q unknown), trained on the
# records of DS1 and tested on the **other patients** of DS2 (de Chazal et al. 2004). The
# metrics are the AAMI ones: sensitivity (Se) and positive predictivity (+P) per class,
# with confidence intervals that resample whole records.
#
# **B. Images, RetinaMNIST.** Diabetic-retinopathy grade 0-4 from 28 x 28 fundus photos
# with torchvision's ResNet-18, the plots of the run report, and the **mechanics** of
# fine-tuning: freezing layers, a new head, an optimizer over the trainable part only, and
# the batch-norm trap. Transfer learning proper (ImageNet weights, what they buy on small
# medical data sets) is a separate piece of work in this project: there is no network here
# to download weights, so every network below starts from random weights.
#
# Needs `$MEDTORCH_DATA/mitdb` and `$MEDTORCH_DATA/medmnist`. Both recipes are shortened to
# fit in a couple of minutes on a laptop CPU; the full-length runs are
# `medtorch train mitdb_aami_resnet1d` and `medtorch train retinamnist_resnet18`.

# %%
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

import medtorch as mt

torch.manual_seed(0)
DATA = os.environ.get("MEDTORCH_DATA")
if not DATA:
    raise RuntimeError(
        "set MEDTORCH_DATA to the folder that holds mitdb/ and medmnist/ (see README, Data)"
    )
DATA = Path(DATA)
RUNS = Path(
    tempfile.mkdtemp(prefix="lab5-")
)  # run folders of this notebook; use runs/ to keep them

# %% [markdown]
# ## A. MIT-BIH heartbeats, DS1 -> DS2 (**medtorch**)
#
# The recipe `mitdb_aami_resnet1d` in short: each beat is a 0.7 s window of lead MLII at
# 180 Hz, given twice (the beat, and the beat minus its record's median beat), plus RR
# interval features relative to the record; the network is 8 residual blocks of 16-32
# filters; after training, a second stage (gradient-boosted trees on RR and beat-shape
# features, fitted on DS1) decides N vs S again. Shortened here: 2 blocks of 8 filters,
# one epoch, 200 bootstrap resamples.

# %%
# --- medtorch cell: train a recipe (mt.load_recipe, mt.train) ---
ecg_cfg = mt.load_recipe(
    "mitdb_aami_resnet1d",
    overrides={
        "model.params.base_filters": 8,
        "model.params.n_blocks": 2,
        "trainer.max_epochs": 1,
        "trainer.progress": False,
        "eval.n_bootstrap": 200,
    },
)
ecg_run = mt.train(ecg_cfg, out=RUNS, data_dir=DATA)
ecg_metrics, ecg_splits = ecg_run.metrics, ecg_run.splits
# --- end medtorch cell ---

for part, info in ecg_splits["partitions"].items():
    print(
        f"{part:<6} {info['n']:>6} beats from {info['n_groups']:>2} records  {info['class_counts']}"
    )
print("audit:", ecg_splits["leakage_audit"], "-", ecg_splits["leakage_note"])

# %% [markdown]
# ### The PyTorch underneath: a residual block
#
# Each block is batch norm, ReLU, dropout, convolution, twice, plus the **shortcut**: the
# block's input added to its output (max-pooled and zero-padded in channels where the
# block downsamples or widens). The shortcut lets the gradient reach early layers
# unchanged, which is what makes deep stacks trainable.
#
# The run's `model.json` names the model, its parameters and the shapes it was built for;
# `mt.models.create` rebuilds the same network from it (with fresh random weights: the
# structure is the point here; `ecg_run.predict(...)` uses the trained checkpoint).

# %%
# --- medtorch cell: the run's network, rebuilt (mt.models.create) ---
ecg_spec = json.loads((ecg_run.path / "model.json").read_text())
accepted = mt.models.model_params(ecg_spec["name"])
shapes = {k: v for k, v in ecg_spec["hints"].items() if k in accepted}
ecg_model = mt.models.create(
    ecg_spec["name"],
    ecg_spec["hints"]["n_inputs"],
    len(ecg_spec["class_names"]),
    **shapes,
    **ecg_spec["params"],
).eval()
# --- end medtorch cell ---
print("inputs:", ecg_spec["input_kinds"], " hints:", ecg_spec["hints"])
print(ecg_model.blocks[1])  # the second residual block (it downsamples: stride 2)
x_demo = torch.randn(4, ecg_spec["hints"]["n_inputs"], ecg_spec["hints"]["n_times"])  # (N, C, T)
rr_demo = torch.randn(4, ecg_spec["hints"]["n_rr"])
with torch.no_grad():
    print("logits", tuple(ecg_model(x_demo, rr_demo).shape), "for", ecg_spec["class_names"])
print("parameters:", sum(p.numel() for p in ecg_model.parameters()))

# %% [markdown]
# ### AAMI metrics on DS2
#
# Accuracy is dominated by N beats (about 90 % of DS2), so it says little. Read Se and +P
# of S and V: those are the classes the inter-patient literature compares on. S beats
# look like N beats and differ mainly in timing (they come early), so their Se rests on
# the RR features and the second stage (exercise 2 takes it away). Look at the width of
# the S interval: DS2's S beats sit in a handful of records, and resampling records shows
# how much the figure depends on which patients are in the test set. A metric that is
# undefined (a class never predicted has no +P) is printed as `-`.

# %%
aami = ecg_metrics["test"]["aami"]
print(f"DS2: {aami['n']} beats, {aami['n_groups']} records; CIs: {aami['ci_method']}")


def num(v: float | None) -> str:
    return "-" if v is None or v != v else f"{v:.3f}"  # None or NaN: undefined


print(f"{'class':<6}{'support':>8}{'Se':>8}{'+P':>8}   Se 95% CI")
for name, row in aami["per_class"].items():
    se, pp = row["Se"], row["+P"]
    ci = "" if not se.get("ci") else f"[{num(se['ci'][0])}, {num(se['ci'][1])}]"
    print(f"{name:<6}{row['support']:>8}{num(se['value']):>8}{num(pp['value']):>8}   {ci}")
print("confusion matrix (rows true N S V F Q):\n", np.array(aami["confusion_matrix"]))
if "after_training" in ecg_metrics:
    print(
        "second stage:",
        {
            k: ecg_metrics["after_training"][k]
            for k in ("method", "fitted_on")
            if k in ecg_metrics["after_training"]
        },
    )

# %% [markdown]
# ## B. RetinaMNIST with ResNet-18 (**medtorch**)
#
# The recipe `retinamnist_resnet18` uses the small-image stem (a 3 x 3 stride-1 first
# convolution, no max-pool), which keeps 28 x 28 feature maps in the first stage and costs
# minutes per epoch on a CPU. Shortened here: torchvision's own stem
# (`model.params.small_input=false`, 28 -> 7 pixels before the first block), 2 epochs.

# %%
# --- medtorch cell: train a recipe (mt.load_recipe, mt.train) ---
img_cfg = mt.load_recipe(
    "retinamnist_resnet18",
    overrides={
        "model.params.small_input": False,
        "trainer.max_epochs": 2,
        "trainer.progress": False,
        "eval.n_bootstrap": 200,
    },
)
img_run = mt.train(img_cfg, out=RUNS, data_dir=DATA)
img_metrics = img_run.metrics
# --- end medtorch cell ---

test = img_metrics["test"]
for key in ("accuracy", "auroc", "macro_f1"):
    r = test["overall"][key]
    print(f"{key:<10} {r['value']:.3f}  [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]")
for family in ("ordinal", "decision"):
    if family in test:
        print(
            family,
            "->",
            {
                k: (round(v["value"], 3) if isinstance(v, dict) and "value" in v else v)
                for k, v in test[family].get("overall", test[family]).items()
                if isinstance(v, dict) and "value" in v
            },
        )

# %% [markdown]
# ### The report's plots
#
# `run.plot(name)` gives each plot its `report.html` shows as a matplotlib figure: learning
# curves, the confusion matrix, ROC / precision-recall curves and the reliability diagram
# (are the predicted probabilities calibrated?). `img_run.show_report()` shows the whole
# report in the notebook.

# %%
from IPython.display import display

for name in ("learning_curves", "confusion_matrix", "roc", "reliability"):
    display(img_run.plot(name))
print("the whole report:", img_run.report_path.name, "in", img_run.path.name)

# %% [markdown]
# ### Fine-tuning mechanics (random weights, no download)
#
# Fine-tuning a pretrained network means: keep most of it fixed, replace the head for the
# new classes, train the rest. The mechanics are the same with random weights, so they
# are shown here on `torchvision.models.resnet18(weights=None)`:
#
# 1. `requires_grad_(False)` on everything, then `True` on what should train (the last
#    stage `layer4` and the new head);
# 2. the optimizer gets only the trainable parameters;
# 3. **the trap**: `requires_grad=False` does not stop batch norm from updating its running
#    mean and variance in `train()` mode. A frozen trunk must also be put in `eval()` mode.

# %%
import torchvision

# --- medtorch cell: data (mt.datasets.load) ---
retina = mt.datasets.load("retinamnist_grade", DATA)
# --- end medtorch cell ---

xb = torch.from_numpy(retina.inputs["x"][:64]).float()  # (64, 3, 28, 28)
xb = (xb - xb.mean()) / xb.std()
yb = torch.from_numpy(retina.y[:64])

net = torchvision.models.resnet18(weights=None)  # random init; weights="DEFAULT" would download
net.fc = nn.Linear(net.fc.in_features, len(retina.class_names))  # new head: 5 grades
net.requires_grad_(False)
for part in (net.layer4, net.fc):
    part.requires_grad_(True)
trainable = [p for p in net.parameters() if p.requires_grad]
n_all, n_train = sum(p.numel() for p in net.parameters()), sum(p.numel() for p in trainable)
print(f"trainable {n_train:,} of {n_all:,} parameters ({n_train / n_all:.0%})")

opt = torch.optim.AdamW(trainable, lr=1e-3)
frozen_w = net.layer1[0].conv1.weight.clone()
bn = net.layer1[0].bn1
head_w = net.fc.weight.clone()


def step() -> float:
    opt.zero_grad()
    loss = nn.functional.cross_entropy(net(xb), yb)
    loss.backward()
    opt.step()
    return loss.item()


net.train()  # the whole net in train mode: the trap
mean_before = bn.running_mean.clone()
step()
print("frozen conv weights unchanged:", torch.equal(frozen_w, net.layer1[0].conv1.weight))
print("head changed:", not torch.equal(head_w, net.fc.weight))
print(
    "frozen batch norm's running mean changed in train():",
    not torch.equal(mean_before, bn.running_mean),
)

net.train()
for part in (net.conv1, net.bn1, net.layer1, net.layer2, net.layer3):
    part.eval()  # the fix: frozen layers in eval mode, so batch norm uses (and keeps) its statistics
mean_before = bn.running_mean.clone()
losses = [step() for _ in range(3)]
print(
    "after the fix, running mean changed:",
    not torch.equal(mean_before, bn.running_mean),
    "; losses",
    np.round(losses, 3),
)
assert torch.equal(frozen_w, net.layer1[0].conv1.weight) and torch.equal(
    mean_before, bn.running_mean
)

# %% [markdown]
# ## Exercises
#
# 1. ECG: train the full recipe (`medtorch train mitdb_aami_resnet1d`, about 4 epochs of the
#    8-block network) and compare Se / +P of S and V with the short run above and with the
#    published inter-patient results collected in `benchmarks/RESULTS.md`.
# 2. ECG: switch the second stage off (`model.params.rr_gate_features=0`) and compare Se and
#    +P of N and S with and without it. Which class changes most?
# 3. ECG: why would a random split of the **beats** (`split.method=random`) give far higher
#    numbers? Run it and read the audit in `splits.json`.
# 4. Images: train with the small-image stem (`model.params.small_input=true`) for 2 epochs.
#    How much slower is an epoch, and is it better?
# 5. Images: unfreeze `layer3` as well and train 5 epochs on the whole training set with your
#    own loop. Then, where ImageNet weights are cached, repeat with
#    `model.params.pretrained=imagenet` and compare the learning curves.
