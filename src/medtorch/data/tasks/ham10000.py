"""HAM10000 dermoscopy (Tschandl et al. 2018): the seed's Esteva 2017 application at small
scale, 7 diagnoses grouped by lesion, and the patient metadata beside each image.

``ham10000_dx`` reads the HAM10000 layout (``metadata.csv`` with the official columns and
``images/<image_id>.jpg``). With ``metadata_features: true`` each image also carries the patient's
age, sex and the lesion's body site (``localization``), encoded without anything fitted
(:data:`META_FEATURES`): age / 100 and an "age unknown" flag, sex as two indicators
(``unknown``: both 0), the 14 body sites one-hot (``unknown``: all 0). They are the
metadata the ISIC challenges give with each image (age, sex, anatomic site), known at the
visit, never derived from the diagnosis (``dx_type``, how the diagnosis was confirmed, is
not read: it follows from the label). The task's input ``meta`` then reaches an image
model with a metadata branch (``n_meta``, :class:`medtorch.models.vision.MetaBranch`), and
``medtorch predict`` / ``explain`` read a folder in the same layout.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medtorch.data.dataset import ArrayDataset
from medtorch.data.tasks.images import (
    image_array,
    image_files,
    is_gray,
    open_image,
    read_image_files,
    resize_images,
)
from medtorch.data.tasks.registry import (
    InputKind,
    PredictInput,
    TaskExample,
    register_task,
    source_path,
)
from medtorch.errors import DataError, fmt

HAM_DX = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
HAM_MALIGNANT = ("akiec", "bcc", "mel")  # (pre)malignant: actinic keratosis/Bowen's, BCC, melanoma
HAM_COLUMNS = ("lesion_id", "image_id", "dx")
META_COLUMNS = ("age", "sex", "localization")
HAM_SEXES = ("male", "female")  # "unknown": neither
HAM_SITES = ("abdomen", "acral", "back", "chest", "ear", "face", "foot", "genital", "hand",
             "lower extremity", "neck", "scalp", "trunk", "upper extremity")  # fmt: skip
UNKNOWN = ("", "unknown", "nan")
META_FEATURES = ["age / 100", "age unknown", *[f"sex {s}" for s in HAM_SEXES],
                 *[f"site {s}" for s in HAM_SITES]]  # fmt: skip


def _check_columns(path: Path, fields: Sequence[str] | None, needed: Sequence[str]) -> None:
    missing = [c for c in needed if c not in (fields or [])]
    if missing:
        hint = f"add column {missing[0]} (the official HAM10000 metadata has it)"
        if missing[0] in META_COLUMNS:
            hint += " or set task.params.metadata_features: false"
        raise DataError(fmt(f"columns {list(needed)}", fields, str(path), hint))


def _csv_rows(meta: Path, needed: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a HAM10000 ``metadata.csv`` that has the ``needed`` columns and a row."""
    with meta.open(newline="") as f:
        reader = csv.DictReader(f)
        _check_columns(meta, reader.fieldnames, needed)
        rows = list(reader)
    if not rows:
        raise DataError(fmt("one row per image", "no rows", str(meta),
                            "restore the metadata rows (the header alone is there)"))  # fmt: skip
    return rows


def _image_file(folder: Path, row: dict[str, str], where: str) -> Path:
    """``images/<image_id>.jpg`` of a row; a DataError naming ``where`` when it is missing."""
    file = folder / "images" / f"{row['image_id']}.jpg"
    if not file.is_file():
        raise DataError(fmt("an image file", f"images/{row['image_id']}.jpg missing",
                            f"{where} field image_id", "restore the image or drop its row"))  # fmt: skip
    return file


def _age(value: str) -> float | None:
    """Age in years, None when unknown; a ValueError for anything else."""
    v = (value or "").strip().lower()
    if v in UNKNOWN:
        return None
    age = float(v)
    if not math.isfinite(age) or not 0 <= age <= 120:
        raise ValueError(v)
    return age


def check_metadata(row: dict[str, str], where: str) -> None:
    """A DataError naming ``where`` and the field when age, sex or localization is not a
    HAM10000 value (an age in years 0-120, or empty / unknown)."""
    try:
        _age(row["age"])
    except ValueError:
        raise DataError(fmt("an age in years (0-120) or empty", row["age"], f"{where} field age",
                            "fix the value or leave it empty (unknown)")) from None  # fmt: skip
    for field, values in (("sex", HAM_SEXES), ("localization", HAM_SITES)):
        v = (row[field] or "").strip().lower()
        if v not in values and v not in UNKNOWN:
            raise DataError(fmt(f"one of {[*values, 'unknown']}", row[field],
                                f"{where} field {field}", "use HAM10000's spelling"))  # fmt: skip


