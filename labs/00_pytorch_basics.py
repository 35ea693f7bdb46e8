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
# # Lab 0: PyTorch basics
#
# What this lab teaches, before any healthcare data:
#
# 1. tensors: creation, dtypes, shapes;
# 2. NumPy interop, and when a tensor and an array **share memory**;
# 3. indexing and broadcasting;
# 4. autograd, checked against a derivative worked out by hand;
# 5. a tiny training loop written by hand (the loop every later lab hides inside
#    `medtorch`'s trainer);
# 6. devices: CPU, and a GPU timing comparison when a GPU is present.
#
# Run time: a few seconds on a laptop CPU. No data folder is needed.

# %%
import time

import numpy as np
import torch

torch.manual_seed(0)
print("torch", torch.__version__)

# %% [markdown]
# ## 1. Tensors
#
# A tensor is an n-dimensional array with a dtype and a device. Most of the lab series
# uses `float32` for inputs and weights and `int64` for class labels (what
# `nn.CrossEntropyLoss` expects).

# %%
a = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
print(a.shape, a.dtype, a.device)
z = torch.zeros(2, 3)
r = torch.randn(4, 1, 178)  # (N, C, T): four one-channel EEG chunks of 178 samples
labels = torch.tensor([0, 4, 1, 3])
print(z.shape, r.shape, labels.dtype)
print("reshape:", a.reshape(3, 2).shape, "view:", a.view(-1).shape, "transpose:", a.T.shape)
assert a.sum().item() == 21.0

# %% [markdown]
# ## 2. NumPy interop and shared memory
#
# `torch.from_numpy(arr)` and `tensor.numpy()` do **not** copy: both objects look at the
# same memory, so a write through one is seen by the other. `torch.tensor(arr)` copies.
# This matters when you normalise data "in place" and then reuse the original array.

# %%
arr = np.arange(6, dtype=np.float32)
shared = torch.from_numpy(arr)  # no copy
copied = torch.tensor(arr)  # a copy
arr[0] = 100.0
print("shared:", shared[:3], " copied:", copied[:3])
assert shared[0] == 100.0 and copied[0] == 0.0
back = shared.numpy()  # no copy either
back[1] = -1.0
assert arr[1] == -1.0
print("np.shares_memory(arr, back):", np.shares_memory(arr, back))
# float64 NumPy arrays become float64 tensors: cast once, on purpose
print(torch.from_numpy(np.zeros(3)).dtype, "->", torch.from_numpy(np.zeros(3)).float().dtype)

# %% [markdown]
# ## 3. Indexing and broadcasting
#
# Indexing works as in NumPy: slices give views, boolean masks and index tensors give
# copies. Broadcasting lines shapes up from the right; a dimension of size 1 stretches.
# Standardising features with a per-column mean is the everyday example.

# %%
x = torch.arange(12.0).reshape(3, 4)  # (N=3, F=4)
print(x[0], x[:, 1], x[x > 5])
col_mean = x.mean(dim=0, keepdim=True)  # (1, 4)
col_sd = x.std(dim=0, keepdim=True)  # (1, 4)
xs = (x - col_mean) / col_sd  # (3, 4) - (1, 4) -> (3, 4)
print(xs)
assert torch.allclose(xs.mean(0), torch.zeros(4), atol=1e-6)
# an outer product by broadcasting: (3, 1) * (1, 4) -> (3, 4)
outer = torch.arange(3.0)[:, None] * torch.arange(4.0)[None, :]
assert torch.equal(outer, torch.outer(torch.arange(3.0), torch.arange(4.0)))
try:
    torch.ones(3, 4) + torch.ones(3)  # (3, 4) + (3,): trailing 4 vs 3 do not line up
except RuntimeError as err:
    print("broadcasting error, as expected:", str(err).splitlines()[0])

# %% [markdown]
# ## 4. Autograd, checked by hand
#
# For $f(w) = \sum_i (w x_i - y_i)^2$ the derivative is
# $f'(w) = \sum_i 2 x_i (w x_i - y_i)$. PyTorch records the operations on tensors with
# `requires_grad=True` and `backward()` fills `w.grad` with the same number.

