"""Image tasks: RetinaMNIST diabetic-retinopathy grading (the seed's Gulshan 2016 application,
at 28 x 28 pixels).

``retinamnist_grade``: MedMNIST v2 RetinaMNIST (Yang et al. 2023), fundus photographs of the
DeepDRiD challenge graded 0-4 (no, mild, moderate, severe, proliferative DR), an ordinal
5-class task. Images become (N, 3, H, W) float32 in [0, 1]; the official partition of each
image is kept so the ``medmnist_official`` protocol reproduces MedMNIST's split.

What the release does not say: which patient an image belongs to. DeepDRiD has several
photographs per patient; MedMNIST took its test set from the challenge's own validation set
and drew its validation set at random from the challenge's training images, so validation
images probably share patients with training ones (validation scores are optimistic) and
the test set's patient separation is the challenge's, which cannot be audited here. The
run's leakage note says so.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from medtorch.config import SplitConfig
from medtorch.data.dataset import ArrayDataset
from medtorch.data.splits import register_protocol
from medtorch.data.tasks.registry import register_task
from medtorch.errors import DataError, SplitError, fmt

DR_GRADES = ["0 no DR", "1 mild", "2 moderate", "3 severe", "4 proliferative"]
REFERABLE_FROM = 2  # moderate or worse: "referable DR" (Gulshan et al. 2016)
MEDMNIST_PARTS = {"train": "train", "valid": "val", "test": "test"}  # ours -> npz prefix
_CAVEAT = (
    "patients unknown: RetinaMNIST has no patient ids; its test set is DeepDRiD's validation "
    "set (patient separation as the challenge made it, not audited here) and its valid set is "
    "a random draw from DeepDRiD's training images, so valid likely shares patients with train"
)


def read_medmnist_npz(path: Path, n_classes: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{part: (images (N, H, W, C) uint8, labels (N,) int64)}`` for train / valid / test.

    Checks what a truncated or foreign file would get wrong, each as a one-line DataError
    naming the file and key: missing keys, image/label count mismatch, non-uint8 images,
    labels outside ``0..n_classes-1``.
    """
    if not path.is_file():
        raise DataError(fmt("a MedMNIST .npz file", str(path), "task.params.file",
                            "run `medtorch data info medmnist` for where to put it"))  # fmt: skip
    try:
        npz = np.load(path)
        arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"expected a readable .npz archive, got {type(exc).__name__}: {exc} in {path}; "
            "re-fetch it (medtorch data fetch medmnist)"
        ) from None
    out = {}
    for part, prefix in MEDMNIST_PARTS.items():
        ik, lk = f"{prefix}_images", f"{prefix}_labels"
        missing = [k for k in (ik, lk) if k not in arrays]
        if missing:
            raise DataError(fmt(f"arrays {ik} and {lk}", sorted(arrays), f"{path} (key {missing[0]})",
                                "use an official MedMNIST 2D .npz"))  # fmt: skip
        images, labels = arrays[ik], arrays[lk].reshape(-1)
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise DataError(fmt("uint8 images (N, H, W[, C])", f"{images.dtype} {images.shape}",
                                f"{path} key {ik}", "use an official MedMNIST 2D .npz"))  # fmt: skip
        if len(images) != len(labels):
            raise DataError(fmt(f"{len(images)} labels (one per image)", len(labels),
                                f"{path} key {lk}", "the file is truncated or mixed: re-fetch it"))  # fmt: skip
        bad = (labels < 0) | (labels >= n_classes)
        if bad.any():
            raise DataError(fmt(f"labels 0..{n_classes - 1}", int(labels[bad][0]),
                                f"{path} key {lk} (row {int(np.flatnonzero(bad)[0])})",
                                "this is not RetinaMNIST: check the file"))  # fmt: skip
        out[part] = (images if images.ndim == 4 else images[..., None], labels.astype(np.int64))
    return out


@register_task("retinamnist_grade")
def retinamnist_grade(
    data_dir: Path | None, path: str | None = None, file: str = "medmnist/retinamnist.npz"
) -> ArrayDataset:
    """RetinaMNIST: diabetic-retinopathy grade 0-4 from a fundus photograph (N, 3, 28, 28)."""
    if path is None and data_dir is None:
        raise DataError(
            f"expected a data dir holding {file}, got none in --data-dir / MEDTORCH_DATA; "
            "set it or pass task.params.path"
        )
    src = Path(path) if path is not None else Path(data_dir) / file  # type: ignore[arg-type]
    parts = read_medmnist_npz(src, len(DR_GRADES))
    x = np.concatenate([parts[p][0] for p in MEDMNIST_PARTS])  # (N, H, W, C) uint8
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0  # (N, C, H, W)
    y = np.concatenate([parts[p][1] for p in MEDMNIST_PARTS])
    official = np.concatenate([np.full(len(parts[p][1]), p) for p in MEDMNIST_PARTS])
    ids = np.array([f"{p}{i}" for p in MEDMNIST_PARTS for i in range(len(parts[p][1]))])
    counts = np.bincount(y, minlength=len(DR_GRADES))
    return ArrayDataset(
        inputs={"x": x},
        y=y,
        groups=ids,  # the image: patient ids are not in the release
        class_names=list(DR_GRADES),
        sample_ids=ids,
        meta={
            "source": str(src),
            "group_unit": "image",
            "official_split": official,
            "split_caveat": _CAVEAT,
            "ordinal": {"referable_from": REFERABLE_FROM},
            "label_source": "MedMNIST v2 RetinaMNIST labels (DeepDRiD grades 0-4)",
            "cohort": {
                "rows_read": len(y),
                "rows_dropped": {},
                "class_counts": {n: int(c) for n, c in zip(DR_GRADES, counts)},
            },
        },
    )


@register_protocol("medmnist_official", grouped=False)
def medmnist_official(ds: ArrayDataset, cfg: SplitConfig) -> dict[str, np.ndarray]:
    """MedMNIST's own train / val / test partition, as released (no re-drawing)."""
    official = ds.meta.get("official_split")
    if official is None:
        raise SplitError(
            "expected a MedMNIST task (rows tagged with their official partition), got a "
            "dataset without meta['official_split'] in split.protocol=medmnist_official; use "
            "it with retinamnist_grade"
        )
    official = np.asarray(official)
    return {p: np.flatnonzero(official == p) for p in MEDMNIST_PARTS}
