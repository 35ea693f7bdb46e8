"""Image tasks: MedMNIST v2 2-D datasets by name, RetinaMNIST diabetic-retinopathy grading
(the seed's Gulshan 2016 application, at 28 x 28 pixels), and the image reading that the
other image tasks share (HAM10000 dermoscopy: :mod:`medtorch.data.tasks.ham10000`).

``medmnist``: any MedMNIST v2 2-D dataset (Yang et al. 2023) by ``flag`` from its ``.npz``
(``$MEDTORCH_DATA/medmnist/<flag>.npz``): images (N, C, H, W) float32 in [0, 1], C = 1 for
the grayscale sets and 3 for the RGB ones (``channels: 3`` repeats grayscale for an
ImageNet backbone), resized to ``image_size`` when asked; the official partition of each
image is kept so the ``medmnist_official`` protocol reproduces MedMNIST's split. Label
names and task type per flag come from :mod:`medtorch.data.sources.medmnist_info`:
multi-class, binary (the classification metrics), ordinal (RetinaMNIST: also the ordinal
family) and multi-label (ChestMNIST: y (N, 14) of 0/1, the multilabel family).

``retinamnist_grade``: ``medmnist`` with ``flag: retinamnist``, fundus photographs of the
DeepDRiD challenge graded 0-4 (no, mild, moderate, severe, proliferative DR), an ordinal
5-class task scored with the referable-DR (moderate or worse) call.

What the releases do not say: which patient an image belongs to. DeepDRiD has several
photographs per patient; MedMNIST took RetinaMNIST's test set from the challenge's own
validation set and drew its validation set at random from the challenge's training images,
so validation images probably share patients with training ones (validation scores are
optimistic) and the test set's patient separation is the challenge's, which cannot be
audited here. The run's leakage note says so (for every flag: patients unknown).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medtorch.config import SplitConfig
from medtorch.data.dataset import ArrayDataset
from medtorch.data.sources.medmnist_info import MedMNISTFlag, medmnist_flag
from medtorch.data.splits import register_protocol
from medtorch.data.tasks.registry import PredictInput, TaskExample, register_task, source_path
from medtorch.errors import DataError, SplitError, fmt

DR_GRADES = ["0 no DR", "1 mild", "2 moderate", "3 severe", "4 proliferative"]
REFERABLE_FROM = 2  # moderate or worse: "referable DR" (Gulshan et al. 2016)
MEDMNIST_PARTS = {"train": "train", "valid": "val", "test": "test"}  # ours -> npz prefix
_CAVEAT = (
    "patients unknown: RetinaMNIST has no patient ids; its test set is DeepDRiD's validation "
    "set (patient separation as the challenge made it, not audited here) and its valid set is "
    "a random draw from DeepDRiD's training images, so valid likely shares patients with train"
)
_CAVEATS = {
    "retinamnist": _CAVEAT,
    "dermamnist": "lesions unknown: DermaMNIST (HAM10000) has no lesion ids and MedMNIST split "
    "it by image, so images of one lesion likely sit in two partitions (scores optimistic)",
}


def read_medmnist_npz(
    path: Path, n_classes: int, multilabel: bool = False, name: str = "RetinaMNIST"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{part: (images (N, H, W, C) uint8, labels)}`` for train / valid / test; labels are
    (N,) int64 class indices, or (N, n_classes) 0/1 for a ``multilabel`` dataset.

    Checks what a truncated or foreign file would get wrong, each as a one-line DataError
    naming the file and key: missing keys, image/label count mismatch, non-uint8 images,
    labels outside ``0..n_classes-1`` (multi-label: not 0/1 in ``n_classes`` columns).
    ``name`` is the dataset the file should be (said in the messages).
    """
    if not path.is_file():
        raise DataError(fmt("a MedMNIST .npz file", str(path), "task.params.file",
                            "run `medtorch data info medmnist` for where to put it"))  # fmt: skip
    if not zipfile.is_zipfile(path):  # else numpy tries it as a pickle and suggests unpickling
        raise DataError(
            f"expected a readable .npz archive, got a file that is not a zip archive in {path}; "
            "re-fetch it (medtorch data fetch medmnist)"
        )
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
        images, raw = arrays[ik], arrays[lk]
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise DataError(fmt("uint8 images (N, H, W[, C])", f"{images.dtype} {images.shape}",
                                f"{path} key {ik}", "use an official MedMNIST 2D .npz"))  # fmt: skip
        if multilabel:
            if raw.ndim != 2 or raw.shape[1] != n_classes:
                raise DataError(fmt(f"labels (N, {n_classes}), one 0/1 column per {name} label",
                                    raw.shape, f"{path} key {lk}",
                                    f"this is not {name}: check the file or task.params.flag"))  # fmt: skip
            labels = raw
        else:
            if raw.ndim == 2 and raw.shape[1] != 1:
                raise DataError(fmt("one label per image (N, 1)", raw.shape, f"{path} key {lk}",
                                    f"this is not {name}: check the file or task.params.flag"))  # fmt: skip
            labels = raw.reshape(-1)
        if len(images) != len(labels):
            raise DataError(fmt(f"{len(images)} labels (one per image)", len(labels),
                                f"{path} key {lk}", "the file is truncated or mixed: re-fetch it"))  # fmt: skip
        bad = ~np.isin(labels, (0, 1)) if multilabel else (labels < 0) | (labels >= n_classes)
        if bad.any():
            row = int(np.flatnonzero(bad.reshape(len(labels), -1).any(1))[0])
            want = "0/1 labels" if multilabel else f"labels 0..{n_classes - 1}"
            raise DataError(fmt(want, int(labels[bad][0]), f"{path} key {lk} (row {row})",
                                f"this is not {name}: check the file"))  # fmt: skip
        images = images if images.ndim == 4 else images[..., None]
        out[part] = (images, labels.astype(np.float32 if multilabel else np.int64))
    shapes = {part: out[part][0].shape[1:] for part in out}  # (H, W, C) of each split
    ref = shapes["train"]
    for part, shape in shapes.items():
        if shape != ref:  # else np.concatenate fails with a bare ValueError
            raise DataError(fmt(f"images of the train split's (H, W, C) {tuple(ref)}", tuple(shape),
                                f"{path} key {MEDMNIST_PARTS[part]}_images",
                                "every split of one MedMNIST file has one size: re-fetch it"))  # fmt: skip
    return out


