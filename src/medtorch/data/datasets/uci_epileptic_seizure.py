"""UCI Epileptic Seizure Recognition (bundled with the package)."""

from medtorch.data.registry import DatasetInfo, files_from_checksums, register_dataset

_URL = "https://archive.ics.uci.edu/static/public/388/epileptic+seizure+recognition.zip"
# sha256 of data.csv inside UCI's zip (we store it gzipped)
_CONTENT = "4b3f6024ea24a864c0de51b2ba477bf8b9e4974e8cc01a00dcf45bfc59d48deb"

register_dataset(
    DatasetInfo(
        "uci_epileptic_seizure",
        "uci_epileptic_seizure",
        "UCI Epileptic Seizure Recognition",
        "11,500 one-second single-channel EEG chunks (178 samples, 173.61 Hz) from 500 "
        "Bonn recordings (23 chunks each), 5 classes (y=1 seizure)",
        "CC BY 4.0 (UCI)",
        (
            "Andrzejak RG et al., Phys. Rev. E 64, 061907 (2001)",
            "UCI Machine Learning Repository, Epileptic Seizure Recognition (id 388)",
        ),
        "https://archive.ics.uci.edu/dataset/388/epileptic+seizure+recognition",
        files_from_checksums("uci_epileptic_seizure", lambda path: (_URL, _CONTENT, "data.csv")),
        bundled=True,
        rank=0,
    )
)
