"""MIMIC-III Clinical Database Demo 1.4 (PhysioNet serves the tables as plain CSV; the
package lists them gzipped, with the sha256 of the decompressed content)."""

from medtorch.data.registry import DatasetInfo, files_from_checksums, register_dataset

_URL = "https://physionet.org/files/mimiciii-demo/1.4/"
# sha256 of the decompressed CSVs (MIMIC-III demo SOURCE.md); PhysioNet serves them plain
_CONTENT = {
    "ADMISSIONS": "d2020d2373294a24b1f45d408788655b7f11f6e9facb81ab426d3b206bd68f66",
    "CALLOUT": "76edb7acc33ae976d7b777395d70db2075ade83fd2606ec16abada1795ff3b99",
    "CAREGIVERS": "04132c49fc282d0662f89e1e28c26f36f6da7ae6e5441deba6fa38e2be46dee0",
    "CPTEVENTS": "3715d0c80d9a4ebc639ede2f9727b90e22620e601d1708ce44958d7ee33b072c",
    "DATETIMEEVENTS": "791965ee07f19c90af114ca11a6e4976993edea15fa689795799f6ec0c51e2e6",
    "DIAGNOSES_ICD": "fc0efcaf575beb3b627e9d0fb53b1644a54acac6d0cc6d7964f5943f2cbb83fc",
    "DRGCODES": "cce7354ea215a6c6099620366bcb4e38fb2a3b0343c8549b3abd30c4c2bee486",
    "D_CPT": "427011b1cf5e910ec90fe3ee727270fab52b1c295d297843b126ebd2ff24caac",
    "D_ICD_DIAGNOSES": "3483111ded9acbd7ee942fae696e767bafc7f3b17d26658d082a8807022293c2",
    "D_ICD_PROCEDURES": "a651caec8a31b89baf24c8e2d539dadb1bbfd399a733d1ba1bb56b1724c77059",
    "D_ITEMS": "70fc815594ce8f4ce737e55bb4ece62b80a2636e4eecf7388dc5325a1a5b6fee",
    "D_LABITEMS": "a97f74eb69412454090f9e5816440c9b3d1c10cfa01accf65fab36079fce2ba1",
    "ICUSTAYS": "323c4dfb89584a9697bc04fc61f60cdaaee3e7cab19235a9da113b98895b34cb",
    "INPUTEVENTS_CV": "6afff6073da518f5bca2800d1990d4f5821fae56dafaf255390d5d2585f7cd63",
    "INPUTEVENTS_MV": "6cd23739099905adc08b913229ec6594d7f281df2b0c4a7a62528e40e7acae34",
    "LABEVENTS": "16b220663d4ca1f82a3b6c283f88e00b3a6ad1d5f570f4f606b57e43c7046fa2",
    "MICROBIOLOGYEVENTS": "82af878505d77709a0b464e3889055ec747364999590cbe613835da51169d4f3",
    "NOTEEVENTS": "cf49c6698ee632d77adc56228e46fac397d55f48d983f4b5e05e502f22a199f8",
    "OUTPUTEVENTS": "4e01bbee74f88bd70c5cf260a08e8535565ba3a1be6e2ec3120bb016774d2c7a",
    "PATIENTS": "6e05f5d9ada57cc3b799134dc659ce358184f5b0bbf3dcdbb3f84c34d4ccf0e1",
    "PRESCRIPTIONS": "94b5b109038aa4c528ca66be1a9398b833d96955058bc62088bf89ac8a1c02cc",
    "PROCEDUREEVENTS_MV": "7329315450d20f2f99c82c79c389a45202ebb0c1b8ac3cb9f943cec45c2e32d4",
    "PROCEDURES_ICD": "aa55768a5c804a34e2fdbba80c13cb825363b2ea8c92105d477c3dab0653f2ff",
    "SERVICES": "ffae77146a38473e444818e40831bcb10a5e4c84ff0d51d58198696f916cfbca",
    "TRANSFERS": "e06f089e5e3b5fca9cb95575d036167aed33a6313f1f2f7634ce728c39b901ee",
}


def _source(path: str) -> tuple[str, str | None, None]:
    table = path.removesuffix(".csv.gz")
    return f"{_URL}{table}.csv", _CONTENT.get(table), None


register_dataset(
    DatasetInfo(
        "mimic3_demo",
        "mimic3_demo",
        "MIMIC-III Clinical Database Demo 1.4",
        "100 ICU patients, 25 of 26 MIMIC-III tables as gzipped CSV (no CHARTEVENTS)",
        "ODbL 1.0 (PhysioNet)",
        (
            "Johnson A, Pollard T, Mark R. MIMIC-III Clinical Database Demo (version 1.4), "
            "PhysioNet (2019); doi:10.13026/C2HM2Q",
            "Johnson AEW et al. MIMIC-III, a freely accessible critical care database. "
            "Sci Data 3:160035 (2016)",
            "Goldberger AL et al. Circulation 101(23):e215-e220 (2000)",
        ),
        "https://physionet.org/content/mimiciii-demo/1.4/",
        files_from_checksums("mimic3_demo", _source),
        rank=3,
    )
)


_MIMIC4_URL = "https://physionet.org/files/mimic-iv-demo/2.2/"

register_dataset(
    DatasetInfo(
        "mimic4_demo",
        "mimic4_demo",
        "MIMIC-IV Clinical Database Demo 2.2",
        "100 patients, 275 admissions: the hosp/ and icu/ modules as gzipped CSV (ICD-9 and "
        "ICD-10); icu/chartevents.csv.gz is not in this copy, so nothing requires it",
        "ODbL 1.0 (PhysioNet)",
        (
            "Johnson A, Bulgarelli L, Pollard T, Horng S, Celi LA, Mark R. MIMIC-IV Clinical "
            "Database Demo (version 2.2), PhysioNet (2023); doi:10.13026/dp1f-ex47",
            "Johnson AEW et al. MIMIC-IV, a freely accessible electronic health record "
            "dataset. Sci Data 10:1 (2023)",
            "Goldberger AL et al. Circulation 101(23):e215-e220 (2000)",
        ),
        "https://physionet.org/content/mimic-iv-demo/2.2/",
        files_from_checksums("mimic4_demo", lambda path: (f"{_MIMIC4_URL}{path}", None, None)),
        rank=3,
    )
)

register_dataset(
    DatasetInfo(
        "mimic4_demo_meds",
        "mimic4_demo_meds",
        "MIMIC-IV demo as one MEDS-style event table",
        "the MIMIC-IV demo's 100 subjects as 916,166 events (subject_id, time, code, table, "
        "value; chartevents included), a third-party reshaping of the MEDS derivative",
        "ODbL 1.0 (derived from the MIMIC-IV demo)",
        (
            "van de Water R et al. MIMIC-IV demo data in the Medical Event Data Standard "
            "(MEDS), version 0.0.1, PhysioNet (2025); doi:10.13026/t2y8-ea41",
            "Johnson A et al. MIMIC-IV Clinical Database Demo (version 2.2), PhysioNet (2023)",
        ),
        "https://physionet.org/content/mimic-iv-demo-meds/0.0.1/",
        files_from_checksums("mimic4_demo_meds"),
        manual_download="this single-table reshaping has no public download of its own: the "
        "MEDS release (doi:10.13026/t2y8-ea41) holds the same events sharded; its SOURCE.md "
        "says how this table was made from it",
        rank=3,
    )
)