def read_image_input(path: Path, hints: Any, params: Any = None) -> PredictInput:
    """The ``reader`` of image tasks: an image file or a folder of them, resized as in
    training (:func:`read_image_inputs`), grayscale for a run trained on one channel."""
    mode = "L" if int(hints.get("n_inputs", 3)) == 1 else "RGB"
    x, ids = read_image_inputs(Path(path), int(hints["image_size"]), mode=mode)
    return PredictInput({"x": x}, ids)


def write_medmnist_npz(path: Path, flag: str, n: int = 10, size: int = 28, seed: int = 0) -> Path:
    """A tiny ``.npz`` in MedMNIST's layout for ``flag`` (``n`` images per partition, every
    class present; multi-label: every label positive somewhere and negative somewhere)."""
    info = medmnist_flag(flag)
    rng = np.random.default_rng(seed)
    shape = (n, size, size) if info.n_channels == 1 else (n, size, size, info.n_channels)
    arrays: dict[str, np.ndarray] = {}
    for prefix in MEDMNIST_PARTS.values():
        arrays[f"{prefix}_images"] = rng.integers(0, 255, shape, dtype=np.uint8)
        if info.multilabel:
            labels = (np.arange(n)[:, None] + np.arange(info.n_labels)) % 3 == 0
            arrays[f"{prefix}_labels"] = labels.astype(np.uint8)
        else:
            arrays[f"{prefix}_labels"] = (np.arange(n) % info.n_labels)[:, None].astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def write_retinamnist_example(folder: Path) -> dict[str, str]:
    """A tiny RetinaMNIST-layout npz (8 images of each grade per partition)."""
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {}
    for prefix in MEDMNIST_PARTS.values():
        arrays[f"{prefix}_images"] = rng.integers(0, 255, (10, 28, 28, 3), dtype=np.uint8)
        arrays[f"{prefix}_labels"] = (np.arange(10) % len(DR_GRADES))[:, None]
    path = folder / "retina_tiny.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return {"path": str(path)}


