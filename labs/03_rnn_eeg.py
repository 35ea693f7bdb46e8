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
# # Lab 3: recurrent networks on EEG
#
# The same UCI seizure chunks as lab 2, read as sequences of 178 time steps. What this lab
# teaches:
#
# 1. `nn.GRU` and `nn.LSTM`: what goes in, what comes out, and `batch_first`;
# 2. variable-length sequences: padding, and **packing** (`pack_padded_sequence`) so that
#    the padding never enters the recurrence;
# 3. gradient clipping, and why recurrent nets need it;
# 4. the binary task (seizure vs the rest), trained by hand and by the recipe
#    `lab3_seizure_gru` switched to `task.name=seizure_binary`.
#
# Runs in about a minute on a laptop CPU. Full-length runs:
# `medtorch train lab3_seizure_gru` (five classes, 15 epochs) and
# `medtorch train lab3_seizure_gru --set task.name=seizure_binary`.

# %%
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence

import medtorch as mt

torch.manual_seed(0)
RUNS = Path(
    tempfile.mkdtemp(prefix="lab3-")
)  # run folders of this notebook; use runs/ to keep them

# %% [markdown]
# ## 1. Shapes, and `batch_first`
#
# An RNN reads a sequence step by step. By default PyTorch wants `(T, N, C)` (time first);
# with `batch_first=True` it takes `(N, T, C)`. Whatever the flag, the final hidden state
# `h_n` is `(num_layers * directions, N, H)`: the flag changes the input and output only.
# An LSTM returns `(h_n, c_n)`, a GRU `h_n` alone.

# %%
N, T, C, H = 4, 178, 1, 32
x = torch.randn(N, T, C)  # (N, T, C)
gru = nn.GRU(C, H, num_layers=2, batch_first=True)
out, h_n = gru(x)
print("GRU  out", tuple(out.shape), " h_n", tuple(h_n.shape))  # (N, T, H), (2, N, H)
lstm = nn.LSTM(C, H, num_layers=2, batch_first=True)
out_l, (h_l, c_l) = lstm(x)
print("LSTM out", tuple(out_l.shape), " h_n", tuple(h_l.shape), " c_n", tuple(c_l.shape))
# the last layer's final state is the output at the last step
assert torch.allclose(out[:, -1], h_n[-1], atol=1e-6)

# the same weights with time first: transpose the input, the numbers do not change
gru_tf = nn.GRU(C, H, num_layers=2)  # batch_first=False
gru_tf.load_state_dict(gru.state_dict())
out_tf, h_tf = gru_tf(x.transpose(0, 1))  # (T, N, C)
assert torch.allclose(out_tf.transpose(0, 1), out, atol=1e-6) and torch.allclose(
    h_tf, h_n, atol=1e-6
)
# the classic mistake: feeding (N, T, C) to a time-first RNN runs, silently, over the wrong axis
wrong, _ = gru_tf(x)
print("wrong axis, no error:", tuple(wrong.shape), "(read as T=4 steps of a batch of 178)")

# %% [markdown]
# ## 2. The data, and the library's GRU (**medtorch**)
#
# `medtorch` keeps signals as `(N, C, T)` (what `Conv1d` wants); its `gru` model (the lab's:
# two layers of 32, dropout 0.5, the last step into a linear head) transposes to `(N, T, C)`
# itself, and reads `h_n` rather than `out[:, -1]` (the same thing for a one-direction net,
# not for a bidirectional one).

# %%
# --- medtorch cell: data, split and model (mt.datasets.load, mt.splits.make, mt.models.create) ---
ds = mt.datasets.load("seizure_binary")  # bundled copy; classes non_seizure / seizure
split, audit = mt.splits.make(ds, method="by_recording", seed=6250)
lib_gru = mt.models.create("gru", n_inputs=1, n_classes=2, hidden_size=32, num_layers=2)
# --- end medtorch cell ---

print(lib_gru)
xs = ds.inputs["x"]  # (N, 1, 178)
print("x", xs.shape, "seizure share:", f"{ds.y.mean():.2f}", {k: len(v) for k, v in split.items()})
print(
    "audit:",
    audit["leakage_audit"],
    "- train-test recordings shared:",
    audit["group_overlap"]["train-test"],
)
print("logits", tuple(lib_gru(torch.from_numpy(xs[:3])).shape))

