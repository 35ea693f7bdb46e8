"""MIT-BIH records and leads: the record lists, where they are, lead choice and conditioning.

:data:`DS1` / :data:`DS2` are the inter-patient protocol of de Chazal et al. (2004);
:data:`BEAT_SYMBOLS` are the annotation codes of every QRS complex. :func:`prepare_lead`
conditions a lead for training and for :mod:`medtorch.ecg.predict` alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medtorch.data.signal import clean_ecg, resample
from medtorch.data.sources.wfdb_reader import read_record
from medtorch.errors import ConfigError, DataError

# WFDB's isqrs() beat codes: every QRS complex, used for RR intervals (AAMI-mapped or not).
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")

# de Chazal et al. 2004 inter-patient split; the four paced records are left out.
DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124",
       "201", "203", "205", "207", "208", "209", "215", "220", "223", "230")  # fmt: skip
DS2 = ("100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210", "212",
       "213", "214", "219", "221", "222", "228", "231", "232", "233", "234")  # fmt: skip
PACED = ("102", "104", "107", "217")
ALL_RECORDS = tuple(sorted(DS1 + DS2 + PACED))


def mitdb_dir(data_dir: Path | str | None) -> Path:
    """``<data_dir>/mitdb``, or ``data_dir`` itself when it holds the records."""
    if data_dir is None:
        raise ConfigError(
            "expected a data dir holding mitdb/, got None in --data-dir; "
            "set MEDTORCH_DATA or pass --data-dir"
        )
    root = Path(data_dir)
    for cand in (root / "mitdb", root):
        if (cand / "100.hea").is_file() or (cand / "RECORDS").is_file():
            return cand
    raise DataError(
        f"expected MIT-BIH records (100.hea, ...), got none in {root}/mitdb; "
        "run `medtorch data fetch mitdb` or point --data-dir at them"
    )


def select_lead(sig_names: Sequence[str], lead: str) -> tuple[int, str]:
    """Index and name of ``lead``, else of the first channel (102/104 have no MLII: V5)."""
    names = list(sig_names)
    i = names.index(lead) if lead in names else 0
    return i, names[i]


def prepare_lead(lead: np.ndarray, fs_in_hz: float, fs_hz: float, filter: bool) -> np.ndarray:
    """Condition one lead as for training: filter at the native rate, then resample."""
    if filter:  # filter the whole lead once, at the native rate
        lead = clean_ecg(lead, fs_in_hz)
    if fs_hz != fs_in_hz:
        lead = resample(lead, fs_in_hz, fs_hz)
    return lead


def read_lead(stem: Path, lead: str, fs_hz: float, filter: bool) -> tuple[np.ndarray, float, str]:
    """One lead of the record at ``stem``, conditioned (:func:`prepare_lead`), with the
    record's native rate and the name of the lead used."""
    rec = read_record(stem)
    i, used = select_lead(rec.sig_names, lead)
    return prepare_lead(rec.signal[i], rec.fs_hz, fs_hz, filter), rec.fs_hz, used


def check_records(records: Sequence[str] | None, default: Sequence[str]) -> list[str]:
    """``records`` (else ``default``) as strings; ConfigError unless each is a MIT-BIH record."""
    recs = [str(r) for r in (records if records is not None else default)]
    bad = [r for r in recs if r not in ALL_RECORDS]
    if bad:
        raise ConfigError(
            f"expected MIT-BIH record names such as '100', got {bad} in "
            "task.params.records; use names from the database's RECORDS file"
        )
    return recs
