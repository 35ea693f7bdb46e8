"""Electronic health records: hospital tables -> MEDS events -> task labels -> arrays.

medtorch's EHR modality. Every source is first turned into one **event table** in the MEDS
form (``subject_id`` int64, ``time`` datetime[us] (null = static), ``code`` str,
``numeric_value`` float32, ``text_value`` str, optional ``hadm_id`` int64; see
:mod:`medtorch.ehr.schema`); tasks and models only ever see that form, so one task serves
every source.

Readers (polars)
    :func:`read_mimic3` (CSV/CSV.gz, upper- or lower-case names), :func:`read_mimic4`
    (``hosp/``, ``icu/``), :func:`read_meds` (a MEDS folder as it is),
    :func:`read_event_table` (any long CSV/Parquet table with a column mapping
    ``{subject_id, time, code, value}``), :func:`mimic_codes` (readable names from the D_*
    dictionaries), :func:`read_subject_splits` (``metadata/subject_splits.parquet``),
    :func:`read_codes` (``metadata/codes.parquet``), :func:`read_dataset_json`;
    :func:`code_descriptions` (code -> readable name from whichever of these the source has,
    for reports; :mod:`medtorch.ehr.names`).
    :func:`write_meds` writes events back as a MEDS folder; :func:`convert_to_meds` reads a
    source and writes it with its code descriptions (``medtorch data convert``). What each MIMIC table becomes,
    and why diagnoses are timed at discharge, is in :mod:`medtorch.ehr.mimic`.
Cache
    :func:`load_events` / :func:`load_samples`: the same as reading/building, cached as
    Parquet under ``cache_dir`` (default the user cache), keyed by the source files' size
    and mtime, the config and :data:`EHR_CACHE_VERSION`.
Tasks
    :data:`TASKS` (``mortality_next_visit``, ``readmission_30d``, ``next_visit_diagnosis``,
    ``in_hospital_mortality_48h``, ``long_stay_7d``), :func:`build_labels` -> (MEDS label
    table, cohort flow dict). Rules in :mod:`medtorch.ehr.tasks` and
    :mod:`medtorch.ehr.cohort`. A label table made elsewhere: ``build_samples(events,
    "labels", labels=frame)``.
Samples and arrays (EHR_CONTRACT)
    ``samples = build_samples(events, task, params)``; after the split by subject,
    ``vocab = CodeVocab.fit(samples.by_subjects(train_ids), min_count=...)``;
    ``arrays = vocab.transform(samples)`` -> :class:`EhrArrays` (``inputs`` x, t (, v),
    ``y``, ``groups``, ``sample_ids``, names); ``vocab.to_dict()`` / ``CodeVocab.from_dict``
    for the run folder. ``samples.meds_split(read_subject_splits(folder))`` honours MEDS
    splits.
ICD helpers
    :func:`normalize_icd`, :func:`icd_category`, :func:`diagnosis_category_expr`.
"""

from medtorch.ehr.cache import default_cache_dir
from medtorch.ehr.cohort import assign_visits
from medtorch.ehr.icd import diagnosis_category_expr, icd_category, normalize_icd
from medtorch.ehr.load import SOURCES, convert_to_meds, load_events, load_samples
from medtorch.ehr.meds import (
    read_codes,
    read_dataset_json,
    read_event_table,
    read_meds,
    read_subject_splits,
    write_meds,
)
from medtorch.ehr.mimic import MIMIC3_TABLES, MIMIC4_TABLES, mimic_codes, read_mimic3, read_mimic4
from medtorch.ehr.names import code_descriptions
from medtorch.ehr.samples import Samples, build_samples
from medtorch.ehr.schema import EHR_CACHE_VERSION, EVENT_SCHEMA, LABEL_SCHEMA
from medtorch.ehr.tasks import TASKS, TaskSpec, build_labels, get_task
from medtorch.ehr.vocab import CodeVocab, EhrArrays

__all__ = [
    "EHR_CACHE_VERSION",
    "EVENT_SCHEMA",
    "LABEL_SCHEMA",
    "MIMIC3_TABLES",
    "MIMIC4_TABLES",
    "SOURCES",
    "TASKS",
    "CodeVocab",
    "EhrArrays",
    "Samples",
    "TaskSpec",
    "assign_visits",
    "build_labels",
    "build_samples",
    "code_descriptions",
    "convert_to_meds",
    "default_cache_dir",
    "diagnosis_category_expr",
    "get_task",
    "icd_category",
    "load_events",
    "load_samples",
    "mimic_codes",
    "normalize_icd",
    "read_codes",
    "read_dataset_json",
    "read_event_table",
    "read_meds",
    "read_mimic3",
    "read_mimic4",
    "read_subject_splits",
    "write_meds",
]
