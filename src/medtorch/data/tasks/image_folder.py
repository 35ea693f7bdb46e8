"""``image_folder``: a plain class-per-folder image tree, ``root/<class>/<image>``.

The third image source, beside MedMNIST's ``.npz`` and HAM10000's metadata: any tree of
JPEG, PNG, BMP or TIFF files with one folder per class (as torchvision's ``ImageFolder``
reads it; images in sub-folders of a class folder belong to that class).

- **classes**: the folder names, sorted; ``classes`` fixes the known set and its order
  (a folder not in it is an error; a listed class without a folder has no images).
- **groups**: without ``metadata`` each image is its own group, and the run's leakage
  note says that the groups (patients, lesions) are unknown. With ``metadata``, a CSV with
  a column of image file names (``id_column``: the file name, its stem, or its path under
  the root) and a ``group_column`` (patient, lesion...), grouped splits keep each group in
  one partition; every image needs its row and every row its image.
- **sizes**: every image is resized to ``image_size`` square (antialiased bilinear), so a
  folder of mixed sizes reads; crop first where the aspect ratio matters.
- **colour**: ``color: auto`` (default) keeps the folder's own mode (all grayscale ->
  (N, 1, S, S), all colour -> (N, 3, S, S)); a folder that mixes grayscale and colour
  images is a one-line error naming one of the fewer kind, until ``color: rgb`` (grayscale
  repeated to RGB) or ``color: gray`` (colour converted to luminance) says what to do; the
  images converted are counted in the cohort (``converted``). 16-bit and float images are
  an error (converting them to 8 bits would clip).
- **what is left out, counted**: files whose suffix is not an image's (``files_ignored``,
  e.g. ``notes.txt``, ``.DS_Store``) and images directly in the root, outside any class
  folder (``rows_dropped``: no label); a CSV in the root (the metadata) is neither. A
  damaged or truncated image is an error naming it.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from medtorch.data.dataset import ArrayDataset
from medtorch.data.tasks.images import (
    IMAGE_SUFFIXES,
    image_array,
    is_gray,
    open_image,
    read_image_input,
    resize_images,
)
from medtorch.data.tasks.registry import TaskExample, register_task
from medtorch.errors import DataError, fmt

DEEP_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # more than 8 bits a channel
_NO_GROUPS = (
    "groups unknown: no task.params.metadata with a group_column, so each image is its own "
    "group and images of one patient or lesion may sit in two partitions (scores "
    "optimistic); give the metadata CSV and group_column to split by group"
)


def _class_folders(root: Path, classes: list[str] | None) -> tuple[list[str], list[Path]]:
    """The class names (sorted folder names, or ``classes``) and the class folders."""
    if not root.is_dir():
        raise DataError(fmt("a folder root/<class>/<image>", str(root), "task.params.path",
                            "point to the root of the image tree"))  # fmt: skip
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is None:
        names = [p.name for p in folders]
    else:
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise DataError(fmt("a list of class names", classes, "task.params.classes",
                                "e.g. [benign, malignant]"))  # fmt: skip
        if len(set(classes)) != len(classes):
            dup = next(c for c in classes if classes.count(c) > 1)
            raise DataError(fmt("each class once", dup, "task.params.classes",
                                "drop the repeated name"))  # fmt: skip
        names = list(classes)
        for p in folders:
            if p.name not in names:
                raise DataError(fmt(f"class folders in task.params.classes {names}",
                                    f"folder {p.name}", str(root),
                                    "add it to classes or move the folder out"))  # fmt: skip
    if len(names) < 2:
        raise DataError(fmt("at least 2 class folders", names, str(root),
                            "put the images in one folder per class: root/<class>/<image>"))  # fmt: skip
    return names, folders


def _scan(
    root: Path, folders: list[Path], classes_given: bool
) -> tuple[list[tuple[Path, str]], int, dict[str, int]]:
    """(image file, class) pairs, the images outside any class folder and the ignored
    files by reason."""
    ignored: dict[str, int] = {}

    def is_image(f: Path) -> bool:
        if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."):
            return True
        ignored["not an image (suffix)"] = ignored.get("not an image (suffix)", 0) + 1
        return False

    loose = [f for f in sorted(root.iterdir()) if f.is_file()]
    outside = sum(is_image(f) for f in loose if f.suffix.lower() != ".csv")
    files: list[tuple[Path, str]] = []
    for folder in folders:
        found = [f for f in sorted(folder.rglob("*")) if f.is_file() and is_image(f)]
        if not found and not classes_given:
            raise DataError(fmt("image files in every class folder", "none", str(folder),
                                "add images or remove the folder"))  # fmt: skip
        files += [(f, folder.name) for f in found]
    return files, outside, ignored


def _read_groups(
    root: Path, files: list[Path], metadata: str, id_column: str, group_column: str | None
) -> np.ndarray:
    """The group of each file from the metadata CSV (one row per image, one image per row)."""
    meta = Path(metadata)
    if not meta.is_absolute() and (root / meta).is_file():
        meta = root / meta
    if not meta.is_file():
        raise DataError(fmt("a metadata CSV", str(meta), "task.params.metadata",
                            "give its path (absolute, or under task.params.path)"))  # fmt: skip
    if group_column is None:
        raise DataError(fmt("a group_column naming the grouping column", None,
                            "task.params.group_column", "e.g. patient_id or lesion_id"))  # fmt: skip
    with meta.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in (id_column, group_column) if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(fmt(f"columns {id_column} and {group_column}", reader.fieldnames,
                                str(meta), f"set task.params.id_column / group_column or add "
                                f"column {missing[0]}"))  # fmt: skip
        rows = list(reader)
    keys: dict[str, list[int]] = {}  # file name, stem and path under the root -> files
    for i, file in enumerate(files):
        rel = file.relative_to(root)
        for key in {rel.as_posix(), rel.with_suffix("").as_posix(), file.name, file.stem}:
            keys.setdefault(key, []).append(i)
    group: list[str | None] = [None] * len(files)
    line_of: dict[int, int] = {}
    for line, r in enumerate(rows, start=2):  # line numbers as an editor shows them
        key = (r[id_column] or "").strip()
        where = f"{meta} line {line} field {id_column}"
        if key not in keys:
            raise DataError(fmt("an image file for every metadata row", f"{key} with no file "
                                f"under {root}", where, "restore the image or drop its row"))  # fmt: skip
        if len(keys[key]) > 1:
            both = [files[j].relative_to(root).as_posix() for j in keys[key][:2]]
            raise DataError(fmt("an id naming one image", f"{key} matching {both}", where,
                                "give the path under the root, e.g. class/name.jpg"))  # fmt: skip
        (i,) = keys[key]
        if i in line_of:
            raise DataError(fmt("one row per image", f"{key} again", where,
                                f"drop the duplicate of line {line_of[i]}"))  # fmt: skip
        value = (r[group_column] or "").strip()
        if not value:
            raise DataError(fmt(f"a {group_column} (the split unit)", "an empty value",
                                f"{meta} line {line} field {group_column}",
                                "fill it or drop the row"))  # fmt: skip
        line_of[i], group[i] = line, value
    for i, g in enumerate(group):
        if g is None:
            raise DataError(fmt("a metadata row for every image", "none for "
                                f"{files[i].relative_to(root).as_posix()}", str(meta),
                                f"add its row ({id_column}, {group_column})"))  # fmt: skip
    return np.array(group)


def _decode(files: list[Path], color: str) -> tuple[list[np.ndarray], str, int]:
    """The images as (C, H, W) uint8 in one mode (RGB or L), the mode and how many were
    converted to it."""
    arrays, gray = [], []
    for f in files:
        im = open_image(f)
        if str(im.mode) in DEEP_MODES:
            raise DataError(fmt("8-bit images", f"mode {im.mode} (more than 8 bits)", str(f),
                                "convert it to 8-bit first (converting here would clip)"))  # fmt: skip
        gray.append(is_gray(im))
        arrays.append(image_array(im, "L" if gray[-1] else "RGB"))
    n_gray = sum(gray)
    if color == "auto":
        if 0 < n_gray < len(files):
            n_colour = len(files) - n_gray
            few_gray = n_gray <= n_colour
            first = files[gray.index(few_gray)]
            raise DataError(fmt(f"images of one colour mode (the folder has {n_colour} colour "
                                f"and {n_gray} grayscale)",
                                f"{'grayscale' if few_gray else 'colour'} image {first.name}",
                                str(first.parent), "set task.params.color to rgb (grayscale "
                                "repeated) or gray (colour to luminance)"))  # fmt: skip
        color = "gray" if n_gray == len(files) else "rgb"
    mode = "L" if color == "gray" else "RGB"
    converted = 0
    for i, a in enumerate(arrays):
        if mode == "RGB" and a.shape[0] == 1:
            arrays[i], converted = np.repeat(a, 3, axis=0), converted + 1
        elif mode == "L" and a.shape[0] == 3:
            arrays[i] = image_array(_pil(a), "L")
            converted += 1
    return arrays, mode, converted


def _pil(a: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(a.transpose(1, 2, 0)))


def write_image_folder_example(folder: Path) -> dict[str, Any]:
    """A tiny tree: 3 class folders of PNG and JPEG images of mixed sizes, a notes file
    (ignored, counted) and one image outside any class folder (unlabelled, counted)."""
    from PIL import Image

    root = folder / "tree"
    rng = np.random.default_rng(0)
    for name in ("benign", "malignant", "normal"):
        (root / name).mkdir(parents=True)
        for k in range(6):
            size = (12 + 4 * (k % 2), 16)
            img = Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8))
            img.save(root / name / f"{name}_{k}.{'png' if k % 2 else 'jpg'}")
    (root / "benign" / "notes.txt").write_text("not an image\n")
    Image.new("RGB", (16, 16)).save(root / "unsorted.png")
    return {"path": str(root), "image_size": 16}


@register_task(
    "image_folder",
    inputs={"x": "image"},
    metrics=("classification",),
    reader=read_image_input,
    example=TaskExample(write_image_folder_example, unlabelled=1),
)
def image_folder(
    data_dir: Path | None,
    path: str | None = None,
    image_size: int = 128,
    metadata: str | None = None,
    id_column: str = "image",
    group_column: str | None = None,
    classes: list[str] | None = None,
    color: str = "auto",
) -> ArrayDataset:
    """A class-per-folder image tree (root/<class>/<image>), images (N, C, S, S) in [0, 1].

    ``path``: the root. ``image_size``: every image resized to this square (default 128).
    ``metadata``: a CSV with the image's file name in ``id_column`` (default ``image``) and
    its group (patient, lesion) in ``group_column``, for grouped splits (without it each
    image is its own group and the leakage note says groups are unknown). ``classes``: the
    known classes in order (default: the folder names sorted). ``color``: auto (the folder's
    own mode; mixed grayscale and colour is an error), rgb or gray (convert, counted).
    See the module docstring for what is counted and what is an error.
    """
    if path is None:
        raise DataError(fmt("the root of an image tree root/<class>/<image>", None,
                            "task.params.path", "set it to the folder"))  # fmt: skip
    if color not in ("auto", "rgb", "gray"):
        raise DataError(fmt("auto, rgb or gray", color, "task.params.color",
                            "rgb repeats grayscale images, gray converts colour ones"))  # fmt: skip
    if not isinstance(image_size, int) or image_size < 1:
        raise DataError(fmt("a positive image_size (pixels)", image_size,
                            "task.params.image_size", "e.g. 64, 128 or 224"))  # fmt: skip
    root = Path(path)
    names, folders = _class_folders(root, classes)
    pairs, outside, ignored = _scan(root, folders, classes is not None)
    if not pairs:
        raise DataError(fmt(f"image files ({', '.join(IMAGE_SUFFIXES)})", "none", str(root),
                            "put the images in root/<class>/"))  # fmt: skip
    files = [f for f, _ in pairs]
    ids = np.array([f.relative_to(root).as_posix() for f in files])
    arrays, mode, converted = _decode(files, color)
    x = np.concatenate([resize_images(a[None], image_size) for a in arrays])
    y = np.array([names.index(c) for _, c in pairs], dtype=np.int64)
    if metadata is not None:
        groups, unit, caveat = _read_groups(root, files, metadata, id_column, group_column), \
            str(group_column), None  # fmt: skip
    else:
        groups, unit, caveat = ids, "image", _NO_GROUPS
    counts = np.bincount(y, minlength=len(names))
    cohort: dict[str, Any] = {
        "rows_read": len(y) + outside,
        "rows_dropped": {"no label (image not in a class folder)": outside} if outside else {},
        "class_counts": {n: int(c) for n, c in zip(names, counts)},
        "groups": len(set(groups.tolist())),
    }
    if ignored:
        cohort["files_ignored"] = ignored
    if converted:
        cohort["converted"] = {
            ("grayscale repeated to RGB" if mode == "RGB" else "colour to grayscale"): converted
        }
    return ArrayDataset(
        inputs={"x": x},
        y=y,
        groups=groups,
        class_names=names,
        sample_ids=ids,
        meta={
            "source": str(root),
            "dataset": None,  # a folder given by task.params.path
            "group_unit": unit,
            "split_caveat": caveat,
            "image_size": image_size,
            "color": "gray" if mode == "L" else "rgb",
            "label_source": "the class folder of each image",
            "cohort": cohort,
        },
    )
