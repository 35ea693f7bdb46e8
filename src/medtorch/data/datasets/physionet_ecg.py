"""PhysioNet ECG databases: MIT-BIH Arrhythmia (training and DS2 test), and INCART and the
MIT-BIH Supraventricular Arrhythmia Database, kept for external validation of the MIT-BIH
recipes (never trained on). The external ones have no list in the package: their entry
names the publisher's checksum list, which ``fetch`` saves first and checks against."""

from medtorch.data.registry import DatasetInfo, files_from_checksums, register_dataset

register_dataset(
    DatasetInfo(
        "mitdb",
        "mitdb",
        "MIT-BIH Arrhythmia Database 1.0.0",
        "48 half-hour two-lead ECG records (47 subjects, 360 Hz, WFDB format 212) with "
        "reference beat annotations (109,494 beats)",
        "ODC-By 1.0 (PhysioNet)",
        (
            "Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia Database. IEEE EMB Mag "
            "20(3):45-50 (2001); doi:10.13026/C2F305",
            "Goldberger AL et al. PhysioBank, PhysioToolkit, and PhysioNet. Circulation "
            "101(23):e215-e220 (2000)",
        ),
        "https://physionet.org/content/mitdb/1.0.0/",
        files_from_checksums(
            "mitdb", lambda path: (f"https://physionet.org/files/mitdb/1.0.0/{path}", None, None)
        ),
        rank=2,
    )
)

register_dataset(
    DatasetInfo(
        "incartdb",
        "incartdb",
        "St Petersburg INCART 12-lead Arrhythmia Database 1.0.0",
        "75 half-hour 12-lead Holter excerpts from 32 patients (257 Hz) with reference "
        "beat annotations (over 175,000 beats); external test set for the MIT-BIH recipes",
        "ODC-By 1.0 (PhysioNet)",
        (
            "Tihonenko V, Khaustov A, Ivanov S, Rivin A, Yakushenko E. St Petersburg INCART "
            "12-lead Arrhythmia Database (version 1.0.0). PhysioNet (2008)",
            "Goldberger AL et al. Circulation 101(23):e215-e220 (2000)",
        ),
        "https://physionet.org/content/incartdb/1.0.0/",
        (),
        manifest_url="https://physionet.org/files/incartdb/1.0.0/SHA256SUMS.txt",
        size_note="about 0.8 GB (75 records x 12 leads x 30 min at 257 Hz)",
        rank=6,
    )
)

register_dataset(
    DatasetInfo(
        "svdb",
        "svdb",
        "MIT-BIH Supraventricular Arrhythmia Database 1.0.0",
        "78 half-hour two-lead ECG records (128 Hz) rich in supraventricular ectopy, with "
        "reference beat annotations; external test set for the MIT-BIH recipes",
        "ODC-By 1.0 (PhysioNet)",
        (
            "Greenwald SD, Patil RS, Mark RG. Improved detection and classification of "
            "arrhythmias in noise-stressed electrocardiograms using neural networks. "
            "Computers in Cardiology 17:461-464 (1990)",
            "Goldberger AL et al. Circulation 101(23):e215-e220 (2000)",
        ),
        "https://physionet.org/content/svdb/1.0.0/",
        (),
        manifest_url="https://physionet.org/files/svdb/1.0.0/SHA256SUMS.txt",
        size_note="about 55 MB (78 records x 2 leads x 30 min at 128 Hz)",
        rank=7,
    )
)