# %% [markdown]
# ## 3. Variable-length sequences: padding and packing
#
# Real recordings have different lengths. Crop each chunk to a random length, pad the batch
# to the longest with `pad_sequence`, and compare three final states:
#
# * each sequence run **alone** (the truth);
# * the padded batch run **packed**: `pack_padded_sequence` tells the RNN each length, and
#   `h_n` is each sequence's state at its own last real step;
# * the padded batch run **as is**: the RNN also reads the padding zeros, and for every
#   sequence shorter than the longest, the final state is wrong.

# %%
g = torch.Generator().manual_seed(0)
seqs = [
    torch.from_numpy(xs[i, 0, : int(torch.randint(60, 179, (1,), generator=g))])[:, None]
    for i in range(6)
]  # list of (T_i, 1)
lengths = torch.tensor([len(s) for s in seqs])
padded = pad_sequence(seqs, batch_first=True)  # (6, max T, 1), zeros after each end
mask = torch.arange(padded.shape[1])[None] < lengths[:, None]  # (6, max T) True on real steps
print("lengths", lengths.tolist(), " padded", tuple(padded.shape), " real steps", int(mask.sum()))

rnn = nn.GRU(1, 16, batch_first=True)
with torch.no_grad():
    alone = torch.stack([rnn(s[None])[1][-1, 0] for s in seqs])  # (6, 16)
    packed = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
    out_p, h_packed = rnn(packed)
    _, h_padded = rnn(padded)
    out_unpacked, out_len = pad_packed_sequence(out_p, batch_first=True)
print("packed   vs alone: max |diff|", f"{(h_packed[-1] - alone).abs().max():.2e}")
print(
    "unpacked vs alone: max |diff| per sequence",
    np.round((h_padded[-1] - alone).abs().amax(1).numpy(), 3),
)
assert torch.allclose(h_packed[-1], alone, atol=1e-5)
longest = int(lengths.argmax())
assert torch.allclose(h_padded[-1, longest], alone[longest], atol=1e-5)  # only the longest is right
assert torch.equal(out_len, lengths) and out_unpacked.shape == (6, int(lengths.max()), 16)

# %% [markdown]
# ## 4. Gradient clipping
#
# Back-propagation through 178 steps multiplies 178 Jacobians; with large recurrent weights
# or a large learning rate the gradient norm can spike, and one step then throws the
# weights far away. `clip_grad_norm_(params, max_norm)` rescales the whole gradient when
# its norm exceeds `max_norm` and keeps its **direction**. In a recipe it is
# `trainer.grad_clip`. Below, a plain tanh RNN with recurrent weights scaled up, one
# backward pass, and the gradient before and after clipping.

# %%
big = nn.RNN(1, 16, batch_first=True)
with torch.no_grad():
    big.weight_hh_l0.copy_(torch.linalg.qr(torch.randn(16, 16))[0] * 1.5)  # spectral radius 1.5
head = nn.Linear(16, 2)
params = [*big.parameters(), *head.parameters()]
xb = torch.from_numpy(xs[:64]).transpose(1, 2) / xs.std()  # (64, 178, 1)
loss = nn.functional.cross_entropy(head(big(xb)[1][-1]), torch.from_numpy(ds.y[:64]))
loss.backward()
g_before = torch.cat([p.grad.flatten() for p in params])
norm = torch.nn.utils.clip_grad_norm_(params, max_norm=0.5)  # returns the norm before clipping
g_after = torch.cat([p.grad.flatten() for p in params])
cos = torch.nn.functional.cosine_similarity(g_before, g_after, dim=0)
print(
    f"gradient norm {norm:.2f} -> {g_after.norm():.3f} (max_norm 0.5); same direction: cos = {cos:.4f}"
)
assert g_after.norm() <= 0.5 + 1e-4 and cos > 0.9999

# %% [markdown]
# ## 5. The binary task, trained by hand
#
# Seizure vs the rest, split by recording. A one-layer GRU (16 units) on random crops of
# 90-178 steps, packed, with gradient clipping: the loop of lab 0 with the pieces above.
# One pass over 2,000 training chunks, to keep it short.

