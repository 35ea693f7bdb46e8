"""Image datasets: MedMNIST v2 (every 2-D set by name) and the HAM10000 dermoscopy subset."""

from medtorch.data.registry import DatasetInfo, files_from_checksums, register_dataset
from medtorch.data.sources.medmnist_info import MEDMNIST_2D

_FLAGS = ", ".join(f"{f}.npz" for f in MEDMNIST_2D)

register_dataset(
    DatasetInfo(
        "medmnist",
        "medmnist",
        "MedMNIST v2 2-D datasets (28x28; RetinaMNIST checksummed)",
        "the twelve MedMNIST v2 2-D datasets, one .npz each with MedMNIST's official splits, "
        f"read by task medmnist (task.params.flag) from medmnist/<flag>.npz: {_FLAGS} "
        "(MedMNIST+'s larger sizes as <flag>_64/_128/_224.npz through task.params.file). "
        "The package lists and checksums retinamnist.npz (1,600 fundus images 28x28x3, "
        "diabetic-retinopathy grade 0-4; official splits 1080/120/400); the others download "
        "from the same Zenodo record (https://zenodo.org/records/10519652) and are checked "
        "by shape, channels and labels when read",
        "CC BY 4.0 (MedMNIST; DermaMNIST CC BY-NC 4.0, from HAM10000)",
        (
            "Yang J et al. MedMNIST v2: a large-scale lightweight benchmark for 2D and 3D "
            "biomedical image classification. Sci Data 10:41 (2023)",
        ),
        "https://medmnist.com/",
        files_from_checksums(
            "medmnist",
            lambda path: (f"https://zenodo.org/records/10519652/files/{path}", None, None),
        ),
        rank=4,
    )
)

register_dataset(
    DatasetInfo(
        "ham10000_subset",
        "ham10000_subset",
        "HAM10000 subset (5,366 images, 128x128)",
        "5,366 dermoscopic images (3,789 lesions, 7 classes) resized to 128x128 JPEG with the "
        "official metadata rows; split by lesion_id",
        "CC BY-NC 4.0 (non-commercial)",
        (
            "Tschandl P, Rosendahl C, Kittler H. The HAM10000 dataset, a large collection of "
            "multi-source dermatoscopic images of common pigmented skin lesions. Sci Data "
            "5:180161 (2018); doi:10.1038/sdata.2018.161",
        ),
        "https://doi.org/10.7910/DVN/DBW86T",
        files_from_checksums("ham10000_subset"),
        manual_download="no public single download of this subset: it is 5,366 HAM10000 "
        "images (Harvard Dataverse doi:10.7910/DVN/DBW86T) resized to 128x128 with their "
        "official metadata rows, built as its SOURCE.md describes; download HAM10000 "
        "from the Dataverse, rebuild the subset that way",
        rank=5,
    )
)