def write_medmnist_example(folder: Path) -> dict[str, Any]:
    """A tiny ChestMNIST-layout npz (grayscale, 14 labels), read at 32 x 32 in 3 channels."""
    path = write_medmnist_npz(folder / "chest_tiny.npz", "chestmnist")
    return {"flag": "chestmnist", "path": str(path), "image_size": 32, "channels": 3}


def _medmnist_families(flag: str | None = None, **_: Any) -> tuple[str, ...]:
    """The metric families of a MedMNIST flag: multilabel for ChestMNIST, classification
    then ordinal for RetinaMNIST, classification for the others (binary ones included)."""
    if flag is None or flag not in MEDMNIST_FAMILIES:
        return ("classification",)
    return MEDMNIST_FAMILIES[flag]


MEDMNIST_FAMILIES = {
    "chestmnist": ("multilabel",),
    "retinamnist": ("classification", "ordinal"),
}


@register_task(
    "medmnist",
    inputs={"x": "image"},
    metrics=_medmnist_families,
    reader=read_image_input,
    example=TaskExample(write_medmnist_example, unlabelled=0),  # npz labels are never empty
)
def medmnist(
    data_dir: Path | None,
    flag: str | None = None,
    path: str | None = None,
    file: str | None = None,
    image_size: int | None = None,
    channels: int | None = None,
) -> ArrayDataset:
    """A MedMNIST v2 2-D dataset by name (``flag``) from its .npz, MedMNIST's official split.

    ``flag``: pathmnist, chestmnist, dermamnist, octmnist, pneumoniamnist, retinamnist,
    breastmnist, bloodmnist, tissuemnist, organamnist, organcmnist or organsmnist. The file is
    ``task.params.path``, else ``file`` under the data folder (default
    ``medmnist/<flag>.npz``; MedMNIST+'s larger files, e.g. ``medmnist/<flag>_224.npz``, read
    the same way). ``image_size``: resize to this square (antialiased bilinear; default: the
    file's own size), e.g. 28 -> 64, or 112 / 224 for an ImageNet backbone. ``channels``:
    ``3`` repeats a grayscale set (ChestMNIST, OCTMNIST, PneumoniaMNIST, BreastMNIST,
    TissueMNIST, OrganA/C/SMNIST: (N, 1, H, W)) to RGB for an ImageNet backbone; default the
    file's own. Labels: class indices (multi-class, binary, ordinal) or, for ChestMNIST,
    y (N, 14) of 0/1 (multi-label: the multilabel metric family, a sigmoid per label).
    Use it with ``split: {method: protocol, protocol: medmnist_official}``.
    """
    info = medmnist_flag(flag)
    if channels not in (None, 1, 3):
        raise DataError(fmt("channels 1, 3 or null (the file's own)", channels,
                            "task.params.channels", "3 repeats grayscale for RGB backbones"))  # fmt: skip
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise DataError(fmt("a positive image_size (pixels) or null (the file's own)",
                            image_size, "task.params.image_size", "e.g. 28, 64 or 224"))  # fmt: skip
    relative = file if file is not None else f"medmnist/{info.flag}.npz"
    src = source_path(data_dir, path, relative)
    return build_medmnist(src, info, image_size=image_size, channels=channels,
                          dataset=None if path is not None or len(Path(relative).parts) < 2
                          else Path(relative).parts[0])  # fmt: skip