# %%
xv = torch.tensor([1.0, 2.0, 3.0])
yv = torch.tensor([2.0, 4.1, 5.9])
w = torch.tensor(0.5, requires_grad=True)
f = ((w * xv - yv) ** 2).sum()
f.backward()
by_hand = (2 * xv * (w.detach() * xv - yv)).sum()
print(f"autograd {w.grad.item():.4f}  by hand {by_hand.item():.4f}")
assert torch.allclose(w.grad, by_hand)

# a finite-difference check, the way to test a gradient you derived yourself
eps = 1e-3
fd = ((((w.detach() + eps) * xv - yv) ** 2).sum() - (((w.detach() - eps) * xv - yv) ** 2).sum()) / (
    2 * eps
)
assert abs(fd.item() - by_hand.item()) < 1e-2
# gradients accumulate: a second backward adds to w.grad, which is why loops call zero_grad()
((w * xv - yv) ** 2).sum().backward()
assert torch.allclose(w.grad, 2 * by_hand)

# %% [markdown]
# ## 5. A tiny training loop by hand
#
# Logistic regression on two Gaussian blobs, written with nothing but tensors: forward,
# loss, `backward()`, one step of gradient descent, `zero_grad()`. Then the same with
# `nn.Linear`, `nn.BCEWithLogitsLoss` and `torch.optim.SGD`: the pieces `medtorch`'s
# trainer is built from.

# %%
g = torch.Generator().manual_seed(0)
n = 200
X = torch.cat([torch.randn(n, 2, generator=g) + 1.5, torch.randn(n, 2, generator=g) - 1.5])
Y = torch.cat([torch.ones(n), torch.zeros(n)])

W = torch.zeros(2, requires_grad=True)
b = torch.zeros(1, requires_grad=True)
for _step in range(100):
    logits = X @ W + b  # (2n,)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, Y)
    loss.backward()
    with torch.no_grad():  # the update itself must not be recorded
        W -= 0.5 * W.grad
        b -= 0.5 * b.grad
    W.grad.zero_()
    b.grad.zero_()
acc_hand = ((X @ W + b > 0).float() == Y).float().mean().item()
print(f"by hand: loss {loss.item():.3f}, accuracy {acc_hand:.3f}")

model = torch.nn.Linear(2, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.5)
loss_fn = torch.nn.BCEWithLogitsLoss()
for _step in range(100):
    opt.zero_grad()
    loss = loss_fn(model(X).squeeze(1), Y)
    loss.backward()
    opt.step()
acc_nn = ((model(X).squeeze(1) > 0).float() == Y).float().mean().item()
print(f"nn.Linear + SGD: loss {loss.item():.3f}, accuracy {acc_nn:.3f}")
assert acc_hand > 0.95 and acc_nn > 0.95

# %% [markdown]
# ## 6. Devices
#
# A tensor lives on one device; a model and its inputs must be on the same one
# (`.to(device)`). GPU work is asynchronous, so a fair timing calls
# `torch.cuda.synchronize()` before reading the clock. On a machine without a GPU this
# comparison is skipped.

# %%
device = (
    "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
)
print("device:", device)


def time_matmul(dev: str, n: int = 1024, reps: int = 5) -> float:
    m = torch.randn(n, n, device=dev)
    m @ m  # warm-up (kernel selection, memory)
    if dev == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        m @ m
    if dev == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


cpu_s = time_matmul("cpu")
print(f"CPU: {cpu_s * 1e3:.1f} ms per 1024 x 1024 matmul")
if torch.cuda.is_available():
    gpu_s = time_matmul("cuda")
    print(f"GPU: {gpu_s * 1e3:.2f} ms per matmul, {cpu_s / gpu_s:.0f}x the CPU")
else:
    print("no CUDA GPU here: the GPU timing is skipped")

# %% [markdown]
# ## Exercises
#
# 1. Make a tensor from a NumPy `float64` array with `torch.as_tensor(arr, dtype=torch.float32)`.
#    Does it share memory with `arr`? Check with a write, as in section 2.
# 2. Extend the autograd check to two parameters, $f(w, b) = \sum_i (w x_i + b - y_i)^2$:
#    derive $\partial f / \partial b$ by hand and compare with `b.grad`.
# 3. In the hand-written loop, remove `W.grad.zero_()`. What happens to the loss, and why?
# 4. Replace `SGD` with `torch.optim.Adam(model.parameters(), lr=0.1)`: how many steps does
#    it need to pass 95 % accuracy?
# 5. If you have a GPU: at what matrix size does the GPU start to beat the CPU?