def encode_metadata(rows: Sequence[dict[str, str]]) -> np.ndarray:
    """(N, 18) float32 features (:data:`META_FEATURES`) of checked rows; nothing is fitted,
    so train, validation, test and a new folder are encoded alike."""
    out = np.zeros((len(rows), len(META_FEATURES)), dtype=np.float32)
    for i, r in enumerate(rows):
        age = _age(r["age"])
        out[i, 0], out[i, 1] = (0.0, 1.0) if age is None else (age / 100.0, 0.0)
        sex, site = r["sex"].strip().lower(), r["localization"].strip().lower()
        if sex in HAM_SEXES:
            out[i, 2 + HAM_SEXES.index(sex)] = 1.0
        if site in HAM_SITES:
            out[i, 4 + HAM_SITES.index(site)] = 1.0
    return out


HAM_DX = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
HAM_MALIGNANT = ("akiec", "bcc", "mel")  # (pre)malignant: actinic keratosis/Bowen's, BCC, melanoma
HAM_COLUMNS = ("lesion_id", "image_id", "dx")


def read_ham10000(folder: Path, metadata: bool = False) -> tuple[list[dict[str, str]], int]:
    """Rows of ``metadata.csv`` (official HAM10000 columns), each with an existing image,
    and the number of rows left out for an empty ``dx`` (no label).

    One-line DataErrors name the file, the row and the field: missing columns, an unknown
    ``dx``, an empty ``lesion_id``, a missing image file; with ``metadata``, also an age,
    sex or localization that is not one of HAM10000's values (:func:`check_metadata`).
    """
    meta = folder / "metadata.csv"
    if not meta.is_file():
        raise DataError(fmt("metadata.csv", str(meta), "the ham10000_subset folder",
                            "run `medtorch data info ham10000_subset` for its files"))  # fmt: skip
    read = _csv_rows(meta, HAM_COLUMNS + (META_COLUMNS if metadata else ()))
    rows = [r for r in read if (r["dx"] or "").strip()]
    first: dict[str, int] = {}
    for i, r in enumerate(read, start=2):  # line numbers as an editor shows them
        if r["image_id"] in first:  # one image twice would sit in two partitions or count twice
            raise DataError(fmt("each image_id once", r["image_id"],
                                f"{meta} line {i} field image_id (also on line {first[r['image_id']]})",
                                "drop the duplicate row"))  # fmt: skip
        first[r["image_id"]] = i
        if not (r["dx"] or "").strip():
            continue  # unlabelled: counted by the task
        if r["dx"] not in HAM_DX:
            raise DataError(fmt(f"dx in {HAM_DX}", r["dx"], f"{meta} line {i} field dx",
                                "fix the row or drop it"))  # fmt: skip
        if metadata:
            check_metadata(r, f"{meta} line {i}")
        if not r["lesion_id"].strip():
            raise DataError(fmt("a lesion_id (the split unit)", "an empty value",
                                f"{meta} line {i} field lesion_id", "fill it or drop the row"))  # fmt: skip
        _image_file(folder, r, f"{meta} line {i}")
    return rows, len(read) - len(rows)


def read_ham_input(path: Path, hints: Any, params: Any = None) -> PredictInput:
    """The ``reader`` of ``ham10000_dx``: images as any image task reads them or, for a run
    trained with ``metadata_features: true``, a folder in the HAM10000 layout (``metadata.csv`` with
    image_id, age, sex and localization; ``images/<image_id>.jpg``), every row predicted
    (a dx, when given, is not read)."""
    size = int(hints["image_size"])
    if not (params or {}).get("metadata_features"):
        files = image_files(Path(path))
        return PredictInput(
            {"x": read_image_files(files, size, dermoscopy_image)}, [f.name for f in files]
        )
    root = Path(path)
    meta = root / "metadata.csv"
    if not meta.is_file():
        raise DataError(fmt("a folder in the HAM10000 layout (metadata.csv, images/)", str(root),
                            "the input of a run trained with task.params.metadata_features: true",
                            "the network reads each image's age, sex and localization"))  # fmt: skip
    rows = _csv_rows(meta, ("image_id", *META_COLUMNS))
    files = []
    for i, r in enumerate(rows, start=2):
        check_metadata(r, f"{meta} line {i}")
        files.append(_image_file(root, r, f"{meta} line {i}"))
    x = read_image_files(files, size, dermoscopy_image)
    return PredictInput({"x": x, "meta": encode_metadata(rows)}, [r["image_id"] for r in rows])


def dermoscopy_image(img_path: Path) -> np.ndarray:
    """One dermoscopy photograph as (3, H, W) uint8; a grayscale file is a DataError, in
    training and in prediction alike (a dermoscopy photograph is colour: a grey one is
    another file, and repeating it to RGB would hide that)."""
    im = open_image(img_path)
    if is_gray(im):
        raise DataError(fmt("an RGB dermoscopy image", f"a grayscale image (mode {im.mode})",
                            str(img_path), "the file is not a HAM10000 image: restore it"))  # fmt: skip
    return image_array(im)