def build_medmnist(
    src: Path,
    info: MedMNISTFlag,
    image_size: int | None = None,
    channels: int | None = None,
    dataset: str | None = "medmnist",
) -> ArrayDataset:
    """The :class:`ArrayDataset` of MedMNIST file ``src`` holding dataset ``info``."""
    retina = info.flag == "retinamnist"
    names = list(DR_GRADES) if retina else list(info.labels)  # the grades, named
    parts = read_medmnist_npz(src, info.n_labels, info.multilabel, info.python_class)
    images = np.concatenate([parts[p][0] for p in MEDMNIST_PARTS])  # (N, H, W, C) uint8
    if images.shape[-1] != info.n_channels:
        raise DataError(fmt(f"{info.n_channels}-channel images ({info.python_class})",
                            f"{images.shape[-1]} channels", f"{src} key train_images",
                            "check task.params.flag or the file"))  # fmt: skip
    native = int(images.shape[1])
    if channels == 1 and info.n_channels == 3:
        raise DataError(fmt(f"channels 3 or null ({info.python_class} is RGB)", channels,
                            "task.params.channels", "drop the key"))  # fmt: skip
    images = images.transpose(0, 3, 1, 2)  # (N, C, H, W)
    if channels == 3 and images.shape[1] == 1:
        images = np.repeat(images, 3, axis=1)
    if image_size is None or (images.shape[2], images.shape[3]) == (image_size, image_size):
        x = np.ascontiguousarray(images, dtype=np.float32) / 255.0
    else:
        x = resize_images(images, image_size)
    y = np.concatenate([parts[p][1] for p in MEDMNIST_PARTS])
    official = np.concatenate([np.full(len(parts[p][1]), p) for p in MEDMNIST_PARTS])
    ids = np.array([f"{p}{i}" for p in MEDMNIST_PARTS for i in range(len(parts[p][1]))])
    counts = y.sum(0) if info.multilabel else np.bincount(y, minlength=len(names))
    converted = len(y) if channels == 3 and info.n_channels == 1 else 0
    caveat = _CAVEATS.get(info.flag, f"patients unknown: {info.python_class} has no patient "
                          "ids, so its official split cannot be audited by patient here")  # fmt: skip
    return ArrayDataset(
        inputs={"x": x},
        y=y,
        groups=ids,  # the image: patient ids are not in the release
        class_names=names,
        sample_ids=ids,
        meta={
            "source": str(src),
            "dataset": dataset,
            "flag": info.flag,
            "task_type": info.task,
            "group_unit": "image",
            "official_split": official,
            "split_caveat": caveat,
            "ordinal": {"referable_from": REFERABLE_FROM} if retina else None,
            "image_size": int(x.shape[-1]),
            "native_size": native,
            "channels": int(x.shape[1]),
            "label_source": "MedMNIST v2 RetinaMNIST labels (DeepDRiD grades 0-4)"
            if retina
            else f"MedMNIST v2 {info.python_class} labels ({info.task})",
            "cohort": {
                "rows_read": len(y),
                "rows_dropped": {},
                "class_counts": {n: int(c) for n, c in zip(names, counts)},
                **(
                    {"converted": {"grayscale repeated to 3 channels": converted}}
                    if converted
                    else {}
                ),
            },
        },
    )


@register_task(
    "retinamnist_grade",
    inputs={"x": "image"},
    metrics=("classification", "ordinal"),
    reader=read_image_input,
    example=TaskExample(write_retinamnist_example, unlabelled=0),  # npz labels are never empty
)
def retinamnist_grade(
    data_dir: Path | None,
    path: str | None = None,
    file: str = "medmnist/retinamnist.npz",
    image_size: int | None = None,
) -> ArrayDataset:
    """RetinaMNIST: diabetic-retinopathy grade 0-4 from a fundus photograph (N, 3, 28, 28),
    resized to ``image_size`` when set (e.g. for an ImageNet backbone); ``medmnist`` with
    ``flag: retinamnist``, scored also by the ordinal family."""
    return medmnist(data_dir, flag="retinamnist", path=path, file=file, image_size=image_size)