# %%
from sklearn.metrics import roc_auc_score

mean, sd = xs[split["train"]].mean(), xs[split["train"]].std()  # one scale, train rows only


class CropGRU(nn.Module):
    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.rnn = nn.GRU(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
        _, h_n = self.rnn(packed)  # (1, N, H): each sequence's last real step
        return self.head(h_n[-1])  # (N, 2)


def crop_batch(rows: np.ndarray, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    sig = torch.from_numpy((xs[rows, 0] - mean) / sd)  # (B, 178)
    lens = torch.randint(90, 179, (len(rows),), generator=gen)
    starts = [int(torch.randint(0, 179 - n, (1,), generator=gen)) for n in lens]
    crops = [sig[i, s : s + n, None] for i, (s, n) in enumerate(zip(starts, lens))]
    return pad_sequence(crops, batch_first=True), lens


torch.manual_seed(0)
model = CropGRU()
opt = torch.optim.Adam(model.parameters(), lr=5e-3)
gen = torch.Generator().manual_seed(1)
train_rows = np.random.default_rng(0).permutation(split["train"])[:2000]
t0 = time.perf_counter()
model.train()
for batch in np.array_split(train_rows, len(train_rows) // 64):
    padded, lens = crop_batch(batch, gen)
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(padded, lens), torch.from_numpy(ds.y[batch]))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    opt.step()
model.eval()
test = split["test"]
with torch.no_grad():
    padded, lens = crop_batch(test, torch.Generator().manual_seed(2))
    p_test = torch.softmax(model(padded, lens), 1)[:, 1].numpy()
auc_hand = roc_auc_score(ds.y[test], p_test)
print(f"hand-written GRU on crops: {time.perf_counter() - t0:.1f} s, test AUROC {auc_hand:.3f}")

# %% [markdown]
# ## 6. The recipe (**medtorch**)
#
# `lab3_seizure_gru` with `task.name=seizure_binary`, `split.method=by_recording` and
# `trainer.grad_clip=1.0`: the library's GRU on the full 178 steps, shortened here to one
# layer of 32 and 2 epochs (the recipe: two layers, 15 epochs). The library's binary metrics come with recording-resampled CIs.

# %%
# --- medtorch cell: train a recipe (mt.load_recipe, mt.train) ---
cfg = mt.load_recipe(
    "lab3_seizure_gru",
    overrides={
        "task.name": "seizure_binary",
        "split.method": "by_recording",
        "trainer.grad_clip": 1.0,
        "model.params.num_layers": 1,
        "trainer.max_epochs": 2,
        "trainer.progress": False,
        "eval.n_bootstrap": 300,
    },
)
run = mt.train(cfg, out=RUNS, bundled=True)
metrics = run.metrics
# --- end medtorch cell ---

ov, seiz = metrics["test"]["overall"], metrics["test"]["per_class"]["seizure"]
for name, r in (
    ("AUROC", ov["auroc"]),
    ("accuracy", ov["accuracy"]),
    ("seizure sensitivity", seiz["sensitivity"]),
    ("seizure PPV", seiz["ppv"]),
):
    print(f"{name:<20} {r['value']:.3f}  [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]")
print("fit time", metrics["fit_wall_s"], "s;", metrics["test"]["ci_method"])

# %% [markdown]
# ## Exercises
#
# 1. Switch the recipe to the LSTM (`lab3_seizure_lstm`, or `model.name=lstm`). Time per
#    epoch and AUROC: which wins here?
# 2. Make the library's GRU bidirectional (`model.params.bidirectional=true`). Why does it
#    read `h_n` instead of `out[:, -1]`? Check with `nn.GRU(..., bidirectional=True)` that
#    `out[:, -1]` holds the backward direction's state after **one** step only.
# 3. In section 5, replace packing by running the padded batch as is. How much does test
#    AUROC drop, and why is the drop larger when crops vary more in length?
# 4. Remove `clip_grad_norm_` and raise the learning rate to 0.05. Plot the loss per batch
#    with and without clipping.
# 5. Five classes: run `lab3_seizure_gru` with `split.method=by_recording` and compare its
#    per-class table with the CNN's of lab 2.
