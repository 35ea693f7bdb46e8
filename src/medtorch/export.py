"""Export a trained model to ONNX and check that onnxruntime reproduces its outputs.

Uses the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``): it runs
offline with no extra dependency, whereas the dynamo exporter (the default from torch
2.9) needs ``onnxscript`` and can fail on models with data-dependent control flow.
The batch axis of every input and of the output is dynamic.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medtorch.errors import MedtorchError


def export_onnx(
    model: torch.nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    path: Path | str,
    input_names: Sequence[str] | None = None,
    opset: int = 17,
) -> Path:
    """Write ``model`` as ONNX to ``path`` with a dynamic batch axis; returns the path.

    ``input_names`` default to ``x``, ``input1``, ... in the order of ``model(*inputs)``
    (a run's export names them as its task does).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(input_names or ["x", *[f"input{i}" for i in range(1, 16)]])
    names = names[: len(example_inputs)]
    if len(names) != len(example_inputs):
        raise MedtorchError(
            f"expected {len(example_inputs)} input names, got {names} in export_onnx; "
            "give one name per model input"
        )
    axes = {n: {0: "batch"} for n in [*names, "logits"]}
    kwargs: dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    was_training = model.training
    model.eval()
    try:
        torch.onnx.export(
            model, tuple(example_inputs), str(path), input_names=names,
            output_names=["logits"], dynamic_axes=axes, opset_version=opset, **kwargs,
        )  # fmt: skip
    finally:
        model.train(was_training)
    return path


def check_onnx_parity(
    model: torch.nn.Module,
    path: Path | str,
    example_inputs: tuple[torch.Tensor, ...],
    atol: float = 1e-4,
) -> float:
    """Max absolute difference between PyTorch and onnxruntime outputs on ``example_inputs``.

    Raises :class:`MedtorchError` when it exceeds ``atol``.
    """
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: t.detach().cpu().numpy() for i, t in zip(sess.get_inputs(), example_inputs)}
    (onnx_out,) = sess.run(["logits"], feeds)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        ref = model(*example_inputs).detach().cpu().numpy()
    model.train(was_training)
    diff = float(np.max(np.abs(ref - onnx_out))) if ref.size else 0.0
    if not diff <= atol:
        raise MedtorchError(
            f"expected ONNX outputs within {atol} of PyTorch, got max |diff| {diff:.3g} in "
            f"{path}; re-export with another opset or check unsupported operators"
        )
    return diff


def export_run(
    run_dir: Path | str,
    out: Path | str,
    data_dir: Path | str | None = None,
    n_check: int = 256,
) -> tuple[Path, float, int]:
    """Export a run's best checkpoint to ONNX and check parity on real inputs.

    The check batch is the first ``n_check`` rows of the run's own test split, rebuilt from
    the data and normalised as in training. Returns (path, max |diff|, rows checked).
    """
    from medtorch.pipeline import prepare, restore_model, task_data_dir

    try:  # before any work: the parity check needs it
        import onnxruntime  # noqa: F401
    except ImportError:
        raise MedtorchError(
            "expected onnxruntime (for the ONNX parity check), got no such module in this "
            "Python environment; install it with `pip install 'medtorch[onnx]'`"
        ) from None
    cfg, spec, model = restore_model(Path(run_dir))
    bundled = _is_bundled(Path(run_dir))
    test = prepare(cfg, task_data_dir(cfg, data_dir, bundled)).parts["test"]
    k = min(n_check, len(test))
    if k == 0:
        raise MedtorchError(
            f"expected test rows to check ONNX parity on, got none in {run_dir}; "
            "check the run's split"
        )
    example = tuple(torch.as_tensor(test.inputs[n][:k]) for n in spec["inputs"])
    path = export_onnx(model, example, out, input_names=spec["inputs"])
    return path, check_onnx_parity(model, path, example), k


def _is_bundled(run_dir: Path) -> bool:
    from medtorch.run_folder import run_source

    return run_source(run_dir).startswith("bundled")
