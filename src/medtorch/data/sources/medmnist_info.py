"""What each MedMNIST v2 2-D dataset is: channels, task type, label names, licence.

The table is copied from MedMNIST v2's published metadata (``medmnist.INFO``, Yang et al.
2023), so medtorch reads every 2-D ``.npz`` without the ``medmnist`` package; when that
package is installed its ``INFO`` is used instead, and ``tests/test_images.py`` checks that
the two agree. Task types are MedMNIST's words: ``multi-class``, ``binary-class``,
``ordinal-regression`` (RetinaMNIST) and ``multi-label, binary-class`` (ChestMNIST, 14
findings per image).

>>> medmnist_flag("chestmnist").n_labels, medmnist_flag("chestmnist").multilabel
(14, True)
"""

from __future__ import annotations

from dataclasses import dataclass

from medtorch.errors import DataError, fmt


@dataclass(frozen=True)
class MedMNISTFlag:
    """One MedMNIST 2-D dataset: ``python_class`` (its name, e.g. PathMNIST), ``task``,
    ``n_channels`` (1 grayscale, 3 RGB), ``labels`` (label names in index order), licence."""

    flag: str
    python_class: str
    task: str
    n_channels: int
    labels: tuple[str, ...]
    licence: str = "CC BY 4.0"

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    @property
    def multilabel(self) -> bool:
        return self.task.startswith("multi-label")


_ORGANS = ("bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right",
           "liver", "lung-left", "lung-right", "pancreas", "spleen")  # fmt: skip

# fmt: off
MEDMNIST_2D: dict[str, MedMNISTFlag] = {
    f.flag: f
    for f in (
        MedMNISTFlag("pathmnist", "PathMNIST", "multi-class", 3,
                     ("adipose", "background", "debris", "lymphocytes", "mucus",
                      "smooth muscle", "normal colon mucosa", "cancer-associated stroma",
                      "colorectal adenocarcinoma epithelium")),
        MedMNISTFlag("chestmnist", "ChestMNIST", "multi-label, binary-class", 1,
                     ("atelectasis", "cardiomegaly", "effusion", "infiltration", "mass",
                      "nodule", "pneumonia", "pneumothorax", "consolidation", "edema",
                      "emphysema", "fibrosis", "pleural", "hernia")),
        MedMNISTFlag("dermamnist", "DermaMNIST", "multi-class", 3,
                     ("actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma",
                      "benign keratosis-like lesions", "dermatofibroma", "melanoma",
                      "melanocytic nevi", "vascular lesions"), "CC BY-NC 4.0"),
        MedMNISTFlag("octmnist", "OCTMNIST", "multi-class", 1,
                     ("choroidal neovascularization", "diabetic macular edema", "drusen",
                      "normal")),
        MedMNISTFlag("pneumoniamnist", "PneumoniaMNIST", "binary-class", 1,
                     ("normal", "pneumonia")),
        MedMNISTFlag("retinamnist", "RetinaMNIST", "ordinal-regression", 3,
                     ("0", "1", "2", "3", "4")),
        MedMNISTFlag("breastmnist", "BreastMNIST", "binary-class", 1,
                     ("malignant", "normal, benign")),
        MedMNISTFlag("bloodmnist", "BloodMNIST", "multi-class", 3,
                     ("basophil", "eosinophil", "erythroblast",
                      "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
                      "lymphocyte", "monocyte", "neutrophil", "platelet")),
        MedMNISTFlag("tissuemnist", "TissueMNIST", "multi-class", 1,
                     ("Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule",
                      "Glomerular endothelial cells", "Interstitial endothelial cells",
                      "Leukocytes", "Podocytes", "Proximal Tubule Segments",
                      "Thick Ascending Limb")),
        MedMNISTFlag("organamnist", "OrganAMNIST", "multi-class", 1, _ORGANS),
        MedMNISTFlag("organcmnist", "OrganCMNIST", "multi-class", 1, _ORGANS),
        MedMNISTFlag("organsmnist", "OrganSMNIST", "multi-class", 1, _ORGANS),
    )
}
# fmt: on


def _from_info(flag: str, info: dict) -> MedMNISTFlag:
    """A table row from one entry of ``medmnist.INFO``."""
    labels = info["label"]
    return MedMNISTFlag(
        flag,
        str(info["python_class"]),
        str(info["task"]),
        int(info["n_channels"]),
        tuple(str(labels[str(i)]) for i in range(len(labels))),
        str(info.get("license", "CC BY 4.0")),
    )


def medmnist_flag(flag: str | None, use_package: bool = True) -> MedMNISTFlag:
    """The metadata of MedMNIST 2-D dataset ``flag`` (``medmnist.INFO`` when the package is
    installed and ``use_package``, else the table above); an unknown flag is a DataError
    naming ``task.params.flag``."""
    if flag not in MEDMNIST_2D:
        raise DataError(
            fmt(
                f"a MedMNIST v2 2-D dataset ({', '.join(MEDMNIST_2D)})",
                flag,
                "task.params.flag",
                "name one of them",
            )
        )
    if use_package:
        try:
            from medmnist import INFO as package_info
        except ImportError:  # optional: the table is enough
            package_info = {}
        if flag in package_info:
            return _from_info(flag, package_info[flag])
    return MEDMNIST_2D[flag]