@register_protocol("medmnist_official", grouped=False)
def medmnist_official(ds: ArrayDataset, cfg: SplitConfig) -> dict[str, np.ndarray]:
    """MedMNIST's own train / val / test partition, as released (no re-drawing)."""
    official = ds.meta.get("official_split")
    if official is None:
        raise SplitError(
            "expected a MedMNIST task (rows tagged with their official partition), got a "
            "dataset without meta['official_split'] in split.protocol=medmnist_official; use "
            "it with the medmnist or retinamnist_grade task"
        )
    official = np.asarray(official)
    return {p: np.flatnonzero(official == p) for p in MEDMNIST_PARTS}


GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")  # PIL modes of one channel


def open_image(path: Path) -> Any:
    """One image file, decoded in full (a ``PIL.Image``, still in its own mode).

    A damaged, truncated or non-image file is a one-line DataError naming it: the pixels
    are decoded here (PIL decodes lazily) with ``ImageFile.LOAD_TRUNCATED_IMAGES`` off, so
    a truncated file fails rather than being padded with grey, whatever another library
    set that switch to.
    """
    from PIL import Image, ImageFile

    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (OSError, SyntaxError, ValueError) as exc:  # UnidentifiedImageError, truncated
        why = type(exc).__name__ + (" (truncated)" if "truncated" in str(exc).lower() else "")
        raise DataError(fmt("a readable image", why, str(path),
                            "the file is damaged or not an image: restore it")) from None  # fmt: skip
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before


def is_gray(im: Any) -> bool:
    """Whether a PIL image has one colour channel (L, 1, I, F, or L with alpha)."""
    return str(im.mode) in GRAY_MODES


def read_image(path: Path, mode: str = "RGB") -> np.ndarray:
    """One image file (JPEG, PNG, ...) as (3, H, W) uint8 RGB (``mode="L"``: (1, H, W)
    grayscale); a damaged or truncated file is a DataError (:func:`open_image`)."""
    return image_array(open_image(path), mode)


def image_array(im: Any, mode: str = "RGB") -> np.ndarray:
    """A PIL image converted to ``mode`` (RGB or L) as (C, H, W) uint8."""
    a = np.asarray(im.convert(mode))
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """(N, C, H, W) uint8 -> (N, C, size, size) float32 in [0, 1], antialiased bilinear
    (the one resizing used for training and for ``medtorch predict``)."""
    import torch
    import torch.nn.functional as F

    x = np.empty((len(images), images.shape[1], size, size), dtype=np.float32)
    for s in range(0, len(images), 512):
        t = torch.from_numpy(np.ascontiguousarray(images[s : s + 512])).float().div_(255.0)
        if t.shape[-2:] != (size, size):
            t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)  # fmt: skip
        x[s : s + len(t)] = t.clamp_(0, 1).numpy()
    return x


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def read_image_inputs(path: Path, size: int, mode: str = "RGB") -> tuple[np.ndarray, list[str]]:
    """An image file, or a folder of them, for prediction: ((N, C, size, size), file names),
    C = 3 for ``mode="RGB"``, 1 for ``"L"`` (each image converted to the run's mode).

    Non-square images are resized to a square (the training images were square crops);
    crop them first where the aspect ratio matters.
    """
    files = image_files(Path(path))
    return read_image_files(files, size, lambda f: read_image(f, mode)), [f.name for f in files]


def image_files(path: Path) -> list[Path]:
    """``path`` itself, or the image files of the folder ``path`` (sorted by name)."""
    if not path.is_dir():
        return [path]
    files = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(fmt(f"image files ({', '.join(IMAGE_SUFFIXES)})", "none", str(path),
                            "point to an image or a folder holding images"))  # fmt: skip
    return files


def read_image_files(
    files: list[Path], size: int, read: Callable[[Path], np.ndarray] | None = None
) -> np.ndarray:
    """(N, C, size, size) of image files, each read by ``read`` (a task's own reader,
    e.g. one that refuses a grayscale dermoscopy file; default: as RGB) and resized."""
    one = read or (lambda f: read_image(f, "RGB"))
    return np.concatenate([resize_images(one(f)[None], size) for f in files])