def _inputs(metadata_features: bool = False, **_: Any) -> dict[str, InputKind]:
    return {"x": "image", "meta": "features"} if metadata_features else {"x": "image"}


def write_ham10000_example(folder: Path) -> dict[str, Any]:
    """A tiny HAM10000-layout folder: 14 JPEGs of 7 lesions (two images each), one row
    without a diagnosis."""
    from PIL import Image

    root = folder / "ham_tiny"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["lesion_id,image_id,dx,age,sex,localization"]
    for k in range(15):
        image_id = f"ISIC_{k:07d}"
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
            root / "images" / f"{image_id}.jpg"
        )
        dx = HAM_DX[(k // 2) % len(HAM_DX)] if k < 14 else ""  # the last row: no label
        age = "" if k == 3 else str(5 * (k + 4))  # one age unknown
        meta = f"{age},{HAM_SEXES[k % 2] if k != 5 else 'unknown'},{HAM_SITES[k % len(HAM_SITES)]}"
        lines.append(f"HAM_{k // 2:07d},{image_id},{dx},{meta}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return {"path": str(root), "image_size": 16}


@register_task(
    "ham10000_dx",
    inputs=_inputs,
    metrics=("classification", "decision"),
    reader=read_ham_input,
    example=TaskExample(write_ham10000_example, unlabelled=1),
)
def ham10000_dx(
    data_dir: Path | None,
    path: str | None = None,
    folder: str = "ham10000_subset",
    target: str = "dx",
    image_size: int = 128,
    metadata_features: bool = False,
) -> ArrayDataset:
    """HAM10000 dermoscopy: 7 diagnoses (``target: dx``) or (pre)malignant vs benign
    (``target: malignant``), images (N, 3, S, S) in [0, 1], grouped by lesion; with
    ``metadata_features``, also the input ``meta`` (N, 18): age, sex and body site."""
    if target not in ("dx", "malignant"):
        raise DataError(fmt("dx or malignant", target, "task.params.target",
                            "dx: 7 diagnoses; malignant: akiec/bcc/mel vs the rest"))  # fmt: skip
    root = source_path(data_dir, path, f"{folder}/")
    if not isinstance(metadata_features, bool):
        raise DataError(fmt("true or false", metadata_features, "task.params.metadata_features",
                            "true: age, sex and body site beside each image"))  # fmt: skip
    rows, unlabelled = read_ham10000(root, metadata_features)
    paths = [root / "images" / f"{r['image_id']}.jpg" for r in rows]
    images: np.ndarray | None = None  # (N, 3, H, W) uint8, filled as the files are decoded
    for i, img_path in enumerate(paths):
        img = dermoscopy_image(img_path)
        if images is None:
            images = np.empty((len(rows), *img.shape), dtype=np.uint8)
        if img.shape != images.shape[1:]:
            raise DataError(fmt(f"{tuple(images.shape[1:])} like the other images",
                                tuple(img.shape), str(img_path),
                                "resize it as the subset's SOURCE.md describes"))  # fmt: skip
        images[i] = img
    assert images is not None
    x = resize_images(images, image_size)
    dx = np.array([r["dx"] for r in rows])
    if target == "dx":
        names, y = list(HAM_DX), np.array([HAM_DX.index(d) for d in dx], dtype=np.int64)
    else:
        names, y = ["benign", "malignant"], np.isin(dx, HAM_MALIGNANT).astype(np.int64)
    counts = np.bincount(y, minlength=len(names))
    return ArrayDataset(
        inputs={"x": x, **({"meta": encode_metadata(rows)} if metadata_features else {})},
        y=y,
        groups=np.array([r["lesion_id"] for r in rows]),
        class_names=names,
        sample_ids=np.array([r["image_id"] for r in rows]),
        meta={
            "source": str(root),
            "dataset": None if path is not None else Path(folder).parts[0],
            "group_unit": "lesion",
            "label_source": "HAM10000 metadata dx (histopathology, follow-up, consensus or confocal)",
            "image_size": image_size,
            **({"meta_features": META_FEATURES} if metadata_features else {}),
            # Esteva 2017's question: (pre)malignant or not, from the 7-class probabilities
            "decision": {"name": "malignant", "positive": [HAM_DX.index(c) for c in HAM_MALIGNANT]}
            if target == "dx"
            else None,
            "cohort": {
                "rows_read": len(rows) + unlabelled,
                "rows_dropped": {"no label (empty dx)": unlabelled} if unlabelled else {},
                "class_counts": {n: int(c) for n, c in zip(names, counts)},
                "lesions": len(set(r["lesion_id"] for r in rows)),
            },
        },
    )
